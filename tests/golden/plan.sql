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
  'sink.transactional-id-prefix' = 'streamlake.demo_event_counts.gold_demo_event_counts',
  'properties.transaction.timeout.ms' = '600000'
);

INSERT INTO gold_demo_event_counts
SELECT window_start, window_end, event_key, COUNT(*) AS count_events
FROM TABLE(
    TUMBLE(TABLE bronze_demo_events, DESCRIPTOR(event_at), INTERVAL '10' SECOND)
)
GROUP BY window_start, window_end, event_key;

-- ===== job silver: sql/silver/silver.sql =====
SET 'table.exec.state.ttl' = '3600000 ms';
SET 'table.exec.source.idle-timeout' = '10000 ms';
-- Purpose: Bronze -> Silver: validate raw events against the YAML schemas, send every reject to the DLQ with its bytes and reasons, deduplicate, write typed rows per event type and per-tenant audit counts; exactly-once.

-- Bronze is the tenant topics themselves, read once and kept as received: the record's bytes
-- plus its Kafka metadata.
CREATE TEMPORARY TABLE bronze_events (
    raw_key          BYTES,
    raw_value        BYTES,
    source_topic     STRING             METADATA FROM 'topic' VIRTUAL,
    source_partition INT                METADATA FROM 'partition' VIRTUAL,
    source_offset    BIGINT             METADATA FROM 'offset' VIRTUAL,
    ingest_at        TIMESTAMP_LTZ(3)   METADATA FROM 'timestamp' VIRTUAL,
    source_headers   MAP<STRING, BYTES> METADATA FROM 'headers' VIRTUAL,
    proc_at AS PROCTIME(),
    -- Watermark on broker ingest time, 5s behind. Bronze topics are created with
    -- LogAppendTime, so ingest time is in order per partition; the bound covers topics that keep
    -- producer CreateTime. It only closes the audit windows: event-time watermarks are declared
    -- where Silver is read, after events beyond the allowed future skew were rejected here.
    WATERMARK FOR ingest_at AS ingest_at - INTERVAL '0 00:00:05.000' DAY TO SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = 'bronze_acme_events;bronze_globex_events',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'value.format' = 'raw',
  'key.format' = 'raw',
  'key.fields' = 'raw_key',
  'value.fields-include' = 'EXCEPT_KEY',
  'properties.group.id' = 'streamlake.silver',
  'properties.isolation.level' = 'read_committed',
  'scan.startup.mode' = 'earliest-offset'
);

-- Decode, and measure the record (Flink has no byte length for BYTES: base64 has 4 characters
-- per 3 bytes, less its padding). A record over 1048576 bytes is never parsed.
CREATE TEMPORARY VIEW bronze_decoded AS
SELECT b.*, d.line, d.topic_tenant,
    CHAR_LENGTH(d.raw_b64) / 4 * 3
      - CASE WHEN d.raw_b64 LIKE '%==' THEN 2 WHEN d.raw_b64 LIKE '%=' THEN 1 ELSE 0 END AS record_bytes
FROM bronze_events AS b
CROSS JOIN UNNEST(ARRAY[ROW(
    -- DECODE replaces invalid UTF-8 with U+FFFD (a CAST would keep the bytes as they are).
    DECODE(b.raw_value, 'UTF-8'),
    TO_BASE64(b.raw_value),
    -- The tenant that owns the topic (from config, never from the record).
    CASE b.source_topic WHEN 'bronze_acme_events' THEN 'acme' WHEN 'bronze_globex_events' THEN 'globex' END
)]) AS d(line, raw_b64, topic_tenant);

-- The envelope. Each JSON path is parsed once: UNNEST materialises the values, so the checks
-- below reuse them instead of parsing the record again.
CREATE TEMPORARY VIEW bronze_envelope AS
SELECT d.*, e.is_strict_json, e.w_tenant, e.w_type, e.w_version, e.header_version
FROM bronze_decoded AS d
CROSS JOIN UNNEST(ARRAY[ROW(
    CASE WHEN d.record_bytes <= 1048576 THEN TRY_PARSE_JSON(d.line) IS NOT NULL END,
    CASE WHEN d.record_bytes <= 1048576
         THEN JSON_QUERY(d.line, '$.tenant_id' WITH UNCONDITIONAL ARRAY WRAPPER) END,
    CASE WHEN d.record_bytes <= 1048576
         THEN JSON_QUERY(d.line, '$.event_type' WITH UNCONDITIONAL ARRAY WRAPPER) END,
    CASE WHEN d.record_bytes <= 1048576
         THEN JSON_QUERY(d.line, '$.schema_version' WITH UNCONDITIONAL ARRAY WRAPPER) END,
    CAST(d.source_headers['schema_version'] AS STRING)
)]) AS e(is_strict_json, w_tenant, w_type, w_version, header_version);

