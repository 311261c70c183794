-- Purpose: one Gold aggregate whose windows late rows revise: ${window_desc} windows over the on-time ${event_type} rows, then each late row within ${allowed_lateness} merged into its windows and the row upserted (rendered into gold.sql once per aggregate).

-- ===== gold_${name}: ${window_desc}, revised by late rows within ${allowed_lateness} =====
-- tenant, group-by keys, window, measures, late_rows (streamlake/config/tables.py, from the aggregate's YAML)
CREATE TEMPORARY TABLE gold_${name} (
${gold_columns},
    PRIMARY KEY (${primary_key}) NOT ENFORCED
) WITH (
${with_gold}
);

-- Each window's parts when it fires (the watermark passes its end).
CREATE TEMPORARY VIEW gold_parts_${name} AS
SELECT ${group_by},
${partials},
       CAST(0 AS BIGINT) AS late_rows
FROM TABLE(${window_tvf})
GROUP BY ${group_by};

-- A late row's part for every window that holds it and closed less than ${allowed_lateness} ago
-- (its end is after the row's watermark minus the allowed lateness).
CREATE TEMPORARY VIEW gold_late_parts_${name} AS
SELECT l.tenant_id, ${key_select}
       CAST(TO_TIMESTAMP_LTZ(w.start_ms, 3) AS TIMESTAMP(3)),
       CAST(TO_TIMESTAMP_LTZ(w.end_ms, 3) AS TIMESTAMP(3)),
${late_partials},
       CAST(1 AS BIGINT)
FROM late_rows_${event_type} AS l
CROSS JOIN UNNEST(ARRAY[${candidate_windows}]) AS w(start_ms, end_ms)
WHERE w.start_ms <= l.event_ms AND l.event_ms < w.end_ms
  AND w.end_ms > l.watermark_ms - ${allowed_lateness_ms};

-- Parts merge per window: the Gold row is the window's first result, then each revision,
-- upserted on the primary key.
INSERT INTO gold_${name}
SELECT ${group_by},
${final_measures},
       SUM(late_rows)
FROM (
    SELECT * FROM gold_parts_${name}
    UNION ALL
    SELECT * FROM gold_late_parts_${name}
)
GROUP BY ${group_by};
