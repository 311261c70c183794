-- Purpose: the alert topic, and the one INSERT of every rule's alerts (rendered into gold.sql when rules exist; each rule is a query from rule_<kind>.sql).

-- One row per alert, from every rule below and from the device_anomaly DataStream job
-- (streamlake/config/tables.py ALERTS describes the columns for both, and for the lake).
CREATE TEMPORARY TABLE alert_events (
${alert_columns}
) WITH (
${with_alert_events}
);

INSERT INTO alert_events
${alert_union};