CREATE TEMPORARY VIEW bronze_identified AS
SELECT
    e.*,
    CASE WHEN REGEXP(e.w_tenant, '^\["[a-z][a-z0-9_-]{1,62}"\]$')
         THEN SUBSTRING(e.w_tenant FROM 3 FOR CHAR_LENGTH(e.w_tenant) - 4) END AS tenant_id,
    CASE WHEN REGEXP(e.w_type, '^\["[a-z][a-z0-9_]{0,62}"\]$')
         THEN SUBSTRING(e.w_type FROM 3 FOR CHAR_LENGTH(e.w_type) - 4) END AS event_type,
    -- The version comes from the event, or else from the Kafka header.
    COALESCE(
        TRY_CAST(REGEXP_EXTRACT(e.w_version, '^\["?([0-9]{1,4})"?\]$', 1) AS INT),
        CASE WHEN e.w_version IS NULL OR e.w_version = '[null]'
             THEN TRY_CAST(REGEXP_EXTRACT(e.header_version, '^([0-9]{1,4})$', 1) AS INT) END
    ) AS schema_version
FROM bronze_envelope AS e;

-- Record-level and routing checks, in order; the first that fails is the reason.
CREATE TEMPORARY VIEW bronze_routed AS
SELECT i.*,
    CASE
        WHEN i.raw_value IS NULL THEN 'empty_record'
        WHEN i.record_bytes > 1048576 THEN 'oversized_record'
        WHEN POSITION(U&'\FFFD' IN i.line) > 0 AND ENCODE(i.line, 'UTF-8') <> i.raw_value
            THEN 'invalid_utf8'
        WHEN NOT i.is_strict_json THEN
            CASE WHEN i.line IS JSON THEN 'duplicate_key'
                 WHEN REGEXP(i.line, '(^|[\[:,])\s*-?(NaN|Infinity)\s*([\],}]|$)') THEN 'non_finite_number'
                 ELSE 'malformed_json' END
        WHEN NOT REGEXP(i.line, '^\s*\{') THEN 'not_an_object'
        WHEN POSITION('\u' IN i.line) > 0 AND REGEXP(i.line,
            '\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}')
            THEN 'invalid_unicode'
        WHEN i.w_tenant IS NULL OR i.w_tenant = '[null]' THEN 'missing_field:tenant_id'
        WHEN i.tenant_id IS NULL THEN 'invalid_tenant_id'
        WHEN i.tenant_id NOT IN ('acme', 'globex') THEN 'unknown_tenant'
        WHEN i.tenant_id <> i.topic_tenant THEN 'tenant_topic_mismatch'
        WHEN i.w_type IS NULL OR i.w_type = '[null]' THEN 'missing_field:event_type'
        WHEN i.event_type IS NULL OR i.event_type NOT IN ('device_telemetry', 'orders') THEN 'unknown_event_type'
        WHEN i.tenant_id || '/' || i.event_type NOT IN ('acme/device_telemetry', 'acme/orders', 'globex/orders') THEN 'event_type_not_allowed'
        WHEN i.schema_version IS NULL
          OR i.event_type || '/' || CAST(i.schema_version AS STRING) NOT IN ('device_telemetry/1', 'orders/1', 'orders/2')
            THEN 'unknown_version'
        WHEN i.tenant_id || '/' || i.event_type || '/' || CAST(i.schema_version AS STRING)
             NOT IN ('acme/device_telemetry/1', 'acme/orders/1', 'acme/orders/2', 'globex/orders/2') THEN 'version_not_active'
    END AS route_reason
FROM bronze_identified AS i;

-- Every rejected record, with its original bytes, where it came from and why.
CREATE TEMPORARY TABLE dlq_events (
    tenant_id         STRING,
    event_type        STRING,
    schema_version    INT,
    reason_codes      ARRAY<STRING>,
    claimed_tenant    STRING,
    source_topic      STRING,
    source_partition  INT,
    source_offset     BIGINT,
    ingest_at         TIMESTAMP_LTZ(3),
    source_key        BYTES,
    source_headers    MAP<STRING, BYTES>,
    raw_value         BYTES,
    detected_at       TIMESTAMP_LTZ(3)
) WITH (
  'connector' = 'kafka',
  'topic' = 'dlq_events',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'value.format' = 'json',
  'value.json.timestamp-format.standard' = 'ISO-8601',
  'sink.delivery-guarantee' = 'exactly-once',
  'sink.transactional-id-prefix' = 'streamlake.silver.dlq_events',
  'properties.transaction.timeout.ms' = '600000'
);

-- Per-tenant counts per window of ingest time. Conservation:
-- read = dlq + valid, and duplicates dropped = valid - silver.
CREATE TEMPORARY TABLE audit_silver_counts (
    window_start   TIMESTAMP(3),
    window_end     TIMESTAMP(3),
    tenant_id      STRING,
    event_type     STRING,
    metric         STRING,
    count_records  BIGINT
) WITH (
  'connector' = 'kafka',
  'topic' = 'audit_silver_counts',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'value.format' = 'json',
  'value.json.timestamp-format.standard' = 'ISO-8601',
  'sink.delivery-guarantee' = 'exactly-once',
  'sink.transactional-id-prefix' = 'streamlake.silver.audit_silver_counts',
  'properties.transaction.timeout.ms' = '600000'
);

