package io.streamlake.udfs;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.types.DataType;

/**
 * The Silver job's rules, compiled from the registry by streamlake/compile/silver.py (silver_validate_config):
 * envelope, tenants, routing lists, and per event type its id/time fields and its declared
 * fields with each version's constraints. No secrets: PII hashing stays in the SQL.
 */
final class Rules {

    /** What one declared field must be in one schema version. */
    static final class Constraint {
        boolean required;
        Double min;
        Double max;
        Integer maxLength;
        Pattern pattern;
        Set<String> values;
    }

    /** A declared field (the union over versions): its type and per-version constraints. */
    static final class Field {
        String name;
        String path; // dotted, for reason codes
        String type; // string int long double boolean timestamp enum object array
        String items; // array
        String format; // timestamp
        boolean output; // pii != drop (and every ancestor kept)
        Map<Integer, Constraint> versions = new LinkedHashMap<>();
        List<Field> fields = new ArrayList<>(); // object
    }

    static final class EventType {
        String name;
        String eventIdField;
        String eventTimeField;
        String eventTimeFormat;
        long maxFutureSkewMs;
        List<Field> fields = new ArrayList<>();
    }

    /** What the single pass over a record captures below one JSON key. */
    static final class Target {
        Map<String, Target> children; // capture these keys of an object value
        boolean elements; // capture an array value's elements
        boolean json; // capture an object or array value as its compact JSON text
    }

    int maxRecordBytes;
    boolean rejectDuplicateKeys;
    String tenantField;
    String typeField;
    String versionField;
    Map<String, String> topicOwner = new LinkedHashMap<>();
    Set<String> tenants = new HashSet<>();
    Set<String> allowed = new HashSet<>();
    Set<String> knownVersions = new HashSet<>();
    Set<String> activeVersions = new HashSet<>();
    Map<String, EventType> eventTypes = new LinkedHashMap<>();
    Target root = new Target();

    // ---------------------------------------------------------------------------------------
    // The output row: fixed columns, then one ROW of typed fields per event type.

    static final String[] FIXED = {
        "record_bytes", "topic_tenant", "route_reason", "field_reasons", "claimed_tenant",
        "tenant_id", "event_type", "schema_version", "event_id", "event_at"
    };

    DataType outputType() {
        List<DataTypes.Field> cols = new ArrayList<>();
        cols.add(DataTypes.FIELD("record_bytes", DataTypes.BIGINT()));
        cols.add(DataTypes.FIELD("topic_tenant", DataTypes.STRING()));
        cols.add(DataTypes.FIELD("route_reason", DataTypes.STRING()));
        cols.add(DataTypes.FIELD("field_reasons", DataTypes.ARRAY(DataTypes.STRING())));
        cols.add(DataTypes.FIELD("claimed_tenant", DataTypes.STRING()));
        cols.add(DataTypes.FIELD("tenant_id", DataTypes.STRING()));
        cols.add(DataTypes.FIELD("event_type", DataTypes.STRING()));
        cols.add(DataTypes.FIELD("schema_version", DataTypes.INT()));
        cols.add(DataTypes.FIELD("event_id", DataTypes.STRING()));
        cols.add(DataTypes.FIELD("event_at", DataTypes.TIMESTAMP_LTZ(3)));
        for (EventType et : eventTypes.values()) {
            cols.add(DataTypes.FIELD("typed_" + et.name, rowType(et.fields)));
        }
        return DataTypes.ROW(cols.toArray(new DataTypes.Field[0]));
    }

    private static DataType rowType(List<Field> fields) {
        List<DataTypes.Field> out = new ArrayList<>();
        for (Field f : fields) {
            if (f.output) {
                out.add(DataTypes.FIELD(f.name, sqlType(f)));
            }
        }
        return DataTypes.ROW(out.toArray(new DataTypes.Field[0]));
    }

    private static DataType sqlType(Field f) {
        switch (f.type) {
            case "object":
                return rowType(f.fields);
            case "array":
                return DataTypes.ARRAY(scalar(f.items));
            case "timestamp":
                return DataTypes.TIMESTAMP_LTZ(3);
            case "enum":
                return DataTypes.STRING();
            default:
                return scalar(f.type);
        }
    }

    private static DataType scalar(String t) {
        switch (t) {
            case "string":
                return DataTypes.STRING();
            case "int":
                return DataTypes.INT();
            case "long":
                return DataTypes.BIGINT();
            case "double":
                return DataTypes.DOUBLE();
            case "boolean":
                return DataTypes.BOOLEAN();
            default:
                throw new IllegalArgumentException("unknown type " + t);
        }
    }

    // ---------------------------------------------------------------------------------------
    // Loading: the config is JSON compiled by streamlake/compile/silver.py.

