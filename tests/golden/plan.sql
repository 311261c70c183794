-- ===== job demo_event_counts: sql/demo/gold_demo_event_counts.sql =====
SET 'table.exec.source.idle-timeout' = '10 s';
-- Purpose: count events per key in 10-second event-time tumbling windows, Kafka JSON in, Kafka JSON out, exactly-once.

CREATE TABLE bronze_demo_events (
    event_id       STRING,
    event_key      STRING,
    event_time_ms  BIGINT,
    event_at AS TO_TIMESTAMP_LTZ(event_time_ms, 3),
    -- Watermark 5 s behind the largest event time seen per partition:
    -- producers batch and retry, so an event can reach Kafka up to a few seconds after later ones from the same key; 5 s covers the disorder the demo generator makes (under 3 s).
    WATERMARK FOR event_at AS event_at - INTERVAL '5' SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = 'bronze_demo_events',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'value.format' = 'json',
  'value.json.timestamp-format.standard' = 'ISO-8601',
  'properties.group.id' = 'streamlake.demo_event_counts',
  'properties.isolation.level' = 'read_committed',
  'scan.startup.mode' = 'earliest-offset'
);

CREATE TABLE gold_demo_event_counts (
    window_start   TIMESTAMP(3),
    window_end     TIMESTAMP(3),
    event_key      STRING,
    count_events   BIGINT
) WITH (
  'connector' = 'kafka',
  'topic' = 'gold_demo_event_counts_10s',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'value.format' = 'json',
  'value.json.timestamp-format.standard' = 'ISO-8601',
  'key.format' = 'json',
  'key.fields' = 'event_key',
  'value.fields-include' = 'ALL',
  'sink.delivery-guarantee' = 'exactly-once',
  'sink.transactional-id-prefix' = 'streamlake.demo_event_counts',
  'properties.transaction.timeout.ms' = '600000'
);

INSERT INTO gold_demo_event_counts
SELECT window_start, window_end, event_key, COUNT(*) AS count_events
FROM TABLE(
    TUMBLE(TABLE bronze_demo_events, DESCRIPTOR(event_at), INTERVAL '10' SECOND)
)
GROUP BY window_start, window_end, event_key;

