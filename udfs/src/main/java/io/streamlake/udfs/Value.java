package io.streamlake.udfs;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.List;
import java.util.Map;

/** One JSON value the single pass captured (only keys some event type declares are kept). */
final class Value {
    enum Kind { STRING, INT, FLOAT, TRUE, FALSE, NULL, OBJECT, ARRAY }

    final Kind kind;
    final String text; // STRING: the decoded string; INT/FLOAT: the number as written
    Map<String, Value> children; // OBJECT: the captured keys (last one wins on a repeat)
    List<Value> elements; // ARRAY, when its elements were captured
    String json; // OBJECT/ARRAY inside a captured array: the compact JSON text

    Value(Kind kind, String text) {
        this.kind = kind;
        this.text = text;
    }

    static final Value NULL = new Value(Kind.NULL, null);
    static final Value TRUE = new Value(Kind.TRUE, null);
    static final Value FALSE = new Value(Kind.FALSE, null);

    /** Absent or JSON null: what the SQL called "absent" (NULL or '[null]'). */
    static boolean absent(Value v) {
        return v == null || v.kind == Kind.NULL;
    }

    Value child(String name) {
        return children == null ? null : children.get(name);
    }

    /** An integer as JSON_QUERY re-serialised it: canonical decimal digits. */
    String canonicalInt() {
        return new BigInteger(text).toString();
    }

    /**
     * The value as JSON_QUERY(... WITH UNCONDITIONAL ARRAY WRAPPER) showed it: ["text"], [12],
     * [true], [{...}], [[...]], and NULL for null. Used for the DLQ's claimed tenant only.
     */
    String wrapped() {
        switch (kind) {
            case STRING:
                return "[\"" + escape(text) + "\"]";
            case INT:
                return "[" + canonicalInt() + "]";
            case FLOAT:
                return "[" + new BigDecimal(text) + "]";
            case TRUE:
                return "[true]";
            case FALSE:
                return "[false]";
            case NULL:
                return null; // as JSON_QUERY gave it: no wrapper around a null
            default:
                return json == null ? null : "[" + json + "]";
        }
    }

    /** An element of an array as JSON_QUERY(... RETURNING ARRAY<STRING>) gives it. */
    String asArrayElement() {
        switch (kind) {
            case STRING:
                return text;
            case INT:
                return canonicalInt();
            case FLOAT:
                return new BigDecimal(text).toString();
            case TRUE:
                return "true";
            case FALSE:
                return "false";
            case NULL:
                return null;
            default:
                return json;
        }
    }

    /** JSON string escaping as Jackson writes it (quotes, backslash, control characters). */
    static String escape(String s) {
        StringBuilder b = null;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            String rep = null;
            if (c == '"') {
                rep = "\\\"";
            } else if (c == '\\') {
                rep = "\\\\";
            } else if (c < 0x20) {
                switch (c) {
                    case '\b': rep = "\\b"; break;
                    case '\f': rep = "\\f"; break;
                    case '\n': rep = "\\n"; break;
                    case '\r': rep = "\\r"; break;
                    case '\t': rep = "\\t"; break;
                    default: rep = String.format("\\u%04X", (int) c);
                }
            }
            if (rep != null) {
                if (b == null) {
                    b = new StringBuilder(s.length() + 8).append(s, 0, i);
                }
                b.append(rep);
            } else if (b != null) {
                b.append(c);
            }
        }
        return b == null ? s : b.toString();
    }
}
