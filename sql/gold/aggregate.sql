-- Purpose: one Gold aggregate: ${window_desc} windows over the on-time ${event_type} rows; late rows do not revise it (rendered into gold.sql once per aggregate).

-- ===== gold_${name}: ${window_desc} =====
-- tenant, group-by keys, window, measures, late_rows (streamlake/config/tables.py, from the aggregate's YAML)
CREATE TEMPORARY TABLE gold_${name} (
${gold_columns},
    PRIMARY KEY (${primary_key}) NOT ENFORCED
) WITH (
${with_gold}
);

INSERT INTO gold_${name}
SELECT ${group_by},
${measures},
       CAST(0 AS BIGINT) AS late_rows
FROM TABLE(${window_tvf})
GROUP BY ${group_by};
