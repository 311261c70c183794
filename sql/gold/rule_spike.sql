-- Purpose: one spike alert rule, compiled to MATCH_RECOGNIZE: a field rises by more than X from one event of a key to the next, less than T apart (a query; the alert INSERT joins every rule's query with UNION ALL).

-- ===== alert rule ${rule_id} (spike: a rise of more than ${rise} within ${within}): ${description} =====
SELECT CAST('${rule_id}' AS STRING) AS rule_id, CAST('spike' AS STRING) AS rule_kind, tenant_id,
       CAST('${event_type}' AS STRING) AS event_type, ${alert_key} AS alert_key, first_event_at, last_event_at,
       ARRAY[ROW(CAST('from_value' AS STRING), CAST(from_value AS DOUBLE)),
             ROW(CAST('to_value' AS STRING), CAST(to_value AS DOUBLE)),
             ROW(CAST('rise' AS STRING), CAST(to_value - from_value AS DOUBLE))] AS `measures`,
       CURRENT_TIMESTAMP AS detected_at
FROM ontime_${event_type}
MATCH_RECOGNIZE (
    PARTITION BY tenant_id, ${key}
    ORDER BY event_at
    MEASURES
        A.event_at AS first_event_at,
        C.event_at AS last_event_at,
        A.${field} AS from_value,
        C.${field} AS to_value
    ONE ROW PER MATCH
    -- The rise's end may start the next rise.
    AFTER MATCH SKIP TO LAST C
    PATTERN (A C) WITHIN ${within_interval}
    DEFINE C AS C.${field} - A.${field} > ${rise}
)
