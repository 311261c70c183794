package io.streamlake.udfs;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.StreamReadFeature;
import java.io.IOException;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.time.format.DateTimeFormatterBuilder;
import java.time.temporal.ChronoField;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;
import org.apache.flink.types.Row;

/**
 * Validates one Bronze record in one streaming pass and yields its typed fields and reasons.
 *
 * <p>The rules are the ones the Silver SQL used to spell out (README "The Silver job"): record
 * checks in order, the first failure wins (empty_record, oversized_record, invalid_utf8,
 * malformed_json, duplicate_key, non_finite_number, not_an_object, invalid_unicode); then routing,
 * the first failure wins; then every field reason together, in declaration order.
 */
final class Validator {
    private static final Pattern TENANT_ID = Pattern.compile("[a-z][a-z0-9_-]{1,62}");
    private static final Pattern EVENT_TYPE = Pattern.compile("[a-z][a-z0-9_]{0,62}");
    private static final Pattern VERSION = Pattern.compile("[0-9]{1,4}");
    // As the SQL did: REGEXP_EXTRACT(CAST(header AS STRING), '^([0-9]{1,4})$', 1).
    private static final Pattern HEADER_VERSION = Pattern.compile("^([0-9]{1,4})$");
    private static final Pattern NON_FINITE =
            Pattern.compile("(^|[\\[:,])\\s*-?(NaN|Infinity)\\s*([\\],}]|$)");
    private static final Pattern ISO_UTC = Pattern.compile(
            "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,3})?Z");
    // Flink's TO_TIMESTAMP(string): a SMART resolver (Feb 30 becomes Feb 28, 24:00:00 the next
    // day), year-of-era (year 0000 is NULL).
    private static final DateTimeFormatter TIMESTAMP = new DateTimeFormatterBuilder()
            .appendPattern("yyyy-MM-dd HH:mm:ss")
            .optionalStart()
            .appendFraction(ChronoField.NANO_OF_SECOND, 0, 9, true)
            .optionalEnd()
            .toFormatter();
    private static final long EPOCH_MS_MAX = 253_402_300_799_999L; // 9999-12-31T23:59:59.999Z

    private final Rules rules;
    private final JsonFactory strict;
    private final JsonFactory lenient;
    private final int nTypes;
    private final Map<String, Integer> typeIndex = new HashMap<>();

    Validator(Rules rules) {
        this.rules = rules;
        this.strict = JsonFactory.builder()
                .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
                .build();
        this.lenient = new JsonFactory();
        this.nTypes = rules.eventTypes.size();
        int i = 0;
        for (String name : rules.eventTypes.keySet()) {
            typeIndex.put(name, i++);
        }
    }

    // ---------------------------------------------------------------------------------------

    Row validate(byte[] raw, String topic, byte[] header, Instant ingestAt) {
        Object[] out = new Object[Rules.FIXED.length + nTypes];
        out[1] = topic == null ? null : rules.topicOwner.get(topic);
        if (raw == null) {
            out[2] = "empty_record";
            return Row.of(out);
        }
        out[0] = (long) raw.length;
        if (raw.length > rules.maxRecordBytes) {
            out[2] = "oversized_record";
            return Row.of(out);
        }
        if (!Utf8.isWellFormed(raw)) {
            // As the SQL did, the DLQ row still names what the text (decoded with U+FFFD) claims.
            route(lenientEnvelope(new String(raw, StandardCharsets.UTF_8)), header, out);
            out[2] = "invalid_utf8";
            return Row.of(out);
        }
        Pass pass = new Pass(Utf8.maySpellSurrogate(raw));
        String recordReason = parse(raw, pass);
        if (recordReason != null) {
            // duplicate_key and invalid_unicode records are JSON objects: the DLQ row still names
            // the tenant, event type and version they claim (as the SQL did, last key wins).
            if ("invalid_unicode".equals(recordReason)) {
                route(pass.root, header, out);
            } else if ("duplicate_key".equals(recordReason)) {
                route(lenientEnvelope(raw), header, out);
            }
            out[2] = recordReason;
            return Row.of(out);
        }
        Map<String, Value> doc = pass.root;
        route(doc, header, out);
        if (out[2] == null) {
            Rules.EventType et = rules.eventTypes.get((String) out[6]);
            fields(et, (Integer) out[7], doc, ingestAt, out);
        }
        return Row.of(out);
    }

