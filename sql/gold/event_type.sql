-- Purpose: one event type's Silver stream for event-time work: its watermark, the on-time rows, and the late rows with how late they were (rendered into gold.sql once per event type).

-- ===== event type ${event_type} =====
CREATE TEMPORARY TABLE silver_${event_type} (
${silver_columns},
    -- Watermark ${max_ooo} behind the largest event time seen in each Kafka partition, because
    -- ${watermark_reason}.
    -- Clock skew: the Silver job sent events more than ${max_future_skew} ahead of their ingest
    -- time to the DLQ, so one bad clock cannot push this watermark ahead. Idle partitions: a
    -- partition quiet for ${idle_timeout} stops holding the watermark back.
    WATERMARK FOR event_at AS event_at - ${max_ooo_interval}
) WITH (
${with_silver}
);

-- The watermark each row meets. Window aggregations and MATCH_RECOGNIZE silently drop a row at
-- or behind it, so the split is made here, once, and both halves are kept.
CREATE TEMPORARY VIEW timed_${event_type} AS
SELECT *, CURRENT_WATERMARK(event_at) AS watermark_at
FROM silver_${event_type};

CREATE TEMPORARY VIEW ontime_${event_type} AS
SELECT * FROM timed_${event_type}
WHERE watermark_at IS NULL OR event_at > watermark_at;

CREATE TEMPORARY VIEW late_rows_${event_type} AS
SELECT *, ${event_ms} AS event_ms, ${watermark_ms} AS watermark_ms
FROM timed_${event_type}
WHERE event_at <= watermark_at;

CREATE TEMPORARY TABLE late_${event_type} (
${silver_columns},
    watermark_at  TIMESTAMP_LTZ(3),
    late_by_ms    BIGINT
) WITH (
${with_late}
);

INSERT INTO late_${event_type}
SELECT ${silver_column_names}, watermark_at, watermark_ms - event_ms
FROM late_rows_${event_type};
