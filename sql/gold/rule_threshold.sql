-- Purpose: one threshold alert rule, compiled to MATCH_RECOGNIZE: the condition holds for N consecutive events of a key, all within T (a query; the alert INSERT joins every rule's query with UNION ALL).

-- ===== alert rule ${rule_id} (threshold: ${times} in a row within ${within}): ${description} =====
SELECT CAST('${rule_id}' AS STRING) AS rule_id, CAST('threshold' AS STRING) AS rule_kind, tenant_id,
       CAST('${event_type}' AS STRING) AS event_type, ${alert_key} AS alert_key, first_event_at, last_event_at,
       ARRAY[ROW(CAST('count' AS STRING), CAST(matched AS DOUBLE)),
             ROW(CAST('min_value' AS STRING), CAST(min_value AS DOUBLE)),
             ROW(CAST('max_value' AS STRING), CAST(max_value AS DOUBLE))] AS `measures`,
       CURRENT_TIMESTAMP AS detected_at
FROM ontime_${event_type}
MATCH_RECOGNIZE (
    PARTITION BY tenant_id, ${key}
    ORDER BY event_at
    MEASURES
        FIRST(A.event_at) AS first_event_at,
        LAST(A.event_at) AS last_event_at,
        COUNT(A.event_id) AS matched,
        ${numeric_measures}
    ONE ROW PER MATCH
    AFTER MATCH SKIP PAST LAST ROW
    PATTERN (A{${times}}) WITHIN ${within_interval}
    DEFINE A AS ${condition}
)