    // ---------------------------------------------------------------------------------------
    // Record checks

    /** State of one pass over a record. */
    private static final class Pass {
        final boolean checkSurrogates;
        boolean loneSurrogate;
        Map<String, Value> root;

        Pass(boolean checkSurrogates) {
            this.checkSurrogates = checkSurrogates;
        }
    }

    /** The record-level reason, or null when the record is a JSON object with valid strings. */
    private String parse(byte[] raw, Pass pass) {
        if (raw.length >= 3 && (raw[0] & 0xff) == 0xEF && (raw[1] & 0xff) == 0xBB && (raw[2] & 0xff) == 0xBF) {
            // A byte-order mark: Jackson would skip it, but as text it is not JSON.
            return malformedOrNonFinite(raw);
        }
        boolean isObject;
        try {
            isObject = walk(rules.rejectDuplicateKeys ? strict : lenient, raw, pass);
        } catch (JsonProcessingException e) {
            if (rules.rejectDuplicateKeys && isDuplicate(e)) {
                // Rejects only: a second pass says whether the record is JSON but for its keys.
                try {
                    walk(lenient, raw, new Pass(false));
                } catch (IOException again) {
                    return malformedOrNonFinite(raw);
                }
                return "duplicate_key";
            }
            return malformedOrNonFinite(raw);
        } catch (IOException e) {
            return malformedOrNonFinite(raw);
        }
        if (!isObject) {
            return "not_an_object";
        }
        if (pass.loneSurrogate) {
            return "invalid_unicode";
        }
        return null;
    }

    /** The claimed envelope of a rejected record, when it parses leniently as an object. */
    private Map<String, Value> lenientEnvelope(Object text) {
        Pass pass = new Pass(false);
        try (JsonParser p = text instanceof String ? lenient.createParser((String) text) : lenient.createParser((byte[]) text)) {
            if (p.nextToken() == JsonToken.START_OBJECT) {
                Value v = capture(p, rules.root, pass, false);
                return v.children;
            }
        } catch (IOException e) {
            // not JSON: nothing claimed
        }
        return Map.of();
    }

    private static boolean isDuplicate(JsonProcessingException e) {
        String m = e.getOriginalMessage();
        return m != null && m.startsWith("Duplicate field");
    }

    private static String malformedOrNonFinite(byte[] raw) {
        String line = new String(raw, StandardCharsets.UTF_8);
        return NON_FINITE.matcher(line).find() ? "non_finite_number" : "malformed_json";
    }

    /** Parses the whole record; captures the declared keys; true when its root is an object. */
    private boolean walk(JsonFactory f, byte[] raw, Pass pass) throws IOException {
        try (JsonParser p = f.createParser(raw)) {
            JsonToken t = p.nextToken();
            if (t == null) {
                throw new IOException("empty");
            }
            boolean isObject = t == JsonToken.START_OBJECT;
            if (isObject) {
                Value v = capture(p, rules.root, pass, false);
                pass.root = v.children;
            } else {
                skip(p, pass);
            }
            if (p.nextToken() != null) {
                throw new IOException("content after the JSON value");
            }
            return isObject;
        }
    }

