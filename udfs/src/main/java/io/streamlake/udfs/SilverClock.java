package io.streamlake.udfs;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.HashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.catalog.DataTypeFactory;
import org.apache.flink.table.functions.ScalarFunction;
import org.apache.flink.table.types.inference.TypeInference;
import org.apache.flink.table.types.inference.TypeStrategies;

/**
 * SILVER_CLOCK(raw_value, ingest_at, config): a Bronze record's clock, its event time minus its
 * event type's max_out_of_orderness, or NULL; the Kafka source's computed column, so its
 * per-partition watermark.
 *
 * <p>Exactly the reading the SQL clock did with JSON_VALUE (a clock counts for rejected records
 * too, so it is not silver_validate's reading): the record as text (invalid UTF-8 as U+FFFD), its
 * first JSON value parsed leniently (the last of duplicate keys wins, anything after the value is
 * ignored; NaN, a syntax error or nesting over 1,000 give no clock), the type and time keys of a
 * root object read as JSON_VALUE text (numbers as BigDecimal/BigInteger print them), an epoch
 * cast as TRY_CAST(text AS BIGINT) does (spaces trimmed, a fraction truncated). One pass, which
 * stops reading values other than those two keys.
 */
public class SilverClock extends ScalarFunction {
    private static final Pattern TO_BIGINT = Pattern.compile("([+-]?)([0-9]*)(?:\\.([0-9]*))?");
    private static final long EPOCH_MS_MAX = 253_402_300_799_999L;

    private static final class Type {
        String timeField;
        String format;
        long skewMs;
        long boundMs;
    }

    private transient String configText;
    private transient int maxRecordBytes;
    private transient String typeField;
    private transient Map<String, Type> types;
    private transient java.util.Set<String> timeFields;
    private transient JsonFactory factory;

    @Override
    public TypeInference getTypeInference(DataTypeFactory typeFactory) {
        return TypeInference.newBuilder()
                .typedArguments(DataTypes.BYTES(), DataTypes.TIMESTAMP_LTZ(3), DataTypes.STRING())
                .outputTypeStrategy(TypeStrategies.explicit(DataTypes.TIMESTAMP_LTZ(3)))
                .build();
    }

    public Instant eval(byte[] raw, Instant ingestAt, String config) {
        if (config != configText && !config.equals(configText)) {
            configure(config);
        }
        if (raw == null || ingestAt == null) {
            return null;
        }
        String line = new String(raw, StandardCharsets.UTF_8);
        // As CHAR_LENGTH(CAST(raw_value AS STRING)) <= max_record_bytes: characters, an invalid
        // byte counting as one (never more characters than bytes).
        if (raw.length > maxRecordBytes && line.codePointCount(0, line.length()) > maxRecordBytes) {
            return null;
        }
        if (!line.isEmpty() && line.charAt(0) == '\uFEFF') {
            return null;
        }
        String type = null;
        Map<String, String> times = new HashMap<>(4);
        try (JsonParser p = factory.createParser(line)) {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                return null;
            }
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String name = p.currentName();
                p.nextToken();
                boolean isType = name.equals(typeField);
                boolean isTime = timeFields.contains(name);
                if (isType || isTime) {
                    String text = text(p);
                    if (isType) {
                        type = text;
                    }
                    if (isTime) {
                        times.put(name, text);
                    }
                } else {
                    p.skipChildren();
                }
            }
        } catch (IOException e) {
            return null;
        }
        Type t = type == null ? null : types.get(type);
        if (t == null) {
            return null;
        }
        String time = times.get(t.timeField);
        if (time == null) {
            return null;
        }
        Instant at;
        if ("iso8601_utc".equals(t.format)) {
            at = Validator.time(t.format, new Value(Value.Kind.STRING, time));
        } else {
            Long n = toBigint(time);
            if (n == null || n < 0 || n > ("epoch_millis".equals(t.format) ? EPOCH_MS_MAX : EPOCH_MS_MAX / 1000)) {
                return null;
            }
            at = "epoch_millis".equals(t.format) ? Instant.ofEpochMilli(n) : Instant.ofEpochSecond(n);
        }
        if (at == null || at.toEpochMilli() > ingestAt.toEpochMilli() + t.skewMs) {
            return null;
        }
        return at.minusMillis(t.boundMs);
    }

    /** JSON_VALUE's text of the current value: scalars only (a later duplicate replaces it). */
    private static String text(JsonParser p) throws IOException {
        switch (p.currentToken()) {
            case VALUE_STRING:
                return p.getText();
            case VALUE_NUMBER_INT:
                return new BigInteger(p.getText()).toString();
            case VALUE_NUMBER_FLOAT:
                return new BigDecimal(p.getText()).toString();
            case VALUE_TRUE:
                return "true";
            case VALUE_FALSE:
                return "false";
            case START_OBJECT:
            case START_ARRAY:
                p.skipChildren();
                return null;
            default:
                return null;
        }
    }

    /** TRY_CAST(text AS BIGINT): spaces trimmed, an optional sign, a fraction truncated. */
    static Long toBigint(String s) {
        int a = 0;
        int b = s.length();
        while (a < b && s.charAt(a) == ' ') {
            a++;
        }
        while (b > a && s.charAt(b - 1) == ' ') {
            b--;
        }
        String v = s.substring(a, b);
        Matcher m = TO_BIGINT.matcher(v);
        if (!m.matches() || (m.group(2).isEmpty() && (m.group(3) == null || m.group(3).isEmpty()))) {
            return null;
        }
        if (m.group(2).isEmpty()) {
            return 0L;
        }
        try {
            return Long.parseLong(m.group(1).equals("-") ? "-" + m.group(2) : m.group(2));
        } catch (NumberFormatException e) {
            return null;
        }
    }

    private void configure(String config) {
        Map<String, Object> c;
        try (JsonParser p = new JsonFactory().createParser(config)) {
            p.nextToken();
            c = Rules.readObject(p);
        } catch (IOException e) {
            throw new UncheckedIOException("silver_clock: unreadable config", e);
        }
        maxRecordBytes = ((Number) c.get("max_record_bytes")).intValue();
        typeField = (String) c.get("type_field");
        types = new HashMap<>();
        for (Object o : (Iterable<?>) c.get("event_types")) {
            @SuppressWarnings("unchecked")
            Map<String, Object> m = (Map<String, Object>) o;
            Type t = new Type();
            t.timeField = (String) m.get("event_time_field");
            t.format = (String) m.get("event_time_format");
            t.skewMs = ((Number) m.get("max_future_skew_ms")).longValue();
            t.boundMs = ((Number) m.get("max_out_of_orderness_ms")).longValue();
            types.put((String) m.get("name"), t);
        }
        timeFields = new java.util.HashSet<>();
        for (Type t : types.values()) {
            timeFields.add(t.timeField);
        }
        factory = new JsonFactory();
        configText = config;
    }
}
