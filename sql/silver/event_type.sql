-- Purpose: one event type's field rejects, PII-handled typed values, deduplicated Silver rows and audit counts (rendered into silver.sql once per event type; its DLQ and audit rows join silver.sql's single INSERT into each).

-- ===== event type ${event_type} =====
-- The routed events of this type: silver_validate checked their fields (field_reasons) and typed
-- them into typed_${event_type}.
CREATE TEMPORARY VIEW silver_checked_${event_type} AS
SELECT * FROM bronze_timed
WHERE route_reason IS NULL AND event_type = '${event_type}';

-- The envelope, this type's fields (all versions'), where the row came from and the watermarks
-- (streamlake/config/tables.py silver()).
CREATE TEMPORARY TABLE silver_${event_type} (
${silver_columns}
) WITH (
${with_silver}
);

-- Field rejects, as received: silver.sql's dlq_rejects joins them and bounds every DLQ row.
CREATE TEMPORARY VIEW dlq_rows_${event_type} AS
SELECT topic_tenant, event_type, schema_version, field_reasons, claimed_tenant,
       source_topic, source_partition, source_offset, ingest_at, raw_key, source_headers,
       raw_value, record_bytes, CAST(proc_at AS TIMESTAMP_LTZ(3))
FROM silver_checked_${event_type}
WHERE field_reasons IS NOT NULL;

-- Deduplicate on (tenant_id, event_id), keeping the first arrival; state lives for this event
-- type's dedup horizon (${dedup_horizon}, wall-clock: this operator's TTL in the compiled plan,
-- jobs/plan_ttl.py).
CREATE TEMPORARY VIEW silver_deduped_${event_type} AS
SELECT * FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY tenant_id, event_id ORDER BY proc_at) AS arrival_rank
    FROM silver_checked_${event_type}
    WHERE field_reasons IS NULL
)
WHERE arrival_rank = 1;

INSERT INTO silver_${event_type}
SELECT tenant_id, event_type, schema_version, event_id, event_at,
${silver_projection},
       source_topic, source_partition, source_offset, ingest_at,
       partition_watermark_at, CURRENT_WATERMARK(event_clock_at)
FROM silver_deduped_${event_type};

CREATE TEMPORARY VIEW audit_rows_${event_type} AS
SELECT ingest_window_ms, topic_tenant, '${event_type}',
       CASE WHEN field_reasons IS NULL THEN 'valid' ELSE 'dlq' END
FROM silver_checked_${event_type}
UNION ALL
SELECT ingest_window_ms, topic_tenant, '${event_type}', 'silver'
FROM silver_deduped_${event_type};
