package io.streamlake.udfs;

/** Byte scans that need no decoding. */
final class Utf8 {
    private Utf8() {}

    /**
     * Well-formed UTF-8 (no overlong forms, no surrogates, at most U+10FFFF): exactly the records
     * that decode and re-encode to the same bytes, which is what the SQL compared.
     */
    static boolean isWellFormed(byte[] b) {
        int i = 0;
        int n = b.length;
        while (i < n) {
            int c = b[i] & 0xff;
            if (c < 0x80) {
                i++;
                continue;
            }
            int need;
            int lo = 0x80;
            int hi = 0xBF;
            if (c >= 0xC2 && c <= 0xDF) {
                need = 1;
            } else if (c == 0xE0) {
                need = 2;
                lo = 0xA0;
            } else if (c == 0xED) {
                need = 2;
                hi = 0x9F;
            } else if (c >= 0xE1 && c <= 0xEF) {
                need = 2;
            } else if (c == 0xF0) {
                need = 3;
                lo = 0x90;
            } else if (c == 0xF4) {
                need = 3;
                hi = 0x8F;
            } else if (c >= 0xF1 && c <= 0xF3) {
                need = 3;
            } else {
                return false;
            }
            if (i + need >= n) {
                return false;
            }
            int c1 = b[i + 1] & 0xff;
            if (c1 < lo || c1 > hi) {
                return false;
            }
            for (int k = 2; k <= need; k++) {
                int ck = b[i + k] & 0xff;
                if (ck < 0x80 || ck > 0xBF) {
                    return false;
                }
            }
            i += need + 1;
        }
        return true;
    }

    /** Whether the text has a \\u escape of a surrogate (\\uD800-\\uDFFF): then strings are read. */
    static boolean maySpellSurrogate(byte[] b) {
        for (int i = 0; i + 2 < b.length; i++) {
            if (b[i] == '\\' && b[i + 1] == 'u' && (b[i + 2] == 'd' || b[i + 2] == 'D')) {
                return true;
            }
        }
        return false;
    }
}