    /** The value at the parser's current token, capturing what `target` asks for. */
    private Value capture(JsonParser p, Rules.Target target, Pass pass, boolean asJson) throws IOException {
        JsonToken t = p.currentToken();
        switch (t) {
            case START_OBJECT: {
                if (asJson || (target != null && target.json)) {
                    return json(p, Value.Kind.OBJECT, pass);
                }
                Value v = new Value(Value.Kind.OBJECT, null);
                if (target == null || target.children == null) {
                    skip(p, pass);
                    return v;
                }
                v.children = new HashMap<>();
                while (p.nextToken() == JsonToken.FIELD_NAME) {
                    String name = p.currentName();
                    if (pass.checkSurrogates) {
                        checkSurrogates(name, pass);
                    }
                    p.nextToken();
                    Rules.Target child = target.children.get(name);
                    if (child == null) {
                        skip(p, pass);
                    } else {
                        v.children.put(name, capture(p, child, pass, false));
                    }
                }
                return v;
            }
            case START_ARRAY: {
                if (asJson || (target != null && target.json)) {
                    return json(p, Value.Kind.ARRAY, pass);
                }
                Value v = new Value(Value.Kind.ARRAY, null);
                if (target == null || !target.elements) {
                    skip(p, pass);
                    return v;
                }
                v.elements = new ArrayList<>();
                while (p.nextToken() != JsonToken.END_ARRAY) {
                    v.elements.add(capture(p, null, pass, true));
                }
                return v;
            }
            case VALUE_STRING: {
                String s = p.getText();
                if (pass.checkSurrogates) {
                    checkSurrogates(s, pass);
                }
                return new Value(Value.Kind.STRING, s);
            }
            case VALUE_NUMBER_INT:
                return new Value(Value.Kind.INT, p.getText());
            case VALUE_NUMBER_FLOAT:
                return new Value(Value.Kind.FLOAT, p.getText());
            case VALUE_TRUE:
                return Value.TRUE;
            case VALUE_FALSE:
                return Value.FALSE;
            default:
                return Value.NULL;
        }
    }

    /** An object or array inside a captured array, as compact JSON (what ARRAY<STRING> holds). */
    private Value json(JsonParser p, Value.Kind kind, Pass pass) throws IOException {
        StringWriter w = new StringWriter();
        try (JsonGenerator g = lenient.createGenerator(w)) {
            int depth = 0;
            do {
                JsonToken t = p.currentToken();
                if (pass.checkSurrogates && (t == JsonToken.VALUE_STRING || t == JsonToken.FIELD_NAME)) {
                    checkSurrogates(p.getText(), pass);
                }
                g.copyCurrentEventExact(p);
                if (t == JsonToken.START_OBJECT || t == JsonToken.START_ARRAY) {
                    depth++;
                } else if (t == JsonToken.END_OBJECT || t == JsonToken.END_ARRAY) {
                    depth--;
                }
            } while (depth > 0 && p.nextToken() != null);
        }
        Value v = new Value(kind, null);
        v.json = w.toString();
        return v;
    }

    /** Skips the current value; reads its strings only when a lone surrogate is possible. */
    private static void skip(JsonParser p, Pass pass) throws IOException {
        if (!pass.checkSurrogates) {
            p.skipChildren();
            return;
        }
        JsonToken t = p.currentToken();
        int depth = 0;
        while (true) {
            if (t == JsonToken.VALUE_STRING || t == JsonToken.FIELD_NAME) {
                checkSurrogates(p.getText(), pass);
            } else if (t == JsonToken.START_OBJECT || t == JsonToken.START_ARRAY) {
                depth++;
            } else if (t == JsonToken.END_OBJECT || t == JsonToken.END_ARRAY) {
                depth--;
            }
            if (depth == 0) {
                return;
            }
            t = p.nextToken();
            if (t == null) {
                throw new IOException("unexpected end");
            }
        }
    }

