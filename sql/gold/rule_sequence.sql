-- Purpose: one sequence alert rule, compiled to MATCH_RECOGNIZE: events matching each step in order (others may come between; a new first step restarts), all within T (a query; the alert INSERT joins every rule's query with UNION ALL).

-- ===== alert rule ${rule_id} (sequence of ${steps} steps within ${within}): ${description} =====
SELECT CAST('${rule_id}' AS STRING) AS rule_id, CAST('sequence' AS STRING) AS rule_kind, tenant_id,
       CAST('${event_type}' AS STRING) AS event_type, ${alert_key} AS alert_key, first_event_at, last_event_at,
       ARRAY[ROW(CAST('step_events' AS STRING), CAST(matched AS DOUBLE))] AS `measures`,
       CURRENT_TIMESTAMP AS detected_at
-- Only rows that meet some step can take part, so only they enter the pattern: every other row
-- would sit in each open partial match's gap (X*?) until WITHIN expires, and the matcher's state
-- and work would grow with the key's event rate.
FROM (SELECT * FROM ontime_${event_type} WHERE ${any_step})
MATCH_RECOGNIZE (
    PARTITION BY tenant_id, ${key}
    ORDER BY event_at
    MEASURES
        FIRST(${first_var}.event_at) AS first_event_at,
        LAST(${last_var}.event_at) AS last_event_at,
        COUNT(event_id) AS matched
    ONE ROW PER MATCH
    AFTER MATCH SKIP PAST LAST ROW
    -- Reluctant gaps (X*?): a step completes at the first event that satisfies it. A gap row is
    -- never a first-step row: the latest first step starts the match, and a key holds one open
    -- match instead of one per first-step row in WITHIN (measured: that many partial matches,
    -- each re-read by every condition, stalled the Gold job at a few thousand events/s).
    PATTERN (${pattern}) WITHIN ${within_interval}
    DEFINE
        ${defines}
)
