-- Purpose: one absence alert rule: no event from a key for T, in event time (a query; the alert INSERT joins every rule's query with UNION ALL).

-- ===== alert rule ${rule_id} (absence for ${after}): ${description} =====
-- Flink's MATCH_RECOGNIZE emits nothing when a pattern times out, so absence is a session
-- window per key with gap ${after}: the session closes, and the alert is raised, when the
-- watermark passes the key's last event + ${after} with no event in between.
SELECT CAST('${rule_id}' AS STRING) AS rule_id, CAST('absence' AS STRING) AS rule_kind, tenant_id,
       CAST('${event_type}' AS STRING) AS event_type, ${alert_key} AS alert_key, MIN(event_at) AS first_event_at, MAX(event_at) AS last_event_at,
       ARRAY[ROW(CAST('silence_ms' AS STRING), CAST(${after_ms} AS DOUBLE)),
             ROW(CAST('events_before' AS STRING), CAST(COUNT(*) AS DOUBLE))] AS `measures`,
       CURRENT_TIMESTAMP AS detected_at
FROM TABLE(SESSION(TABLE ontime_${event_type} PARTITION BY (tenant_id, ${key}),
                   DESCRIPTOR(event_at), ${after_interval}))
GROUP BY window_start, window_end, tenant_id, ${key}