    private static void checkSurrogates(String s, Pass pass) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (Character.isHighSurrogate(c)) {
                if (i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
                    i++;
                } else {
                    pass.loneSurrogate = true;
                    return;
                }
            } else if (Character.isLowSurrogate(c)) {
                pass.loneSurrogate = true;
                return;
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // Routing: out[2] route_reason, out[4] claimed_tenant, out[5..7] tenant, type, version

    private void route(Map<String, Value> doc, byte[] header, Object[] out) {
        Value wTenant = doc.get(rules.tenantField);
        Value wType = doc.get(rules.typeField);
        Value wVersion = doc.get(rules.versionField);
        out[4] = wTenant == null ? null : wTenant.wrapped();
        String tenant = wTenant != null && wTenant.kind == Value.Kind.STRING
                && TENANT_ID.matcher(wTenant.text).matches() ? wTenant.text : null;
        String type = wType != null && wType.kind == Value.Kind.STRING
                && EVENT_TYPE.matcher(wType.text).matches() ? wType.text : null;
        Integer version = null;
        if (wVersion != null && wVersion.kind == Value.Kind.STRING && VERSION.matcher(wVersion.text).matches()) {
            version = Integer.parseInt(wVersion.text);
        } else if (wVersion != null && wVersion.kind == Value.Kind.INT) {
            String digits = wVersion.canonicalInt();
            version = VERSION.matcher(digits).matches() ? Integer.parseInt(digits) : null;
        } else if (Value.absent(wVersion) && header != null) {
            var m = HEADER_VERSION.matcher(new String(header, StandardCharsets.UTF_8));
            version = m.find() ? Integer.parseInt(m.group(1)) : null;
        }
        out[5] = tenant;
        out[6] = type;
        out[7] = version;
        String topicTenant = (String) out[1];
        String reason;
        if (Value.absent(wTenant)) {
            reason = "missing_field:" + rules.tenantField;
        } else if (tenant == null) {
            reason = "invalid_tenant_id";
        } else if (!rules.tenants.contains(tenant)) {
            reason = "unknown_tenant";
        } else if (topicTenant != null && !tenant.equals(topicTenant)) {
            reason = "tenant_topic_mismatch";
        } else if (Value.absent(wType)) {
            reason = "missing_field:" + rules.typeField;
        } else if (type == null || !rules.eventTypes.containsKey(type)) {
            reason = "unknown_event_type";
        } else if (!rules.allowed.contains(tenant + "/" + type)) {
            reason = "event_type_not_allowed";
        } else if (version == null || !rules.knownVersions.contains(type + "/" + version)) {
            reason = "unknown_version";
        } else if (!rules.activeVersions.contains(tenant + "/" + type + "/" + version)) {
            reason = "version_not_active";
        } else {
            reason = null;
        }
        out[2] = reason;
    }

    // ---------------------------------------------------------------------------------------
    // Fields: out[3] field_reasons, out[8] event_id, out[9] event_at, out[10 + i] typed row

    private void fields(Rules.EventType et, int version, Map<String, Value> doc, Instant ingestAt, Object[] out) {
        List<String> reasons = new ArrayList<>(2);
        // The event id: a string or an integer, 1 to 256 characters.
        Value wId = doc.get(et.eventIdField);
        String eventId = null;
        if (Value.absent(wId)) {
            reasons.add("missing_field:" + et.eventIdField);
        } else if (wId.kind != Value.Kind.STRING && wId.kind != Value.Kind.INT) {
            reasons.add("wrong_type:" + et.eventIdField);
        } else {
            eventId = wId.kind == Value.Kind.STRING ? wId.text : wId.canonicalInt();
            int n = eventId.codePointCount(0, eventId.length());
            if (n < 1 || n > 256) {
                reasons.add("out_of_range:" + et.eventIdField);
            }
        }
        // The event time, at most max_future_skew ahead of ingest time.
        Value wTime = doc.get(et.eventTimeField);
        Instant eventAt = Value.absent(wTime) ? null : time(et.eventTimeFormat, wTime);
        if (Value.absent(wTime)) {
            reasons.add("missing_field:" + et.eventTimeField);
        } else if (eventAt == null) {
            reasons.add("event_time_unparseable");
        } else if (ingestAt != null && eventAt.toEpochMilli() > ingestAt.toEpochMilli() + et.maxFutureSkewMs) {
            reasons.add("event_time_in_future");
        }
        Row typed = object(et.fields, version, doc, reasons);
        out[3] = reasons.isEmpty() ? null : reasons.toArray(new String[0]);
        out[8] = eventId;
        out[9] = eventAt;
        out[Rules.FIXED.length + typeIndex.get(et.name)] = typed;
    }

    /** The typed ROW of an object's declared fields; adds each field's reason, in order. */
    private Row object(List<Rules.Field> fields, int version, Map<String, Value> values, List<String> reasons) {
        List<Object> row = new ArrayList<>(fields.size());
        for (Rules.Field f : fields) {
            Value w = values == null ? null : values.get(f.name);
            Rules.Constraint c = f.versions.get(version);
            Object typed = null;
            if ("object".equals(f.type)) {
                boolean present = !Value.absent(w) && w.kind == Value.Kind.OBJECT;
                if (c != null) {
                    if (Value.absent(w)) {
                        if (c.required) {
                            reasons.add("missing_field:" + f.path);
                        }
                    } else if (!present) {
                        reasons.add("wrong_type:" + f.path);
                    }
                }
                // Its fields are checked only when it is there and is an object.
                List<String> sink = present ? reasons : new ArrayList<>();
                Row inner = object(f.fields, version, present ? w.children : null, sink);
                typed = present ? inner : null;
            } else if (c != null) {
                typed = value(f, w);
                String reason = check(f, c, w, typed);
                if (reason != null) {
                    reasons.add(reason);
                }
                if ("int".equals(f.type) && typed != null) {
                    long n = (Long) typed;
                    typed = n >= Integer.MIN_VALUE && n <= Integer.MAX_VALUE ? (Object) (int) n : null;
                }
            }
            if (f.output) {
                row.add(typed);
            }
        }
        return Row.of(row.toArray());
    }

    /** A field's typed value: NULL when absent or of the wrong JSON type. */
    private Object value(Rules.Field f, Value w) {
        if (Value.absent(w)) {
            return null;
        }
        switch (f.type) {
            case "string":
            case "enum":
                return w.kind == Value.Kind.STRING ? w.text : null;
            case "int":
            case "long": {
                if (w.kind != Value.Kind.INT) {
                    return null;
                }
                return parseLong(w.text);
            }
            case "double":
                return w.kind == Value.Kind.INT || w.kind == Value.Kind.FLOAT ? Double.parseDouble(w.text) : null;
            case "boolean":
                return w.kind == Value.Kind.TRUE ? Boolean.TRUE : w.kind == Value.Kind.FALSE ? Boolean.FALSE : null;
            case "timestamp":
                return time(f.format, w);
            case "array":
                return w.kind == Value.Kind.ARRAY && w.elements != null ? array(f.items, w.elements) : null;
            default:
                return null;
        }
    }

    /** The reason code for one field under one version's constraints, or null. */
    private static String check(Rules.Field f, Rules.Constraint c, Value w, Object v) {
        String p = f.path;
        if (Value.absent(w)) {
            return c.required ? "missing_field:" + p : null;
        }
        if (!kindOk(f, w)) {
            return "wrong_type:" + p;
        }
        switch (f.type) {
            case "int":
            case "long": {
                Double lo = c.min != null ? c.min : "int".equals(f.type) ? (double) Integer.MIN_VALUE : null;
                Double hi = c.max != null ? c.max : "int".equals(f.type) ? (double) Integer.MAX_VALUE : null;
                Long n = (Long) v;
                if (n == null || (lo != null && n < lo) || (hi != null && n > hi)) {
                    return "out_of_range:" + p;
                }
                return null;
            }
            case "double": {
                Double d = (Double) v;
                if (d == null || (c.min != null && d < c.min) || (c.max != null && d > c.max)) {
                    return "out_of_range:" + p;
                }
                return null;
            }
            case "string": {
                String s = (String) v;
                if (c.maxLength != null && s.codePointCount(0, s.length()) > c.maxLength) {
                    return "out_of_range:" + p;
                }
                if (c.pattern != null && !c.pattern.matcher(s).find()) {
                    return "pattern_mismatch:" + p;
                }
                return null;
            }
            case "enum":
                return c.values.contains((String) v) ? null : "invalid_enum:" + p;
            case "timestamp":
                return v == null ? "out_of_range:" + p : null;
            case "array":
                return v == null ? "wrong_type:" + p : null;
            default:
                return null;
        }
    }

    private static boolean kindOk(Rules.Field f, Value w) {
        switch (f.type) {
            case "string":
            case "enum":
                return w.kind == Value.Kind.STRING;
            case "int":
            case "long":
                return w.kind == Value.Kind.INT;
            case "double":
                return w.kind == Value.Kind.INT || w.kind == Value.Kind.FLOAT;
            case "boolean":
                return w.kind == Value.Kind.TRUE || w.kind == Value.Kind.FALSE;
            case "timestamp":
                return "iso8601_utc".equals(f.format) ? w.kind == Value.Kind.STRING : w.kind == Value.Kind.INT;
            case "array":
                return w.kind == Value.Kind.ARRAY;
            case "object":
                return w.kind == Value.Kind.OBJECT;
            default:
                return false;
        }
    }

    /** An event time in one of the formats, or null when it does not parse or is out of range. */
    static Instant time(String format, Value w) {
        if ("iso8601_utc".equals(format)) {
            if (w.kind != Value.Kind.STRING || !ISO_UTC.matcher(w.text).matches()) {
                return null;
            }
            try {
                String s = w.text.replace('T', ' ').replace("Z", "");
                return LocalDateTime.parse(s, TIMESTAMP).toInstant(ZoneOffset.UTC);
            } catch (RuntimeException e) {
                return null;
            }
        }
        if (w.kind != Value.Kind.INT) {
            return null;
        }
        Long n = parseLong(w.text);
        if (n == null) {
            return null;
        }
        if ("epoch_millis".equals(format)) {
            return n >= 0 && n <= EPOCH_MS_MAX ? Instant.ofEpochMilli(n) : null;
        }
        return n >= 0 && n <= EPOCH_MS_MAX / 1000 ? Instant.ofEpochSecond(n) : null;
    }

    private static Long parseLong(String s) {
        try {
            return Long.parseLong(s);
        } catch (NumberFormatException e) {
            return null;
        }
    }

    /** ARRAY<items> as JSON_QUERY(... RETURNING ARRAY<STRING>) then TRY_CAST gave it. */
    private static Object array(String items, List<Value> elements) {
        int n = elements.size();
        switch (items) {
            case "string": {
                String[] a = new String[n];
                for (int i = 0; i < n; i++) {
                    a[i] = elements.get(i).asArrayElement();
                }
                return a;
            }
            case "int":
            case "long": {
                Object[] a = "int".equals(items) ? new Integer[n] : new Long[n];
                for (int i = 0; i < n; i++) {
                    String s = elements.get(i).asArrayElement();
                    if (s == null) {
                        continue;
                    }
                    try {
                        a[i] = "int".equals(items) ? (Object) Integer.parseInt(s.trim()) : (Object) Long.parseLong(s.trim());
                    } catch (NumberFormatException e) {
                        return null;
                    }
                }
                return a;
            }
            case "double": {
                Double[] a = new Double[n];
                for (int i = 0; i < n; i++) {
                    String s = elements.get(i).asArrayElement();
                    if (s == null) {
                        continue;
                    }
                    try {
                        a[i] = Double.parseDouble(s.trim());
                    } catch (NumberFormatException e) {
                        return null;
                    }
                }
                return a;
            }
            case "boolean": {
                Boolean[] a = new Boolean[n];
                for (int i = 0; i < n; i++) {
                    String s = elements.get(i).asArrayElement();
                    if (s == null) {
                        continue;
                    }
                    switch (s.trim().toLowerCase(java.util.Locale.ROOT)) {
                        case "true": case "t": case "yes": case "y": case "1":
                            a[i] = Boolean.TRUE;
                            break;
                        case "false": case "f": case "no": case "n": case "0":
                            a[i] = Boolean.FALSE;
                            break;
                        default:
                            return null;
                    }
                }
                return a;
            }
            default:
                return null;
        }
    }
}
