-- Purpose: the alert topic, and the one INSERT of every rule's alerts (rendered into gold.sql when rules exist; each rule is a query from rule_<kind>.sql).

-- One row per alert. measures holds what triggered it, as (name, value) pairs.
CREATE TEMPORARY TABLE alert_events (
    rule_id         STRING,
    rule_kind       STRING,
    tenant_id       STRING,
    event_type      STRING,
    alert_key       STRING,
    first_event_at  TIMESTAMP_LTZ(3),
    last_event_at   TIMESTAMP_LTZ(3),
    `measures`      ARRAY<ROW<name STRING, `value` DOUBLE>>,
    detected_at     TIMESTAMP_LTZ(3)
) WITH (
${with_alert_events}
);

INSERT INTO alert_events
${alert_union};