-- Purpose: one event type's field checks, typed values, DLQ rows, deduplicated Silver rows and audit counts (rendered into silver.sql once per event type; its DLQ and audit rows join silver.sql's single INSERT into each).

-- ===== event type device_telemetry =====
-- Each declared field's JSON path is parsed once (materialised by UNNEST), as a wrapped JSON
-- text: ["text"], [12], [true], [{...}], [[...]], [null], or NULL when the key is absent.
CREATE TEMPORARY VIEW silver_fields_device_telemetry AS
SELECT r.*, f.*
FROM bronze_routed AS r
CROSS JOIN UNNEST(ARRAY[ROW(
    JSON_QUERY(r.line, '$.event_id' WITH UNCONDITIONAL ARRAY WRAPPER),
    JSON_QUERY(r.line, '$.event_time' WITH UNCONDITIONAL ARRAY WRAPPER),
    JSON_QUERY(r.line, '$.device_id' WITH UNCONDITIONAL ARRAY WRAPPER),
    JSON_QUERY(r.line, '$.temperature_c' WITH UNCONDITIONAL ARRAY WRAPPER),
    JSON_QUERY(r.line, '$.humidity_pct' WITH UNCONDITIONAL ARRAY WRAPPER),
    JSON_QUERY(r.line, '$.battery_ok' WITH UNCONDITIONAL ARRAY WRAPPER),
    JSON_QUERY(r.line, '$.status' WITH UNCONDITIONAL ARRAY WRAPPER),
    JSON_QUERY(r.line, '$.location' WITH UNCONDITIONAL ARRAY WRAPPER),
    JSON_QUERY(r.line, '$.location.lat' WITH UNCONDITIONAL ARRAY WRAPPER),
    JSON_QUERY(r.line, '$.location.lon' WITH UNCONDITIONAL ARRAY WRAPPER),
    JSON_QUERY(r.line, '$.tags' WITH UNCONDITIONAL ARRAY WRAPPER),
    JSON_QUERY(r.line, '$.technician_email' WITH UNCONDITIONAL ARRAY WRAPPER)
)]) AS f(w___event_id, w___event_time, w_device_id, w_temperature_c, w_humidity_pct, w_battery_ok, w_status, w_location, w_location__lat, w_location__lon, w_tags, w_technician_email)
WHERE r.route_reason IS NULL AND r.event_type = 'device_telemetry';