    static Rules parse(String json) {
        Object tree;
        try (JsonParser p = new JsonFactory().createParser(json)) {
            p.nextToken();
            tree = read(p);
        } catch (IOException e) {
            throw new UncheckedIOException("silver_validate: unreadable config", e);
        }
        return from(map(tree));
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> readObject(JsonParser p) throws IOException {
        return (Map<String, Object>) read(p);
    }

    private static Object read(JsonParser p) throws IOException {
        JsonToken t = p.currentToken();
        switch (t) {
            case START_OBJECT: {
                Map<String, Object> m = new LinkedHashMap<>();
                while (p.nextToken() == JsonToken.FIELD_NAME) {
                    String k = p.currentName();
                    p.nextToken();
                    m.put(k, read(p));
                }
                return m;
            }
            case START_ARRAY: {
                List<Object> l = new ArrayList<>();
                while (p.nextToken() != JsonToken.END_ARRAY) {
                    l.add(read(p));
                }
                return l;
            }
            case VALUE_STRING:
                return p.getText();
            case VALUE_NUMBER_INT:
                return p.getLongValue();
            case VALUE_NUMBER_FLOAT:
                return p.getDoubleValue();
            case VALUE_TRUE:
                return Boolean.TRUE;
            case VALUE_FALSE:
                return Boolean.FALSE;
            default:
                return null;
        }
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> map(Object o) {
        return (Map<String, Object>) o;
    }

    @SuppressWarnings("unchecked")
    private static List<Object> list(Object o) {
        return o == null ? List.of() : (List<Object>) o;
    }

    private static Set<String> strings(Object o) {
        Set<String> out = new HashSet<>();
        for (Object x : list(o)) {
            out.add((String) x);
        }
        return out;
    }

    private static Rules from(Map<String, Object> c) {
        Rules r = new Rules();
        r.maxRecordBytes = ((Number) c.get("max_record_bytes")).intValue();
        r.rejectDuplicateKeys = (Boolean) c.get("reject_duplicate_keys");
        r.tenantField = (String) c.get("tenant_field");
        r.typeField = (String) c.get("type_field");
        r.versionField = (String) c.get("version_field");
        for (Map.Entry<String, Object> e : map(c.get("topic_owner")).entrySet()) {
            r.topicOwner.put(e.getKey(), (String) e.getValue());
        }
        r.tenants = strings(c.get("tenants"));
        r.allowed = strings(c.get("allowed"));
        r.knownVersions = strings(c.get("known_versions"));
        r.activeVersions = strings(c.get("active_versions"));
        r.target(r.root, r.tenantField).json = true; // the DLQ's claimed tenant, as sent
        r.target(r.root, r.typeField);
        r.target(r.root, r.versionField);
        for (Object o : list(c.get("event_types"))) {
            Map<String, Object> m = map(o);
            EventType et = new EventType();
            et.name = (String) m.get("name");
            et.eventIdField = (String) m.get("event_id_field");
            et.eventTimeField = (String) m.get("event_time_field");
            et.eventTimeFormat = (String) m.get("event_time_format");
            et.maxFutureSkewMs = ((Number) m.get("max_future_skew_ms")).longValue();
            r.target(r.root, et.eventIdField);
            r.target(r.root, et.eventTimeField);
            for (Object f : list(m.get("fields"))) {
                et.fields.add(field(f, "", true, r.root, r));
            }
            r.eventTypes.put(et.name, et);
        }
        return r;
    }

    private Target target(Target parent, String name) {
        if (parent.children == null) {
            parent.children = new LinkedHashMap<>();
        }
        return parent.children.computeIfAbsent(name, k -> new Target());
    }

    private static Field field(Object o, String prefix, boolean keep, Target parent, Rules r) {
        Map<String, Object> m = map(o);
        Field f = new Field();
        f.name = (String) m.get("name");
        f.path = prefix + f.name;
        f.type = (String) m.get("type");
        f.items = (String) m.get("items");
        f.format = (String) m.get("format");
        f.output = keep && !Boolean.TRUE.equals(m.get("drop"));
        for (Map.Entry<String, Object> e : map(m.get("versions")).entrySet()) {
            Map<String, Object> v = map(e.getValue());
            Constraint k = new Constraint();
            k.required = Boolean.TRUE.equals(v.get("required"));
            k.min = v.get("min") == null ? null : ((Number) v.get("min")).doubleValue();
            k.max = v.get("max") == null ? null : ((Number) v.get("max")).doubleValue();
            k.maxLength = v.get("max_length") == null ? null : ((Number) v.get("max_length")).intValue();
            // As the SQL did: REGEXP(v, '^(?:pattern)$'), a find() with java.util.regex.
            k.pattern = v.get("pattern") == null ? null : Pattern.compile("^(?:" + v.get("pattern") + ")$");
            k.values = v.get("values") == null ? null : strings(v.get("values"));
            f.versions.put(Integer.parseInt(e.getKey()), k);
        }
        Target t = r.target(parent, f.name);
        if ("array".equals(f.type)) {
            t.elements = true;
        }
        for (Object child : list(m.get("fields"))) {
            f.fields.add(field(child, f.path + ".", f.output, t, r));
        }
        return f;
    }
}
