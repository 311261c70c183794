-- Purpose: Silver -> Gold: event-time windows per aggregate, late rows kept with how late they were, and CEP alert rules; exactly-once to Kafka.

-- Each event type's Silver topic is read once; its rows split into on-time rows (which every
-- window and rule below uses) and late rows (kept in late_<event_type>, and merged into the
-- windows of aggregates that allow lateness).
${event_type_sections}

${aggregate_sections}

${alert_sink}
