-- Purpose: Bronze -> Silver: validate raw events against the YAML schemas, send every reject to the DLQ with its bytes and reasons, deduplicate, write typed rows per event type and per-tenant audit counts; exactly-once.

-- The JVM functions (udfs/, shipped with the job): the Bronze clock, and each record's checks.
CREATE TEMPORARY FUNCTION silver_clock AS 'io.streamlake.udfs.SilverClock' LANGUAGE JAVA;
CREATE TEMPORARY FUNCTION silver_validate AS 'io.streamlake.udfs.SilverValidate' LANGUAGE JAVA;

-- Bronze is the tenant topics themselves, read once and kept as received: the record's bytes
-- plus its Kafka metadata (the columns: streamlake/config/tables.py BRONZE_SOURCE).
CREATE TEMPORARY TABLE bronze_events (
${bronze_columns},
    proc_at AS PROCTIME(),
    -- Event time is decided per Bronze partition, so that what is late does not depend on how
    -- fast or in what order partitions are read. A record's clock is its event time minus its
    -- event type's max_out_of_orderness, when it names a known event type and its event time
    -- parses and is at most max_future_skew ahead of its ingest time (a clock running ahead
    -- cannot move a watermark); otherwise NULL, and it moves nothing. The Kafka source keeps one
    -- watermark per partition, the largest clock it has read there (emitted periodically);
    -- the job's watermark, the smallest of them, reaches the Silver writers in band with the rows.
    -- silver_clock reads the record in one pass, as the JSON_VALUE calls it replaced did.
    event_clock_at AS ${event_clock},
    WATERMARK FOR event_clock_at AS event_clock_at
) WITH (
${with_bronze_events}
);

-- Validate: one pass of the JVM function silver_validate (udfs/, shipped with the job) over each
-- record's bytes gives its byte length, the topic's tenant (from config, never from the record),
-- its reason codes and its typed fields. Record checks first, the first failure wins (a record over
-- ${max_record_bytes} bytes is never parsed); then routing, the first failure wins (route_reason);
-- then every field reason together (field_reasons, NULL when the event is valid). The rules are
-- compiled from the registry into the literal below (no secrets: PII is handled further down).
-- A table function, so the planner calls it once per record whichever columns are read.
CREATE TEMPORARY VIEW bronze_routed AS
SELECT b.*, ${ingest_ms} - MOD(${ingest_ms}, ${audit_window_ms}) AS ingest_window_ms, v.*
FROM bronze_events AS b
CROSS JOIN LATERAL TABLE(silver_validate(
    b.raw_value, b.source_topic, b.source_headers['${version_header}'], b.ingest_at,
    '${validate_config}'
)) AS v;

-- Each record's Bronze partition watermark: the largest clock read so far in its partition, the
-- record's own included (a clock is below its own event time, so that changes nothing). The
-- rows of one partition reach this operator in offset order (one source split, one channel),
-- so the value depends only on the partition's contents: a row is late when its event time is at
-- or behind it, whatever the read speed. Downstream of the routing checks, which send nothing
-- away: every record's clock counts here as it counted at the source.
CREATE TEMPORARY VIEW bronze_timed AS
SELECT r.*,
    -- (CAST: a plain timestamp, not a second time attribute)
    MAX(CAST(r.event_clock_at AS TIMESTAMP_LTZ(3))) OVER (
        PARTITION BY r.source_topic, r.source_partition ORDER BY r.proc_at
    ) AS partition_watermark_at
FROM bronze_routed AS r;

-- Every rejected record: where it came from, why, and its bytes, bounded so that any record
-- makes a DLQ row the sink can write (a poison record must not stop every tenant). The whole
-- record stays in Bronze, by (source_topic, source_partition, source_offset).
-- (The columns, and what each holds: streamlake/config/tables.py DLQ.)
CREATE TEMPORARY TABLE dlq_events (
${dlq_columns}
) WITH (
${with_dlq_events}
);

-- Per-tenant counts per window of ingest time, upserted as they grow (the last value per key
-- is the count). Conservation: read = dlq + valid, and duplicates dropped = valid - silver.
CREATE TEMPORARY TABLE audit_silver_counts (
${audit_columns},
    PRIMARY KEY (${audit_primary_key}) NOT ENFORCED
) WITH (
${with_audit_silver_counts}
);

