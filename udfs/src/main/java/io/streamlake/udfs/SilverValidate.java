package io.streamlake.udfs;

import java.time.Instant;
import java.util.Optional;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.catalog.DataTypeFactory;
import org.apache.flink.table.functions.TableFunction;
import org.apache.flink.table.types.inference.TypeInference;
import org.apache.flink.types.Row;

/**
 * SILVER_VALIDATE(raw_value, source_topic, version_header, ingest_at, config): one row per Bronze
 * record with its byte length, the topic's tenant, its reason codes and its typed fields, from one
 * streaming pass over its bytes.
 *
 * <p>config is a string literal, the rules compiled from the registry (streamlake/compile/silver.py); the
 * output row type is derived from it at planning time: fixed columns, then one ROW
 * {@code typed_<event_type>} of that type's Silver fields. A table function (LATERAL TABLE), so
 * the planner calls it once per record however many of its columns the job reads.
 */
public class SilverValidate extends TableFunction<Row> {
    private static final int CONFIG = 4;

    private transient String configText;
    private transient Validator validator;

    @Override
    public TypeInference getTypeInference(DataTypeFactory typeFactory) {
        return TypeInference.newBuilder()
                .typedArguments(
                        DataTypes.BYTES(),
                        DataTypes.STRING(),
                        DataTypes.BYTES(),
                        DataTypes.TIMESTAMP_LTZ(3),
                        DataTypes.STRING())
                .outputTypeStrategy(call -> {
                    if (!call.isArgumentLiteral(CONFIG)) {
                        throw call.newValidationError("silver_validate: the config must be a string literal");
                    }
                    String cfg = call.getArgumentValue(CONFIG, String.class)
                            .orElseThrow(() -> call.newValidationError("silver_validate: no config"));
                    return Optional.of(Rules.parse(cfg).outputType());
                })
                .build();
    }

    public void eval(byte[] rawValue, String sourceTopic, byte[] versionHeader, Instant ingestAt, String config) {
        if (config != configText && !config.equals(configText)) {
            validator = new Validator(Rules.parse(config));
            configText = config;
        }
        collect(validator.validate(rawValue, sourceTopic, versionHeader, ingestAt));
    }
}
