-- Purpose: one event type's Silver stream for event-time work: its watermark, the on-time rows, and the late rows with how late they were (rendered into gold.sql once per event type).

-- ===== event type ${event_type} =====
CREATE TEMPORARY TABLE silver_${event_type} (
${silver_columns},
    -- Which rows are late was decided by the Silver job, per Bronze partition: a row is late
    -- when event_at is at or behind partition_watermark_at, its Bronze partition's watermark
    -- (${max_ooo} behind that partition's largest event time, because ${watermark_reason}).
    -- That depends only on each Bronze partition's contents, not on how fast or in what order
    -- partitions were read. This job's watermark is the Silver job's own watermark carried by
    -- each row (stream_watermark_at): every on-time row after a row in its Silver partition is
    -- later than that value, so no window or rule below ever meets an on-time row behind it.
    -- Clock skew: the Silver job sent events more than ${max_future_skew} ahead of their
    -- ingest time to the DLQ, and they never moved a watermark. Idle partitions: every Silver
    -- partition gets rows while the Silver job has any (the Silver sinks' OwnedPartitions
    -- partitioner), so no partition is idle while data flows; one quiet for ${idle_timeout}
    -- (longer than a Silver restart, conf/gold.yaml) stops holding the watermark back.
    WATERMARK FOR event_at AS stream_watermark_at
) WITH (
${with_silver}
);

-- The watermark each row meets. Window aggregations and MATCH_RECOGNIZE silently drop a row at
-- or behind this job's watermark, so the split is made here, once, and both halves are kept:
-- late by its Bronze partition, or (only when a partition was idle and came back) behind this
-- job's watermark.
CREATE TEMPORARY VIEW timed_${event_type} AS
SELECT *,
    CASE WHEN event_at <= partition_watermark_at THEN partition_watermark_at
         WHEN event_at <= CURRENT_WATERMARK(event_at) THEN CURRENT_WATERMARK(event_at)
    END AS watermark_at
FROM silver_${event_type};

CREATE TEMPORARY VIEW ontime_${event_type} AS
SELECT * FROM timed_${event_type}
WHERE watermark_at IS NULL;

CREATE TEMPORARY VIEW late_rows_${event_type} AS
SELECT *, ${event_ms} AS event_ms, ${watermark_ms} AS watermark_ms
FROM timed_${event_type}
WHERE watermark_at IS NOT NULL;

-- The late rows: the Silver columns, the watermark each met and how late it was (streamlake/config/tables.py).
CREATE TEMPORARY TABLE late_${event_type} (
${late_columns}
) WITH (
${with_late}
);

INSERT INTO late_${event_type}
SELECT ${silver_column_names}, watermark_at, watermark_ms - event_ms
FROM late_rows_${event_type};
