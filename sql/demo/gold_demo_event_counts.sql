-- Purpose: count events per key in ${window_size_s}-second event-time tumbling windows, Kafka JSON in, Kafka JSON out, exactly-once.

CREATE TABLE bronze_demo_events (
    event_id       STRING,
    event_key      STRING,
    event_time_ms  BIGINT,
    event_at AS TO_TIMESTAMP_LTZ(event_time_ms, 3),
    -- Watermark ${max_out_of_orderness_s} s behind the largest event time seen per partition:
    -- ${watermark_reason}.
    WATERMARK FOR event_at AS event_at - INTERVAL '${max_out_of_orderness_s}' SECOND
) WITH (
${with_bronze_demo_events}
);

CREATE TABLE gold_demo_event_counts (
    window_start   TIMESTAMP(3),
    window_end     TIMESTAMP(3),
    event_key      STRING,
    count_events   BIGINT
) WITH (
${with_gold_demo_event_counts}
);

INSERT INTO gold_demo_event_counts
SELECT window_start, window_end, event_key, COUNT(*) AS count_events
FROM TABLE(
    TUMBLE(TABLE bronze_demo_events, DESCRIPTOR(event_at), INTERVAL '${window_size_s}' SECOND)
)
GROUP BY window_start, window_end, event_key;