CREATE TEMPORARY VIEW silver_typed_device_telemetry AS
SELECT *,
    CASE WHEN (w___event_id IS NULL OR w___event_id = '[null]') OR NOT (w___event_id LIKE '["%' OR REGEXP(w___event_id, '^\[-?[0-9]+\]$')) THEN NULL WHEN w___event_id LIKE '["%' THEN CASE WHEN POSITION('\' IN w___event_id) = 0 THEN SUBSTRING(w___event_id FROM 3 FOR CHAR_LENGTH(w___event_id) - 4) ELSE JSON_VALUE(w___event_id, '$[0]') END ELSE SUBSTRING(w___event_id FROM 2 FOR CHAR_LENGTH(w___event_id) - 2) END AS v_event_id,
    CASE WHEN (w___event_time IS NULL OR w___event_time = '[null]') OR NOT REGEXP(w___event_time, '^\[-?[0-9]+\]$') THEN NULL ELSE CASE WHEN TRY_CAST(SUBSTRING(w___event_time FROM 2 FOR CHAR_LENGTH(w___event_time) - 2) AS BIGINT) BETWEEN 0 AND 253402300799999 THEN TO_TIMESTAMP_LTZ(TRY_CAST(SUBSTRING(w___event_time FROM 2 FOR CHAR_LENGTH(w___event_time) - 2) AS BIGINT), 3) END END AS v_event_at,
    CASE WHEN (w_device_id IS NULL OR w_device_id = '[null]') OR NOT w_device_id LIKE '["%' THEN NULL ELSE CASE WHEN POSITION('\' IN w_device_id) = 0 THEN SUBSTRING(w_device_id FROM 3 FOR CHAR_LENGTH(w_device_id) - 4) ELSE JSON_VALUE(w_device_id, '$[0]') END END AS v_device_id,
    CASE WHEN (w_temperature_c IS NULL OR w_temperature_c = '[null]') OR NOT REGEXP(w_temperature_c, '^\[-?[0-9]') THEN NULL ELSE TRY_CAST(SUBSTRING(w_temperature_c FROM 2 FOR CHAR_LENGTH(w_temperature_c) - 2) AS DOUBLE) END AS v_temperature_c,
    CASE WHEN (w_humidity_pct IS NULL OR w_humidity_pct = '[null]') OR NOT REGEXP(w_humidity_pct, '^\[-?[0-9]+\]$') THEN NULL ELSE TRY_CAST(SUBSTRING(w_humidity_pct FROM 2 FOR CHAR_LENGTH(w_humidity_pct) - 2) AS BIGINT) END AS v_humidity_pct,
    CASE WHEN (w_battery_ok IS NULL OR w_battery_ok = '[null]') OR NOT w_battery_ok IN ('[true]', '[false]') THEN NULL ELSE w_battery_ok = '[true]' END AS v_battery_ok,
    CASE WHEN (w_status IS NULL OR w_status = '[null]') OR NOT w_status LIKE '["%' THEN NULL ELSE CASE WHEN POSITION('\' IN w_status) = 0 THEN SUBSTRING(w_status FROM 3 FOR CHAR_LENGTH(w_status) - 4) ELSE JSON_VALUE(w_status, '$[0]') END END AS v_status,
    CASE WHEN (w_location__lat IS NULL OR w_location__lat = '[null]') OR NOT REGEXP(w_location__lat, '^\[-?[0-9]') THEN NULL ELSE TRY_CAST(SUBSTRING(w_location__lat FROM 2 FOR CHAR_LENGTH(w_location__lat) - 2) AS DOUBLE) END AS v_location__lat,
    CASE WHEN (w_location__lon IS NULL OR w_location__lon = '[null]') OR NOT REGEXP(w_location__lon, '^\[-?[0-9]') THEN NULL ELSE TRY_CAST(SUBSTRING(w_location__lon FROM 2 FOR CHAR_LENGTH(w_location__lon) - 2) AS DOUBLE) END AS v_location__lon,
    CASE WHEN (w_tags IS NULL OR w_tags = '[null]') OR NOT w_tags LIKE '[[%' THEN NULL ELSE JSON_QUERY(w_tags, '$[0]' RETURNING ARRAY<STRING>) END AS v_tags,
    CASE WHEN (w_technician_email IS NULL OR w_technician_email = '[null]') OR NOT w_technician_email LIKE '["%' THEN NULL ELSE CASE WHEN POSITION('\' IN w_technician_email) = 0 THEN SUBSTRING(w_technician_email FROM 3 FOR CHAR_LENGTH(w_technician_email) - 4) ELSE JSON_VALUE(w_technician_email, '$[0]') END END AS v_technician_email
FROM silver_fields_device_telemetry;

CREATE TEMPORARY VIEW silver_checked_device_telemetry AS
SELECT *,
    CONCAT_WS(',',
        CASE WHEN (w___event_id IS NULL OR w___event_id = '[null]') THEN 'missing_field:event_id' WHEN NOT (w___event_id LIKE '["%' OR REGEXP(w___event_id, '^\[-?[0-9]+\]$')) THEN 'wrong_type:event_id' WHEN CHAR_LENGTH(v_event_id) NOT BETWEEN 1 AND 256 THEN 'out_of_range:event_id' END,
        CASE WHEN (w___event_time IS NULL OR w___event_time = '[null]') THEN 'missing_field:event_time' WHEN v_event_at IS NULL THEN 'event_time_unparseable' WHEN v_event_at > ingest_at + INTERVAL '0 00:05:00.000' DAY TO SECOND THEN 'event_time_in_future' END,
        CASE WHEN (w_device_id IS NULL OR w_device_id = '[null]') THEN 'missing_field:device_id' WHEN NOT w_device_id LIKE '["%' THEN 'wrong_type:device_id' WHEN NOT REGEXP(v_device_id, '^(?:^dev-[0-9]{1,6}$)$') THEN 'pattern_mismatch:device_id' END,
        CASE WHEN (w_temperature_c IS NULL OR w_temperature_c = '[null]') THEN 'missing_field:temperature_c' WHEN NOT REGEXP(w_temperature_c, '^\[-?[0-9]') THEN 'wrong_type:temperature_c' WHEN v_temperature_c IS NULL OR v_temperature_c < -80 OR v_temperature_c > 150 THEN 'out_of_range:temperature_c' END,
        CASE WHEN (w_humidity_pct IS NULL OR w_humidity_pct = '[null]') THEN NULL WHEN NOT REGEXP(w_humidity_pct, '^\[-?[0-9]+\]$') THEN 'wrong_type:humidity_pct' WHEN v_humidity_pct IS NULL OR v_humidity_pct < 0 OR v_humidity_pct > 100 THEN 'out_of_range:humidity_pct' END,
        CASE WHEN (w_battery_ok IS NULL OR w_battery_ok = '[null]') THEN NULL WHEN NOT w_battery_ok IN ('[true]', '[false]') THEN 'wrong_type:battery_ok' END,
        CASE WHEN (w_status IS NULL OR w_status = '[null]') THEN NULL WHEN NOT w_status LIKE '["%' THEN 'wrong_type:status' WHEN v_status NOT IN ('ok', 'degraded', 'failed') THEN 'invalid_enum:status' END,
        CASE WHEN (w_location IS NULL OR w_location = '[null]') THEN NULL WHEN NOT w_location LIKE '[{%' THEN 'wrong_type:location' END,
        CASE WHEN (w_location IS NULL OR w_location = '[null]') OR NOT w_location LIKE '[{%' THEN NULL ELSE CASE WHEN (w_location__lat IS NULL OR w_location__lat = '[null]') THEN 'missing_field:location.lat' WHEN NOT REGEXP(w_location__lat, '^\[-?[0-9]') THEN 'wrong_type:location.lat' WHEN v_location__lat IS NULL OR v_location__lat < -90 OR v_location__lat > 90 THEN 'out_of_range:location.lat' END END,
        CASE WHEN (w_location IS NULL OR w_location = '[null]') OR NOT w_location LIKE '[{%' THEN NULL ELSE CASE WHEN (w_location__lon IS NULL OR w_location__lon = '[null]') THEN 'missing_field:location.lon' WHEN NOT REGEXP(w_location__lon, '^\[-?[0-9]') THEN 'wrong_type:location.lon' WHEN v_location__lon IS NULL OR v_location__lon < -180 OR v_location__lon > 180 THEN 'out_of_range:location.lon' END END,
        CASE WHEN (w_tags IS NULL OR w_tags = '[null]') THEN NULL WHEN NOT w_tags LIKE '[[%' THEN 'wrong_type:tags' WHEN v_tags IS NULL THEN 'wrong_type:tags' END,
        CASE WHEN (w_technician_email IS NULL OR w_technician_email = '[null]') THEN NULL WHEN NOT w_technician_email LIKE '["%' THEN 'wrong_type:technician_email' END
    ) AS field_reasons
FROM silver_typed_device_telemetry;

CREATE TEMPORARY TABLE silver_device_telemetry (
    tenant_id         STRING,
    event_type        STRING,
    schema_version    INT,
    event_id          STRING,
    event_at          TIMESTAMP_LTZ(3),
    `device_id` STRING,
    `temperature_c` DOUBLE,
    `humidity_pct` INT,
    `battery_ok` BOOLEAN,
    `status` STRING,
    `location` ROW<`lat` DOUBLE, `lon` DOUBLE>,
    `tags` ARRAY<STRING>,
    `technician_email` STRING,
    source_topic      STRING,
    source_partition  INT,
    source_offset     BIGINT,
    ingest_at         TIMESTAMP_LTZ(3)
) WITH (
  'connector' = 'kafka',
  'topic' = 'silver_device_telemetry',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'value.format' = 'json',
  'value.json.timestamp-format.standard' = 'ISO-8601',
  'key.format' = 'json',
  'key.fields' = 'tenant_id;event_id',
  'value.fields-include' = 'ALL',
  'sink.delivery-guarantee' = 'exactly-once',
  'sink.transactional-id-prefix' = 'streamlake.silver.silver_device_telemetry',
  'properties.transaction.timeout.ms' = '600000'
);

CREATE TEMPORARY VIEW dlq_rows_device_telemetry AS
SELECT topic_tenant, event_type, schema_version, SPLIT(field_reasons, ','), LEFT(w_tenant, 256),
       source_topic, source_partition, source_offset, ingest_at, raw_key, source_headers,
       raw_value, CAST(proc_at AS TIMESTAMP_LTZ(3))
FROM silver_checked_device_telemetry
WHERE field_reasons <> '';

-- Deduplicate on (tenant_id, event_id), keeping the first arrival; state lives for the dedup
-- horizon (1h, wall-clock: table.exec.state.ttl).
CREATE TEMPORARY VIEW silver_deduped_device_telemetry AS
SELECT * FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY tenant_id, v_event_id ORDER BY proc_at) AS arrival_rank
    FROM silver_checked_device_telemetry
    WHERE field_reasons = ''
)
WHERE arrival_rank = 1;

INSERT INTO silver_device_telemetry
SELECT tenant_id, event_type, schema_version, v_event_id, v_event_at,
       v_device_id AS `device_id`,
       v_temperature_c AS `temperature_c`,
       CAST(v_humidity_pct AS INT) AS `humidity_pct`,
       v_battery_ok AS `battery_ok`,
       v_status AS `status`,
       CASE WHEN (w_location IS NULL OR w_location = '[null]') OR NOT w_location LIKE '[{%' THEN NULL ELSE CAST(ROW(v_location__lat, v_location__lon) AS ROW<`lat` DOUBLE, `lon` DOUBLE>) END AS `location`,
       v_tags AS `tags`,
       CASE WHEN CHAR_LENGTH(v_technician_email) <= 4 THEN REPEAT('*', CHAR_LENGTH(v_technician_email)) ELSE CONCAT(REPEAT('*', CHAR_LENGTH(v_technician_email) - 4), RIGHT(v_technician_email, 4)) END AS `technician_email`,
       source_topic, source_partition, source_offset, ingest_at
FROM silver_deduped_device_telemetry;

CREATE TEMPORARY VIEW audit_rows_device_telemetry AS
SELECT a.window_start, a.window_end, a.tenant_id, 'device_telemetry', m.metric, m.count_records
FROM (
    SELECT window_start, window_end, topic_tenant AS tenant_id,
           COUNT(*) FILTER (WHERE field_reasons = '') AS count_valid,
           COUNT(*) FILTER (WHERE field_reasons <> '') AS count_dlq
    FROM TABLE(TUMBLE(TABLE silver_checked_device_telemetry, DESCRIPTOR(ingest_at), INTERVAL '0 00:01:00.000' DAY TO SECOND))
    GROUP BY window_start, window_end, topic_tenant
) AS a
CROSS JOIN UNNEST(ARRAY[ROW('valid', a.count_valid), ROW('dlq', a.count_dlq)]) AS m(metric, count_records)
UNION ALL
SELECT window_start, window_end, topic_tenant, 'device_telemetry', 'silver', COUNT(*)
FROM TABLE(TUMBLE(TABLE silver_deduped_device_telemetry, DESCRIPTOR(ingest_at), INTERVAL '0 00:01:00.000' DAY TO SECOND))
GROUP BY window_start, window_end, topic_tenant;


-- Purpose: one event type's field checks, typed values, DLQ rows, deduplicated Silver rows and audit counts (rendered into silver.sql once per event type; its DLQ and audit rows join silver.sql's single INSERT into each).

-- ===== event type orders =====
-- Each declared field's JSON path is parsed once (materialised by UNNEST), as a wrapped JSON
-- text: ["text"], [12], [true], [{...}], [[...]], [null], or NULL when the key is absent.
CREATE TEMPORARY VIEW silver_fields_orders AS
SELECT r.*, f.*
FROM bronze_routed AS r
CROSS JOIN UNNEST(ARRAY[ROW(
    JSON_QUERY(r.line, '$.order_id' WITH UNCONDITIONAL ARRAY WRAPPER),
    JSON_QUERY(r.line, '$.placed_at' WITH UNCONDITIONAL ARRAY WRAPPER),
    JSON_QUERY(r.line, '$.customer_id' WITH UNCONDITIONAL ARRAY WRAPPER),
    JSON_QUERY(r.line, '$.amount_cents' WITH UNCONDITIONAL ARRAY WRAPPER),
    JSON_QUERY(r.line, '$.currency' WITH UNCONDITIONAL ARRAY WRAPPER),
    JSON_QUERY(r.line, '$.customer_email' WITH UNCONDITIONAL ARRAY WRAPPER),
    JSON_QUERY(r.line, '$.channel' WITH UNCONDITIONAL ARRAY WRAPPER),
    JSON_QUERY(r.line, '$.coupon_code' WITH UNCONDITIONAL ARRAY WRAPPER)
)]) AS f(w___event_id, w___event_time, w_customer_id, w_amount_cents, w_currency, w_customer_email, w_channel, w_coupon_code)
WHERE r.route_reason IS NULL AND r.event_type = 'orders';

CREATE TEMPORARY VIEW silver_typed_orders AS
SELECT *,
    CASE WHEN (w___event_id IS NULL OR w___event_id = '[null]') OR NOT (w___event_id LIKE '["%' OR REGEXP(w___event_id, '^\[-?[0-9]+\]$')) THEN NULL WHEN w___event_id LIKE '["%' THEN CASE WHEN POSITION('\' IN w___event_id) = 0 THEN SUBSTRING(w___event_id FROM 3 FOR CHAR_LENGTH(w___event_id) - 4) ELSE JSON_VALUE(w___event_id, '$[0]') END ELSE SUBSTRING(w___event_id FROM 2 FOR CHAR_LENGTH(w___event_id) - 2) END AS v_event_id,
    CASE WHEN (w___event_time IS NULL OR w___event_time = '[null]') OR NOT w___event_time LIKE '["%' THEN NULL ELSE CASE WHEN REGEXP(w___event_time, '^\["[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,3})?Z"\]$') THEN CAST(TO_TIMESTAMP(REPLACE(REPLACE(CASE WHEN POSITION('\' IN w___event_time) = 0 THEN SUBSTRING(w___event_time FROM 3 FOR CHAR_LENGTH(w___event_time) - 4) ELSE JSON_VALUE(w___event_time, '$[0]') END, 'T', ' '), 'Z', '')) AS TIMESTAMP_LTZ(3)) END END AS v_event_at,
    CASE WHEN (w_customer_id IS NULL OR w_customer_id = '[null]') OR NOT w_customer_id LIKE '["%' THEN NULL ELSE CASE WHEN POSITION('\' IN w_customer_id) = 0 THEN SUBSTRING(w_customer_id FROM 3 FOR CHAR_LENGTH(w_customer_id) - 4) ELSE JSON_VALUE(w_customer_id, '$[0]') END END AS v_customer_id,
    CASE WHEN (w_amount_cents IS NULL OR w_amount_cents = '[null]') OR NOT REGEXP(w_amount_cents, '^\[-?[0-9]+\]$') THEN NULL ELSE TRY_CAST(SUBSTRING(w_amount_cents FROM 2 FOR CHAR_LENGTH(w_amount_cents) - 2) AS BIGINT) END AS v_amount_cents,
    CASE WHEN (w_currency IS NULL OR w_currency = '[null]') OR NOT w_currency LIKE '["%' THEN NULL ELSE CASE WHEN POSITION('\' IN w_currency) = 0 THEN SUBSTRING(w_currency FROM 3 FOR CHAR_LENGTH(w_currency) - 4) ELSE JSON_VALUE(w_currency, '$[0]') END END AS v_currency,
    CASE WHEN (w_customer_email IS NULL OR w_customer_email = '[null]') OR NOT w_customer_email LIKE '["%' THEN NULL ELSE CASE WHEN POSITION('\' IN w_customer_email) = 0 THEN SUBSTRING(w_customer_email FROM 3 FOR CHAR_LENGTH(w_customer_email) - 4) ELSE JSON_VALUE(w_customer_email, '$[0]') END END AS v_customer_email,
    CASE WHEN schema_version IN (2) THEN CASE WHEN (w_channel IS NULL OR w_channel = '[null]') OR NOT w_channel LIKE '["%' THEN NULL ELSE CASE WHEN POSITION('\' IN w_channel) = 0 THEN SUBSTRING(w_channel FROM 3 FOR CHAR_LENGTH(w_channel) - 4) ELSE JSON_VALUE(w_channel, '$[0]') END END ELSE NULL END AS v_channel,
    CASE WHEN schema_version IN (2) THEN CASE WHEN (w_coupon_code IS NULL OR w_coupon_code = '[null]') OR NOT w_coupon_code LIKE '["%' THEN NULL ELSE CASE WHEN POSITION('\' IN w_coupon_code) = 0 THEN SUBSTRING(w_coupon_code FROM 3 FOR CHAR_LENGTH(w_coupon_code) - 4) ELSE JSON_VALUE(w_coupon_code, '$[0]') END END ELSE NULL END AS v_coupon_code
FROM silver_fields_orders;

CREATE TEMPORARY VIEW silver_checked_orders AS
SELECT *,
    CONCAT_WS(',',
        CASE WHEN (w___event_id IS NULL OR w___event_id = '[null]') THEN 'missing_field:order_id' WHEN NOT (w___event_id LIKE '["%' OR REGEXP(w___event_id, '^\[-?[0-9]+\]$')) THEN 'wrong_type:order_id' WHEN CHAR_LENGTH(v_event_id) NOT BETWEEN 1 AND 256 THEN 'out_of_range:order_id' END,
        CASE WHEN (w___event_time IS NULL OR w___event_time = '[null]') THEN 'missing_field:placed_at' WHEN v_event_at IS NULL THEN 'event_time_unparseable' WHEN v_event_at > ingest_at + INTERVAL '0 00:05:00.000' DAY TO SECOND THEN 'event_time_in_future' END,
        CASE WHEN (w_customer_id IS NULL OR w_customer_id = '[null]') THEN 'missing_field:customer_id' WHEN NOT w_customer_id LIKE '["%' THEN 'wrong_type:customer_id' END,
        CASE WHEN (w_amount_cents IS NULL OR w_amount_cents = '[null]') THEN 'missing_field:amount_cents' WHEN NOT REGEXP(w_amount_cents, '^\[-?[0-9]+\]$') THEN 'wrong_type:amount_cents' WHEN v_amount_cents IS NULL OR v_amount_cents < 0 OR v_amount_cents > 100000000 THEN 'out_of_range:amount_cents' END,
        CASE WHEN (w_currency IS NULL OR w_currency = '[null]') THEN 'missing_field:currency' WHEN NOT w_currency LIKE '["%' THEN 'wrong_type:currency' WHEN v_currency NOT IN ('EUR', 'USD', 'GBP') THEN 'invalid_enum:currency' END,
        CASE WHEN (w_customer_email IS NULL OR w_customer_email = '[null]') THEN NULL WHEN NOT w_customer_email LIKE '["%' THEN 'wrong_type:customer_email' END,
        CASE WHEN schema_version IN (2) THEN CASE WHEN (w_channel IS NULL OR w_channel = '[null]') THEN 'missing_field:channel' WHEN NOT w_channel LIKE '["%' THEN 'wrong_type:channel' WHEN v_channel NOT IN ('web', 'store', 'app') THEN 'invalid_enum:channel' END ELSE NULL END,
        CASE WHEN schema_version IN (2) THEN CASE WHEN (w_coupon_code IS NULL OR w_coupon_code = '[null]') THEN NULL WHEN NOT w_coupon_code LIKE '["%' THEN 'wrong_type:coupon_code' WHEN CHAR_LENGTH(v_coupon_code) > 32 THEN 'out_of_range:coupon_code' WHEN NOT REGEXP(v_coupon_code, '^(?:^[A-Z0-9-]+$)$') THEN 'pattern_mismatch:coupon_code' END ELSE NULL END
    ) AS field_reasons
FROM silver_typed_orders;

CREATE TEMPORARY TABLE silver_orders (
    tenant_id         STRING,
    event_type        STRING,
    schema_version    INT,
    event_id          STRING,
    event_at          TIMESTAMP_LTZ(3),
    `customer_id` STRING,
    `amount_cents` BIGINT,
    `currency` STRING,
    `channel` STRING,
    `coupon_code` STRING,
    source_topic      STRING,
    source_partition  INT,
    source_offset     BIGINT,
    ingest_at         TIMESTAMP_LTZ(3)
) WITH (
  'connector' = 'kafka',
  'topic' = 'silver_orders',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'value.format' = 'json',
  'value.json.timestamp-format.standard' = 'ISO-8601',
  'key.format' = 'json',
  'key.fields' = 'tenant_id;event_id',
  'value.fields-include' = 'ALL',
  'sink.delivery-guarantee' = 'exactly-once',
  'sink.transactional-id-prefix' = 'streamlake.silver.silver_orders',
  'properties.transaction.timeout.ms' = '600000'
);

CREATE TEMPORARY VIEW dlq_rows_orders AS
SELECT topic_tenant, event_type, schema_version, SPLIT(field_reasons, ','), LEFT(w_tenant, 256),
       source_topic, source_partition, source_offset, ingest_at, raw_key, source_headers,
       raw_value, CAST(proc_at AS TIMESTAMP_LTZ(3))
FROM silver_checked_orders
WHERE field_reasons <> '';

-- Deduplicate on (tenant_id, event_id), keeping the first arrival; state lives for the dedup
-- horizon (1h, wall-clock: table.exec.state.ttl).
CREATE TEMPORARY VIEW silver_deduped_orders AS
SELECT * FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY tenant_id, v_event_id ORDER BY proc_at) AS arrival_rank
    FROM silver_checked_orders
    WHERE field_reasons = ''
)
WHERE arrival_rank = 1;

INSERT INTO silver_orders
SELECT tenant_id, event_type, schema_version, v_event_id, v_event_at,
       CASE WHEN v_customer_id IS NOT NULL THEN SHA256(CONCAT('<redacted ${env:STREAMLAKE_PII_HASH_KEY}>', '|', v_customer_id)) END AS `customer_id`,
       v_amount_cents AS `amount_cents`,
       v_currency AS `currency`,
       v_channel AS `channel`,
       v_coupon_code AS `coupon_code`,
       source_topic, source_partition, source_offset, ingest_at
FROM silver_deduped_orders;

CREATE TEMPORARY VIEW audit_rows_orders AS
SELECT a.window_start, a.window_end, a.tenant_id, 'orders', m.metric, m.count_records
FROM (
    SELECT window_start, window_end, topic_tenant AS tenant_id,
           COUNT(*) FILTER (WHERE field_reasons = '') AS count_valid,
           COUNT(*) FILTER (WHERE field_reasons <> '') AS count_dlq
    FROM TABLE(TUMBLE(TABLE silver_checked_orders, DESCRIPTOR(ingest_at), INTERVAL '0 00:01:00.000' DAY TO SECOND))
    GROUP BY window_start, window_end, topic_tenant
) AS a
CROSS JOIN UNNEST(ARRAY[ROW('valid', a.count_valid), ROW('dlq', a.count_dlq)]) AS m(metric, count_records)
UNION ALL
SELECT window_start, window_end, topic_tenant, 'orders', 'silver', COUNT(*)
FROM TABLE(TUMBLE(TABLE silver_deduped_orders, DESCRIPTOR(ingest_at), INTERVAL '0 00:01:00.000' DAY TO SECOND))
GROUP BY window_start, window_end, topic_tenant;


-- One INSERT per Kafka table: each sink owns its transactional ids, and two sinks sharing a
-- prefix would fence each other. Every event type's rows join these through UNION ALL.
INSERT INTO dlq_events
SELECT topic_tenant, event_type, schema_version, ARRAY[route_reason], LEFT(w_tenant, 256),
       source_topic, source_partition, source_offset, ingest_at, raw_key, source_headers,
       raw_value, CAST(proc_at AS TIMESTAMP_LTZ(3))
FROM bronze_routed
WHERE route_reason IS NOT NULL
UNION ALL SELECT * FROM dlq_rows_device_telemetry
UNION ALL SELECT * FROM dlq_rows_orders;

INSERT INTO audit_silver_counts
SELECT a.window_start, a.window_end, a.tenant_id, '', m.metric, m.count_records
FROM (
    SELECT window_start, window_end, topic_tenant AS tenant_id,
           COUNT(*) AS count_read,
           COUNT(*) FILTER (WHERE route_reason IS NOT NULL) AS count_dlq
    FROM TABLE(TUMBLE(TABLE bronze_routed, DESCRIPTOR(ingest_at), INTERVAL '0 00:01:00.000' DAY TO SECOND))
    GROUP BY window_start, window_end, topic_tenant
) AS a
CROSS JOIN UNNEST(ARRAY[ROW('read', a.count_read), ROW('dlq', a.count_dlq)]) AS m(metric, count_records)
UNION ALL SELECT * FROM audit_rows_device_telemetry
UNION ALL SELECT * FROM audit_rows_orders;