${event_type_sections}

-- Every reject, as received (each event type's field rejects join through UNION ALL).
CREATE TEMPORARY VIEW dlq_rejects AS
SELECT topic_tenant, event_type, schema_version, ARRAY[route_reason] AS reason_codes,
       claimed_tenant, source_topic, source_partition, source_offset, ingest_at, raw_key,
       source_headers, raw_value, record_bytes, CAST(proc_at AS TIMESTAMP_LTZ(3)) AS detected_at
FROM bronze_routed
WHERE route_reason IS NOT NULL
${dlq_unions};

-- Sizes of the key and of the headers as JSON (the form the DLQ row carries them in). Flink SQL
-- has no byte length for BYTES: base64 has 4 characters per 3 bytes, less its padding; UNNEST
-- materialises each base64 text once. Only rejects pay for this and for the hash below.
CREATE TEMPORARY VIEW dlq_measured AS
SELECT r.*,
    CHAR_LENGTH(m.key_b64) / 4 * 3
      - CASE WHEN m.key_b64 LIKE '%==' THEN 2 WHEN m.key_b64 LIKE '%=' THEN 1 ELSE 0 END AS key_bytes,
    CHAR_LENGTH(m.headers_b64) / 4 * 3
      - CASE WHEN m.headers_b64 LIKE '%==' THEN 2 WHEN m.headers_b64 LIKE '%=' THEN 1 ELSE 0 END AS headers_bytes
FROM dlq_rejects AS r
CROSS JOIN UNNEST(ARRAY[ROW(
    TO_BASE64(r.raw_key),
    TO_BASE64(ENCODE(JSON_STRING(MAP_ENTRIES(r.source_headers)), 'UTF-8'))
)]) AS m(key_b64, headers_b64);

-- One INSERT per Kafka table: each sink owns its transactional ids, and two sinks sharing a
-- prefix would fence each other. Bounded by construction: CAST to VARBINARY(n) keeps the first
-- n bytes; the claimed tenant is cut to 256 characters.
INSERT INTO dlq_events
SELECT topic_tenant, event_type, schema_version, reason_codes, LEFT(claimed_tenant, 256),
       source_topic, source_partition, source_offset, ingest_at,
       CAST(raw_key AS VARBINARY(${dlq_max_key_bytes})), CAST(key_bytes AS BIGINT),
       CASE WHEN headers_bytes <= ${dlq_max_headers_bytes} THEN MAP_ENTRIES(source_headers) END,
       COALESCE(headers_bytes > ${dlq_max_headers_bytes}, FALSE),
       CAST(raw_value AS VARBINARY(${dlq_max_value_bytes})), CAST(record_bytes AS BIGINT),
       SHA256(raw_value), COALESCE(record_bytes > ${dlq_max_value_bytes}, FALSE),
       detected_at
FROM dlq_measured;

-- What each record counts towards: (ingest window, tenant, event type, metric).
CREATE TEMPORARY VIEW audit_facts AS
SELECT CAST(TO_TIMESTAMP_LTZ(f.ingest_window_ms, 3) AS TIMESTAMP(3)) AS window_start,
       CAST(TO_TIMESTAMP_LTZ(f.ingest_window_ms + ${audit_window_ms}, 3) AS TIMESTAMP(3)) AS window_end,
       f.tenant_id, f.event_type, f.metric
FROM (
    SELECT ingest_window_ms, topic_tenant AS tenant_id, '' AS event_type, 'read' AS metric
    FROM bronze_routed
    UNION ALL
    SELECT ingest_window_ms, topic_tenant, '', 'dlq'
    FROM bronze_routed
    WHERE route_reason IS NOT NULL
    ${audit_unions}
) AS f;

-- Windows are of broker ingest time (Bronze topics are LogAppendTime), counted by key rather than
-- by an ingest-time watermark: the job's one watermark is event time. A count's state lives for
-- the job's state TTL (the longest dedup horizon) after its last record.
-- Grouped by exactly the sink's primary key, so each count is an upsert of its key (no
-- retraction, no tombstone, no upsert materializer).
INSERT INTO audit_silver_counts
SELECT window_start, window_end, tenant_id, event_type, metric, COUNT(*)
FROM audit_facts
GROUP BY window_start, window_end, tenant_id, event_type, metric;
