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
  'properties.max.request.size' = '8388608',
  'sink.transactional-id-prefix' = 'streamlake.demo_event_counts.gold_demo_event_counts',
  'properties.transaction.timeout.ms' = '600000'
);

INSERT INTO gold_demo_event_counts
SELECT window_start, window_end, event_key, COUNT(*) AS count_events
FROM TABLE(
    TUMBLE(TABLE bronze_demo_events, DESCRIPTOR(event_at), INTERVAL '10' SECOND)
)
GROUP BY window_start, window_end, event_key;

-- ===== job gold: sql/gold/gold.sql =====
SET 'table.exec.source.idle-timeout' = '120000 ms';
SET 'table.exec.state.ttl' = '3965000 ms';
SET 'table.exec.uid.generation' = 'ALWAYS';
SET 'state.backend.type' = 'hashmap';
-- Purpose: Silver -> Gold: event-time windows per aggregate, late rows kept with how late they were, and CEP alert rules; exactly-once to Kafka.

-- Each event type's Silver topic is read once; its rows split into on-time rows (which every
-- window and rule below uses) and late rows (kept in late_<event_type>, and merged into the
-- windows of aggregates that allow lateness).
-- Purpose: one event type's Silver stream for event-time work: its watermark, the on-time rows, and the late rows with how late they were (rendered into gold.sql once per event type).

-- ===== event type device_telemetry =====
CREATE TEMPORARY TABLE silver_device_telemetry (
    `tenant_id` STRING,
    `event_type` STRING,
    `schema_version` INT,
    `event_id` STRING,
    `event_at` TIMESTAMP_LTZ(3),
    `device_id` STRING,
    `temperature_c` DOUBLE,
    `humidity_pct` INT,
    `battery_ok` BOOLEAN,
    `status` STRING,
    `location` ROW<`lat` DOUBLE, `lon` DOUBLE>,
    `tags` ARRAY<STRING>,
    `technician_email` STRING,
    `source_topic` STRING,
    `source_partition` INT,
    `source_offset` BIGINT,
    `ingest_at` TIMESTAMP_LTZ(3),
    -- The watermark of the row's Bronze partition when the row was read: the row is late when
    -- event_at is at or behind it. Depends only on the partition's contents, not on read speed.
    `partition_watermark_at` TIMESTAMP_LTZ(3),
    -- The Silver job's watermark when the row was written (the smallest of every Bronze
    -- partition's): every on-time row after this one in its Silver partition has a later event
    -- time. Each Silver partition has one writer, and every partition gets rows ('owned'
    -- partitioner, udfs/ OwnedPartitions), so readers can use it as their watermark.
    `stream_watermark_at` TIMESTAMP_LTZ(3),
    -- Which rows are late was decided by the Silver job, per Bronze partition: a row is late
    -- when event_at is at or behind partition_watermark_at, its Bronze partition's watermark
    -- (5s behind that partition's largest event time, because devices buffer readings for up to 3 s before sending, and gateways reorder within that).
    -- That depends only on each Bronze partition's contents, not on how fast or in what order
    -- partitions were read. This job's watermark is the Silver job's own watermark carried by
    -- each row (stream_watermark_at): every on-time row after a row in its Silver partition is
    -- later than that value, so no window or rule below ever meets an on-time row behind it.
    -- Clock skew: the Silver job sent events more than 5min ahead of their
    -- ingest time to the DLQ, and they never moved a watermark. Idle partitions: every Silver
    -- partition gets rows while the Silver job has any (the Silver sinks' OwnedPartitions
    -- partitioner), so no partition is idle while data flows; one quiet for 2min
    -- (longer than a Silver restart, conf/gold.yaml) stops holding the watermark back.
    WATERMARK FOR event_at AS stream_watermark_at
) WITH (
  'connector' = 'kafka',
  'topic' = 'silver_device_telemetry',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'value.format' = 'json',
  'value.json.timestamp-format.standard' = 'ISO-8601',
  'properties.group.id' = 'streamlake.gold',
  'properties.isolation.level' = 'read_committed',
  'scan.startup.mode' = 'earliest-offset',
  'scan.watermark.emit.strategy' = 'on-periodic'
);

-- The watermark each row meets. Window aggregations and MATCH_RECOGNIZE silently drop a row at
-- or behind this job's watermark, so the split is made here, once, and both halves are kept:
-- late by its Bronze partition, or (only when a partition was idle and came back) behind this
-- job's watermark.
CREATE TEMPORARY VIEW timed_device_telemetry AS
SELECT *,
    CASE WHEN event_at <= partition_watermark_at THEN partition_watermark_at
         WHEN event_at <= CURRENT_WATERMARK(event_at) THEN CURRENT_WATERMARK(event_at)
    END AS watermark_at
FROM silver_device_telemetry;

CREATE TEMPORARY VIEW ontime_device_telemetry AS
SELECT * FROM timed_device_telemetry
WHERE watermark_at IS NULL;

CREATE TEMPORARY VIEW late_rows_device_telemetry AS
SELECT *, (EXTRACT(EPOCH FROM event_at) * 1000 + EXTRACT(MILLISECOND FROM event_at)) AS event_ms, (EXTRACT(EPOCH FROM watermark_at) * 1000 + EXTRACT(MILLISECOND FROM watermark_at)) AS watermark_ms
FROM timed_device_telemetry
WHERE watermark_at IS NOT NULL;

-- The late rows: the Silver columns, the watermark each met and how late it was (streamlake/config/tables.py).
CREATE TEMPORARY TABLE late_device_telemetry (
    `tenant_id` STRING,
    `event_type` STRING,
    `schema_version` INT,
    `event_id` STRING,
    `event_at` TIMESTAMP_LTZ(3),
    `device_id` STRING,
    `temperature_c` DOUBLE,
    `humidity_pct` INT,
    `battery_ok` BOOLEAN,
    `status` STRING,
    `location` ROW<`lat` DOUBLE, `lon` DOUBLE>,
    `tags` ARRAY<STRING>,
    `technician_email` STRING,
    `source_topic` STRING,
    `source_partition` INT,
    `source_offset` BIGINT,
    `ingest_at` TIMESTAMP_LTZ(3),
    -- The watermark of the row's Bronze partition when the row was read: the row is late when
    -- event_at is at or behind it. Depends only on the partition's contents, not on read speed.
    `partition_watermark_at` TIMESTAMP_LTZ(3),
    -- The Silver job's watermark when the row was written (the smallest of every Bronze
    -- partition's): every on-time row after this one in its Silver partition has a later event
    -- time. Each Silver partition has one writer, and every partition gets rows ('owned'
    -- partitioner, udfs/ OwnedPartitions), so readers can use it as their watermark.
    `stream_watermark_at` TIMESTAMP_LTZ(3),
    -- The watermark the row met.
    `watermark_at` TIMESTAMP_LTZ(3),
    -- How far behind that watermark event_at was.
    `late_by_ms` BIGINT
) WITH (
  'connector' = 'kafka',
  'topic' = 'late_device_telemetry',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'value.format' = 'json',
  'value.json.timestamp-format.standard' = 'ISO-8601',
  'key.format' = 'json',
  'key.fields' = 'tenant_id;event_id',
  'value.fields-include' = 'ALL',
  'sink.delivery-guarantee' = 'exactly-once',
  'properties.max.request.size' = '8388608',
  'sink.transactional-id-prefix' = 'streamlake.gold.late_device_telemetry',
  'properties.transaction.timeout.ms' = '600000'
);

INSERT INTO late_device_telemetry
SELECT `tenant_id`, `event_type`, `schema_version`, `event_id`, `event_at`, `device_id`, `temperature_c`, `humidity_pct`, `battery_ok`, `status`, `location`, `tags`, `technician_email`, `source_topic`, `source_partition`, `source_offset`, `ingest_at`, `partition_watermark_at`, `stream_watermark_at`, watermark_at, watermark_ms - event_ms
FROM late_rows_device_telemetry;


-- Purpose: one event type's Silver stream for event-time work: its watermark, the on-time rows, and the late rows with how late they were (rendered into gold.sql once per event type).

-- ===== event type orders =====
CREATE TEMPORARY TABLE silver_orders (
    `tenant_id` STRING,
    `event_type` STRING,
    `schema_version` INT,
    `event_id` STRING,
    `event_at` TIMESTAMP_LTZ(3),
    `customer_id` STRING,
    `amount_cents` BIGINT,
    `currency` STRING,
    `channel` STRING,
    `coupon_code` STRING,
    `source_topic` STRING,
    `source_partition` INT,
    `source_offset` BIGINT,
    `ingest_at` TIMESTAMP_LTZ(3),
    -- The watermark of the row's Bronze partition when the row was read: the row is late when
    -- event_at is at or behind it. Depends only on the partition's contents, not on read speed.
    `partition_watermark_at` TIMESTAMP_LTZ(3),
    -- The Silver job's watermark when the row was written (the smallest of every Bronze
    -- partition's): every on-time row after this one in its Silver partition has a later event
    -- time. Each Silver partition has one writer, and every partition gets rows ('owned'
    -- partitioner, udfs/ OwnedPartitions), so readers can use it as their watermark.
    `stream_watermark_at` TIMESTAMP_LTZ(3),
    -- Which rows are late was decided by the Silver job, per Bronze partition: a row is late
    -- when event_at is at or behind partition_watermark_at, its Bronze partition's watermark
    -- (10s behind that partition's largest event time, because orders are relayed from store tills in batches flushed every 5 s, plus network retries).
    -- That depends only on each Bronze partition's contents, not on how fast or in what order
    -- partitions were read. This job's watermark is the Silver job's own watermark carried by
    -- each row (stream_watermark_at): every on-time row after a row in its Silver partition is
    -- later than that value, so no window or rule below ever meets an on-time row behind it.
    -- Clock skew: the Silver job sent events more than 5min ahead of their
    -- ingest time to the DLQ, and they never moved a watermark. Idle partitions: every Silver
    -- partition gets rows while the Silver job has any (the Silver sinks' OwnedPartitions
    -- partitioner), so no partition is idle while data flows; one quiet for 2min
    -- (longer than a Silver restart, conf/gold.yaml) stops holding the watermark back.
    WATERMARK FOR event_at AS stream_watermark_at
) WITH (
  'connector' = 'kafka',
  'topic' = 'silver_orders',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'value.format' = 'json',
  'value.json.timestamp-format.standard' = 'ISO-8601',
  'properties.group.id' = 'streamlake.gold',
  'properties.isolation.level' = 'read_committed',
  'scan.startup.mode' = 'earliest-offset',
  'scan.watermark.emit.strategy' = 'on-periodic'
);

-- The watermark each row meets. Window aggregations and MATCH_RECOGNIZE silently drop a row at
-- or behind this job's watermark, so the split is made here, once, and both halves are kept:
-- late by its Bronze partition, or (only when a partition was idle and came back) behind this
-- job's watermark.
CREATE TEMPORARY VIEW timed_orders AS
SELECT *,
    CASE WHEN event_at <= partition_watermark_at THEN partition_watermark_at
         WHEN event_at <= CURRENT_WATERMARK(event_at) THEN CURRENT_WATERMARK(event_at)
    END AS watermark_at
FROM silver_orders;

CREATE TEMPORARY VIEW ontime_orders AS
SELECT * FROM timed_orders
WHERE watermark_at IS NULL;

CREATE TEMPORARY VIEW late_rows_orders AS
SELECT *, (EXTRACT(EPOCH FROM event_at) * 1000 + EXTRACT(MILLISECOND FROM event_at)) AS event_ms, (EXTRACT(EPOCH FROM watermark_at) * 1000 + EXTRACT(MILLISECOND FROM watermark_at)) AS watermark_ms
FROM timed_orders
WHERE watermark_at IS NOT NULL;

-- The late rows: the Silver columns, the watermark each met and how late it was (streamlake/config/tables.py).
CREATE TEMPORARY TABLE late_orders (
    `tenant_id` STRING,
    `event_type` STRING,
    `schema_version` INT,
    `event_id` STRING,
    `event_at` TIMESTAMP_LTZ(3),
    `customer_id` STRING,
    `amount_cents` BIGINT,
    `currency` STRING,
    `channel` STRING,
    `coupon_code` STRING,
    `source_topic` STRING,
    `source_partition` INT,
    `source_offset` BIGINT,
    `ingest_at` TIMESTAMP_LTZ(3),
    -- The watermark of the row's Bronze partition when the row was read: the row is late when
    -- event_at is at or behind it. Depends only on the partition's contents, not on read speed.
    `partition_watermark_at` TIMESTAMP_LTZ(3),
    -- The Silver job's watermark when the row was written (the smallest of every Bronze
    -- partition's): every on-time row after this one in its Silver partition has a later event
    -- time. Each Silver partition has one writer, and every partition gets rows ('owned'
    -- partitioner, udfs/ OwnedPartitions), so readers can use it as their watermark.
    `stream_watermark_at` TIMESTAMP_LTZ(3),
    -- The watermark the row met.
    `watermark_at` TIMESTAMP_LTZ(3),
    -- How far behind that watermark event_at was.
    `late_by_ms` BIGINT
) WITH (
  'connector' = 'kafka',
  'topic' = 'late_orders',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'value.format' = 'json',
  'value.json.timestamp-format.standard' = 'ISO-8601',
  'key.format' = 'json',
  'key.fields' = 'tenant_id;event_id',
  'value.fields-include' = 'ALL',
  'sink.delivery-guarantee' = 'exactly-once',
  'properties.max.request.size' = '8388608',
  'sink.transactional-id-prefix' = 'streamlake.gold.late_orders',
  'properties.transaction.timeout.ms' = '600000'
);

INSERT INTO late_orders
SELECT `tenant_id`, `event_type`, `schema_version`, `event_id`, `event_at`, `customer_id`, `amount_cents`, `currency`, `channel`, `coupon_code`, `source_topic`, `source_partition`, `source_offset`, `ingest_at`, `partition_watermark_at`, `stream_watermark_at`, watermark_at, watermark_ms - event_ms
FROM late_rows_orders;


-- Purpose: one Gold aggregate whose windows late rows revise: tumbling 1min windows over the on-time device_telemetry rows, then each late row within 5min merged into its windows and the row upserted (rendered into gold.sql once per aggregate).

-- ===== gold_device_temperature_1m: tumbling 1min, revised by late rows within 5min =====
-- tenant, group-by keys, window, measures, late_rows (streamlake/config/tables.py, from the aggregate's YAML)
CREATE TEMPORARY TABLE gold_device_temperature_1m (
    `tenant_id` STRING,
    `device_id` STRING,
    `window_start` TIMESTAMP(3),
    `window_end` TIMESTAMP(3),
    `readings` BIGINT,
    `avg_temperature_c` DOUBLE,
    `min_temperature_c` DOUBLE,
    `max_temperature_c` DOUBLE,
    -- How many late rows were merged into the window (0 without allowed_lateness).
    `late_rows` BIGINT,
    PRIMARY KEY (tenant_id, `device_id`, window_start, window_end) NOT ENFORCED
) WITH (
  'connector' = 'upsert-kafka',
  'topic' = 'gold_device_temperature_1m',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'value.format' = 'json',
  'value.json.timestamp-format.standard' = 'ISO-8601',
  'key.format' = 'json',
  'key.json.timestamp-format.standard' = 'ISO-8601',
  'value.fields-include' = 'ALL',
  'sink.delivery-guarantee' = 'exactly-once',
  'properties.max.request.size' = '8388608',
  'sink.transactional-id-prefix' = 'streamlake.gold.gold_device_temperature_1m',
  'properties.transaction.timeout.ms' = '600000'
);

-- Each window's parts when it fires (the watermark passes its end).
CREATE TEMPORARY VIEW gold_parts_device_temperature_1m AS
SELECT tenant_id, `device_id`, window_start, window_end,
       CAST(COUNT(*) AS BIGINT) AS p_readings,
       SUM(CAST(`temperature_c` AS DOUBLE)) AS p_avg_temperature_c,
       CAST(COUNT(`temperature_c`) AS BIGINT) AS p_avg_temperature_c_n,
       CAST(MIN(`temperature_c`) AS DOUBLE) AS p_min_temperature_c,
       CAST(MAX(`temperature_c`) AS DOUBLE) AS p_max_temperature_c,
       CAST(0 AS BIGINT) AS late_rows
FROM TABLE(TUMBLE(TABLE ontime_device_telemetry, DESCRIPTOR(event_at), INTERVAL '0 00:01:00.000' DAY TO SECOND))
GROUP BY tenant_id, `device_id`, window_start, window_end;

-- A late row's part for every window that holds it and closed less than 5min ago
-- (its end is after the row's watermark minus the allowed lateness).
CREATE TEMPORARY VIEW gold_late_parts_device_temperature_1m AS
SELECT l.tenant_id, l.`device_id`, 
       CAST(TO_TIMESTAMP_LTZ(w.start_ms, 3) AS TIMESTAMP(3)),
       CAST(TO_TIMESTAMP_LTZ(w.end_ms, 3) AS TIMESTAMP(3)),
       CAST(1 AS BIGINT),
       CAST(l.`temperature_c` AS DOUBLE),
       CAST(CASE WHEN l.`temperature_c` IS NULL THEN 0 ELSE 1 END AS BIGINT),
       CAST(l.`temperature_c` AS DOUBLE),
       CAST(l.`temperature_c` AS DOUBLE),
       CAST(1 AS BIGINT)
FROM late_rows_device_telemetry AS l
CROSS JOIN UNNEST(ARRAY[ROW(l.event_ms - MOD(l.event_ms, 60000), l.event_ms - MOD(l.event_ms, 60000) + 60000)]) AS w(start_ms, end_ms)
WHERE w.start_ms <= l.event_ms AND l.event_ms < w.end_ms
  AND w.end_ms > l.watermark_ms - 300000;

-- Parts merge per window: the Gold row is the window's first result, then each revision,
-- upserted on the primary key.
INSERT INTO gold_device_temperature_1m
SELECT tenant_id, `device_id`, window_start, window_end,
       SUM(p_readings) AS `readings`,
       CASE WHEN SUM(p_avg_temperature_c_n) > 0 THEN SUM(p_avg_temperature_c) / SUM(p_avg_temperature_c_n) END AS `avg_temperature_c`,
       MIN(p_min_temperature_c) AS `min_temperature_c`,
       MAX(p_max_temperature_c) AS `max_temperature_c`,
       SUM(late_rows)
FROM (
    SELECT * FROM gold_parts_device_temperature_1m
    UNION ALL
    SELECT * FROM gold_late_parts_device_temperature_1m
)
GROUP BY tenant_id, `device_id`, window_start, window_end;


-- Purpose: one Gold aggregate: hopping 5min every 1min windows over the on-time device_telemetry rows; late rows do not revise it (rendered into gold.sql once per aggregate).

-- ===== gold_device_temperature_5m_hop: hopping 5min every 1min =====
-- tenant, group-by keys, window, measures, late_rows (streamlake/config/tables.py, from the aggregate's YAML)
CREATE TEMPORARY TABLE gold_device_temperature_5m_hop (
    `tenant_id` STRING,
    `window_start` TIMESTAMP(3),
    `window_end` TIMESTAMP(3),
    `readings` BIGINT,
    `devices` BIGINT,
    `p95_temperature_c` DOUBLE,
    -- How many late rows were merged into the window (0 without allowed_lateness).
    `late_rows` BIGINT,
    PRIMARY KEY (tenant_id, window_start, window_end) NOT ENFORCED
) WITH (
  'connector' = 'upsert-kafka',
  'topic' = 'gold_device_temperature_5m_hop',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'value.format' = 'json',
  'value.json.timestamp-format.standard' = 'ISO-8601',
  'key.format' = 'json',
  'key.json.timestamp-format.standard' = 'ISO-8601',
  'value.fields-include' = 'ALL',
  'sink.delivery-guarantee' = 'exactly-once',
  'properties.max.request.size' = '8388608',
  'sink.transactional-id-prefix' = 'streamlake.gold.gold_device_temperature_5m_hop',
  'properties.transaction.timeout.ms' = '600000'
);

INSERT INTO gold_device_temperature_5m_hop
SELECT tenant_id, window_start, window_end,
       COUNT(*) AS `readings`,
       COUNT(DISTINCT `device_id`) AS `devices`,
       PERCENTILE(CAST(`temperature_c` AS DOUBLE), 0.95) AS `p95_temperature_c`,
       CAST(0 AS BIGINT) AS late_rows
FROM TABLE(HOP(TABLE ontime_device_telemetry, DESCRIPTOR(event_at), INTERVAL '0 00:01:00.000' DAY TO SECOND, INTERVAL '0 00:05:00.000' DAY TO SECOND))
GROUP BY tenant_id, window_start, window_end;


-- Purpose: one Gold aggregate: session (gap 30min) windows over the on-time orders rows; late rows do not revise it (rendered into gold.sql once per aggregate).

-- ===== gold_orders_customer_sessions: session (gap 30min) =====
-- tenant, group-by keys, window, measures, late_rows (streamlake/config/tables.py, from the aggregate's YAML)
CREATE TEMPORARY TABLE gold_orders_customer_sessions (
    `tenant_id` STRING,
    `customer_id` STRING,
    `window_start` TIMESTAMP(3),
    `window_end` TIMESTAMP(3),
    `orders` BIGINT,
    `spend_cents` BIGINT,
    `avg_order_cents` DOUBLE,
    -- How many late rows were merged into the window (0 without allowed_lateness).
    `late_rows` BIGINT,
    PRIMARY KEY (tenant_id, `customer_id`, window_start, window_end) NOT ENFORCED
) WITH (
  'connector' = 'upsert-kafka',
  'topic' = 'gold_orders_customer_sessions',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'value.format' = 'json',
  'value.json.timestamp-format.standard' = 'ISO-8601',
  'key.format' = 'json',
  'key.json.timestamp-format.standard' = 'ISO-8601',
  'value.fields-include' = 'ALL',
  'sink.delivery-guarantee' = 'exactly-once',
  'properties.max.request.size' = '8388608',
  'sink.transactional-id-prefix' = 'streamlake.gold.gold_orders_customer_sessions',
  'properties.transaction.timeout.ms' = '600000'
);

INSERT INTO gold_orders_customer_sessions
SELECT tenant_id, `customer_id`, window_start, window_end,
       COUNT(*) AS `orders`,
       SUM(`amount_cents`) AS `spend_cents`,
       AVG(CAST(`amount_cents` AS DOUBLE)) AS `avg_order_cents`,
       CAST(0 AS BIGINT) AS late_rows
FROM TABLE(SESSION(TABLE ontime_orders PARTITION BY (tenant_id, `customer_id`), DESCRIPTOR(event_at), INTERVAL '0 00:30:00.000' DAY TO SECOND))
GROUP BY tenant_id, `customer_id`, window_start, window_end;


-- Purpose: one Gold aggregate: cumulating every 10min up to 1d windows over the on-time orders rows; late rows do not revise it (rendered into gold.sql once per aggregate).

-- ===== gold_orders_revenue_today: cumulating every 10min up to 1d =====
-- tenant, group-by keys, window, measures, late_rows (streamlake/config/tables.py, from the aggregate's YAML)
CREATE TEMPORARY TABLE gold_orders_revenue_today (
    `tenant_id` STRING,
    `currency` STRING,
    `window_start` TIMESTAMP(3),
    `window_end` TIMESTAMP(3),
    `orders` BIGINT,
    `revenue_cents` BIGINT,
    `largest_order_cents` BIGINT,
    -- How many late rows were merged into the window (0 without allowed_lateness).
    `late_rows` BIGINT,
    PRIMARY KEY (tenant_id, `currency`, window_start, window_end) NOT ENFORCED
) WITH (
  'connector' = 'upsert-kafka',
  'topic' = 'gold_orders_revenue_today',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'value.format' = 'json',
  'value.json.timestamp-format.standard' = 'ISO-8601',
  'key.format' = 'json',
  'key.json.timestamp-format.standard' = 'ISO-8601',
  'value.fields-include' = 'ALL',
  'sink.delivery-guarantee' = 'exactly-once',
  'properties.max.request.size' = '8388608',
  'sink.transactional-id-prefix' = 'streamlake.gold.gold_orders_revenue_today',
  'properties.transaction.timeout.ms' = '600000'
);

INSERT INTO gold_orders_revenue_today
SELECT tenant_id, `currency`, window_start, window_end,
       COUNT(*) AS `orders`,
       SUM(`amount_cents`) AS `revenue_cents`,
       MAX(`amount_cents`) AS `largest_order_cents`,
       CAST(0 AS BIGINT) AS late_rows
FROM TABLE(CUMULATE(TABLE ontime_orders, DESCRIPTOR(event_at), INTERVAL '0 00:10:00.000' DAY TO SECOND, INTERVAL '1 00:00:00.000' DAY TO SECOND))
GROUP BY tenant_id, `currency`, window_start, window_end;


-- Purpose: the alert topic, and the one INSERT of every rule's alerts (rendered into gold.sql when rules exist; each rule is a query from rule_<kind>.sql).

-- One row per alert, from every rule below and from the device_anomaly DataStream job
-- (streamlake/config/tables.py ALERTS describes the columns for both, and for the lake).
CREATE TEMPORARY TABLE alert_events (
    `rule_id` STRING,
    `rule_kind` STRING,
    `tenant_id` STRING,
    `event_type` STRING,
    -- The value of the rule's key field, as a string.
    `alert_key` STRING,
    `first_event_at` TIMESTAMP_LTZ(3),
    `last_event_at` TIMESTAMP_LTZ(3),
    -- What triggered the alert, as (name, value) pairs.
    `measures` ARRAY<ROW<`name` STRING, `value` DOUBLE>>,
    `detected_at` TIMESTAMP_LTZ(3)
) WITH (
  'connector' = 'kafka',
  'topic' = 'alert_events',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'value.format' = 'json',
  'value.json.timestamp-format.standard' = 'ISO-8601',
  'key.format' = 'json',
  'key.fields' = 'tenant_id;rule_id;alert_key',
  'value.fields-include' = 'ALL',
  'sink.delivery-guarantee' = 'exactly-once',
  'properties.max.request.size' = '8388608',
  'sink.transactional-id-prefix' = 'streamlake.gold.alert_events',
  'properties.transaction.timeout.ms' = '600000'
);

INSERT INTO alert_events
(
-- Purpose: one sequence alert rule, compiled to MATCH_RECOGNIZE: events matching each step in order (others may come between; a new first step restarts), all within T (a query; the alert INSERT joins every rule's query with UNION ALL).

-- ===== alert rule device_degraded_then_failed (sequence of 2 steps within 10min): A device reports degraded and then failed within 10 minutes. =====
SELECT CAST('device_degraded_then_failed' AS STRING) AS rule_id, CAST('sequence' AS STRING) AS rule_kind, tenant_id,
       CAST('device_telemetry' AS STRING) AS event_type, CAST(`device_id` AS STRING) AS alert_key, first_event_at, last_event_at,
       ARRAY[ROW(CAST('step_events' AS STRING), CAST(matched AS DOUBLE))] AS `measures`,
       CURRENT_TIMESTAMP AS detected_at
-- Only rows that meet some step can take part, so only they enter the pattern: every other row
-- would sit in each open partial match's gap (X*?) until WITHIN expires, and the matcher's state
-- and work would grow with the key's event rate.
FROM (SELECT * FROM ontime_device_telemetry WHERE (`status` = 'degraded') OR (`status` = 'failed'))
MATCH_RECOGNIZE (
    PARTITION BY tenant_id, `device_id`
    ORDER BY event_at
    MEASURES
        FIRST(S1.event_at) AS first_event_at,
        LAST(S2.event_at) AS last_event_at,
        COUNT(event_id) AS matched
    ONE ROW PER MATCH
    AFTER MATCH SKIP PAST LAST ROW
    -- Reluctant gaps (X*?): a step completes at the first event that satisfies it. A gap row is
    -- never a first-step row: the latest first step starts the match, and a key holds one open
    -- match instead of one per first-step row in WITHIN (measured: that many partial matches,
    -- each re-read by every condition, stalled the Gold job at a few thousand events/s).
    PATTERN (S1 X1*? S2) WITHIN INTERVAL '0 00:10:00.000' DAY TO SECOND
    DEFINE
        S1 AS S1.`status` = 'degraded',
        S2 AS S2.`status` = 'failed',
        X1 AS NOT COALESCE(X1.`status` = 'degraded', FALSE)
)
)
UNION ALL
(
-- Purpose: one absence alert rule: no event from a key for T, in event time (a query; the alert INSERT joins every rule's query with UNION ALL).

-- ===== alert rule device_no_readings (absence for 5min): No reading from a device for 5 minutes of event time. =====
-- Flink's MATCH_RECOGNIZE emits nothing when a pattern times out, so absence is a session
-- window per key with gap 5min: the session closes, and the alert is raised, when the
-- watermark passes the key's last event + 5min with no event in between.
SELECT CAST('device_no_readings' AS STRING) AS rule_id, CAST('absence' AS STRING) AS rule_kind, tenant_id,
       CAST('device_telemetry' AS STRING) AS event_type, CAST(`device_id` AS STRING) AS alert_key, MIN(event_at) AS first_event_at, MAX(event_at) AS last_event_at,
       ARRAY[ROW(CAST('silence_ms' AS STRING), CAST(300000 AS DOUBLE)),
             ROW(CAST('events_before' AS STRING), CAST(COUNT(*) AS DOUBLE))] AS `measures`,
       CURRENT_TIMESTAMP AS detected_at
FROM TABLE(SESSION(TABLE ontime_device_telemetry PARTITION BY (tenant_id, `device_id`),
                   DESCRIPTOR(event_at), INTERVAL '0 00:05:00.000' DAY TO SECOND))
GROUP BY window_start, window_end, tenant_id, `device_id`
)
UNION ALL
(
-- Purpose: one threshold alert rule, compiled to MATCH_RECOGNIZE: the condition holds for N consecutive events of a key, all within T (a query; the alert INSERT joins every rule's query with UNION ALL).

-- ===== alert rule device_overheating (threshold: 3 in a row within 2min): Three readings in a row above 90 C within 2 minutes. =====
SELECT CAST('device_overheating' AS STRING) AS rule_id, CAST('threshold' AS STRING) AS rule_kind, tenant_id,
       CAST('device_telemetry' AS STRING) AS event_type, CAST(`device_id` AS STRING) AS alert_key, first_event_at, last_event_at,
       ARRAY[ROW(CAST('count' AS STRING), CAST(matched AS DOUBLE)),
             ROW(CAST('min_value' AS STRING), CAST(min_value AS DOUBLE)),
             ROW(CAST('max_value' AS STRING), CAST(max_value AS DOUBLE))] AS `measures`,
       CURRENT_TIMESTAMP AS detected_at
FROM ontime_device_telemetry
MATCH_RECOGNIZE (
    PARTITION BY tenant_id, `device_id`
    ORDER BY event_at
    MEASURES
        FIRST(A.event_at) AS first_event_at,
        LAST(A.event_at) AS last_event_at,
        COUNT(A.event_id) AS matched,
        MIN(A.`temperature_c`) AS min_value, MAX(A.`temperature_c`) AS max_value
    ONE ROW PER MATCH
    AFTER MATCH SKIP PAST LAST ROW
    PATTERN (A{3}) WITHIN INTERVAL '0 00:02:00.000' DAY TO SECOND
    DEFINE A AS A.`temperature_c` > 90
)
)
UNION ALL
(
-- Purpose: one spike alert rule, compiled to MATCH_RECOGNIZE: a field rises by more than X from one event of a key to the next, less than T apart (a query; the alert INSERT joins every rule's query with UNION ALL).

-- ===== alert rule device_temperature_spike (spike: a rise of more than 25.0 within 1min): Temperature up by more than 25 C from one reading to the next within 1 minute. =====
SELECT CAST('device_temperature_spike' AS STRING) AS rule_id, CAST('spike' AS STRING) AS rule_kind, tenant_id,
       CAST('device_telemetry' AS STRING) AS event_type, CAST(`device_id` AS STRING) AS alert_key, first_event_at, last_event_at,
       ARRAY[ROW(CAST('from_value' AS STRING), CAST(from_value AS DOUBLE)),
             ROW(CAST('to_value' AS STRING), CAST(to_value AS DOUBLE)),
             ROW(CAST('rise' AS STRING), CAST(to_value - from_value AS DOUBLE))] AS `measures`,
       CURRENT_TIMESTAMP AS detected_at
FROM ontime_device_telemetry
MATCH_RECOGNIZE (
    PARTITION BY tenant_id, `device_id`
    ORDER BY event_at
    MEASURES
        A.event_at AS first_event_at,
        C.event_at AS last_event_at,
        A.`temperature_c` AS from_value,
        C.`temperature_c` AS to_value
    ONE ROW PER MATCH
    -- The rise's end may start the next rise.
    AFTER MATCH SKIP TO LAST C
    PATTERN (A C) WITHIN INTERVAL '0 00:01:00.000' DAY TO SECOND
    DEFINE C AS C.`temperature_c` - A.`temperature_c` > 25.0
)
);


-- ===== job passthrough: sql/bench/passthrough.sql =====
-- Purpose: the benchmark's baseline: every Bronze record copied to one topic as it is, no logic, with the same delivery guarantee as the pipeline.

CREATE TEMPORARY TABLE bronze_events (
    raw_value  BYTES
) WITH (
  'connector' = 'kafka',
  'topic' = 'bronze_acme_events;bronze_globex_events',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'value.format' = 'raw',
  'properties.group.id' = 'streamlake.passthrough',
  'properties.isolation.level' = 'read_committed',
  'scan.startup.mode' = 'earliest-offset'
);

CREATE TEMPORARY TABLE bench_passthrough (
    raw_value  BYTES
) WITH (
  'connector' = 'kafka',
  'topic' = 'bench_passthrough',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'value.format' = 'raw',
  'sink.delivery-guarantee' = 'exactly-once',
  'properties.max.request.size' = '8388608',
  'sink.transactional-id-prefix' = 'streamlake.passthrough.bench_passthrough',
  'properties.transaction.timeout.ms' = '600000'
);

INSERT INTO bench_passthrough SELECT raw_value FROM bronze_events;

-- ===== job silver: sql/silver/silver.sql =====
SET 'table.exec.state.ttl' = '3600000 ms';
SET 'table.exec.source.idle-timeout' = '30000 ms';
SET 'table.exec.mini-batch.enabled' = 'false';
-- compiled plan: the deduplicate operator of device_telemetry keeps state 3600000 ms
-- compiled plan: the deduplicate operator of orders keeps state 3600000 ms
-- Purpose: Bronze -> Silver: validate raw events against the YAML schemas, send every reject to the DLQ with its bytes and reasons, deduplicate, write typed rows per event type and per-tenant audit counts; exactly-once.

-- The JVM functions (udfs/, shipped with the job): the Bronze clock, and each record's checks.
CREATE TEMPORARY FUNCTION silver_clock AS 'io.streamlake.udfs.SilverClock' LANGUAGE JAVA;
CREATE TEMPORARY FUNCTION silver_validate AS 'io.streamlake.udfs.SilverValidate' LANGUAGE JAVA;

-- Bronze is the tenant topics themselves, read once and kept as received: the record's bytes
-- plus its Kafka metadata (the columns: streamlake/config/tables.py BRONZE_SOURCE).
CREATE TEMPORARY TABLE bronze_events (
    `raw_key` BYTES,
    `raw_value` BYTES,
    `source_topic` STRING METADATA FROM 'topic' VIRTUAL,
    `source_partition` INT METADATA FROM 'partition' VIRTUAL,
    `source_offset` BIGINT METADATA FROM 'offset' VIRTUAL,
    -- Broker time: Bronze topics are LogAppendTime.
    `ingest_at` TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
    `source_headers` MAP<STRING, BYTES> METADATA FROM 'headers' VIRTUAL,
    proc_at AS PROCTIME(),
    -- Event time is decided per Bronze partition, so that what is late does not depend on how
    -- fast or in what order partitions are read. A record's clock is its event time minus its
    -- event type's max_out_of_orderness, when it names a known event type and its event time
    -- parses and is at most max_future_skew ahead of its ingest time (a clock running ahead
    -- cannot move a watermark); otherwise NULL, and it moves nothing. The Kafka source keeps one
    -- watermark per partition, the largest clock it has read there (emitted periodically);
    -- the job's watermark, the smallest of them, reaches the Silver writers in band with the rows.
    -- silver_clock reads the record in one pass, as the JSON_VALUE calls it replaced did.
    event_clock_at AS silver_clock(raw_value, ingest_at, '{"max_record_bytes":1048576,"type_field":"event_type","event_types":[{"name":"device_telemetry","event_time_field":"event_time","event_time_format":"epoch_millis","max_future_skew_ms":300000,"max_out_of_orderness_ms":5000},{"name":"orders","event_time_field":"placed_at","event_time_format":"iso8601_utc","max_future_skew_ms":300000,"max_out_of_orderness_ms":10000}]}'),
    WATERMARK FOR event_clock_at AS event_clock_at
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
  'scan.startup.mode' = 'earliest-offset',
  'properties.max.partition.fetch.bytes' = '65536'
);

-- Validate: one pass of the JVM function silver_validate (udfs/, shipped with the job) over each
-- record's bytes gives its byte length, the topic's tenant (from config, never from the record),
-- its reason codes and its typed fields. Record checks first, the first failure wins (a record over
-- 1048576 bytes is never parsed); then routing, the first failure wins (route_reason);
-- then every field reason together (field_reasons, NULL when the event is valid). The rules are
-- compiled from the registry into the literal below (no secrets: PII is handled further down).
-- A table function, so the planner calls it once per record whichever columns are read.
CREATE TEMPORARY VIEW bronze_routed AS
SELECT b.*, (EXTRACT(EPOCH FROM b.ingest_at) * 1000 + EXTRACT(MILLISECOND FROM b.ingest_at)) - MOD((EXTRACT(EPOCH FROM b.ingest_at) * 1000 + EXTRACT(MILLISECOND FROM b.ingest_at)), 60000) AS ingest_window_ms, v.*
FROM bronze_events AS b
CROSS JOIN LATERAL TABLE(silver_validate(
    b.raw_value, b.source_topic, b.source_headers['schema_version'], b.ingest_at,
    '{"max_record_bytes":1048576,"reject_duplicate_keys":true,"tenant_field":"tenant_id","type_field":"event_type","version_field":"schema_version","topic_owner":{"bronze_acme_events":"acme","bronze_globex_events":"globex"},"tenants":["acme","globex"],"allowed":["acme/device_telemetry","acme/orders","globex/orders"],"known_versions":["device_telemetry/1","orders/1","orders/2"],"active_versions":["acme/device_telemetry/1","acme/orders/1","acme/orders/2","globex/orders/2"],"event_types":[{"name":"device_telemetry","event_id_field":"event_id","event_time_field":"event_time","event_time_format":"epoch_millis","max_future_skew_ms":300000,"fields":[{"name":"device_id","type":"string","items":null,"format":null,"drop":false,"versions":{"1":{"required":true,"min":null,"max":null,"max_length":null,"pattern":"^dev-[0-9]{1,6}$","values":null}},"fields":[]},{"name":"temperature_c","type":"double","items":null,"format":null,"drop":false,"versions":{"1":{"required":true,"min":-80.0,"max":150.0,"max_length":null,"pattern":null,"values":null}},"fields":[]},{"name":"humidity_pct","type":"int","items":null,"format":null,"drop":false,"versions":{"1":{"required":false,"min":0.0,"max":100.0,"max_length":null,"pattern":null,"values":null}},"fields":[]},{"name":"battery_ok","type":"boolean","items":null,"format":null,"drop":false,"versions":{"1":{"required":false,"min":null,"max":null,"max_length":null,"pattern":null,"values":null}},"fields":[]},{"name":"status","type":"enum","items":null,"format":null,"drop":false,"versions":{"1":{"required":false,"min":null,"max":null,"max_length":null,"pattern":null,"values":["ok","degraded","failed"]}},"fields":[]},{"name":"location","type":"object","items":null,"format":null,"drop":false,"versions":{"1":{"required":false,"min":null,"max":null,"max_length":null,"pattern":null,"values":null}},"fields":[{"name":"lat","type":"double","items":null,"format":null,"drop":false,"versions":{"1":{"required":true,"min":-90.0,"max":90.0,"max_length":null,"pattern":null,"values":null}},"fields":[]},{"name":"lon","type":"double","items":null,"format":null,"drop":false,"versions":{"1":{"required":true,"min":-180.0,"max":180.0,"max_length":null,"pattern":null,"values":null}},"fields":[]}]},{"name":"tags","type":"array","items":"string","format":null,"drop":false,"versions":{"1":{"required":false,"min":null,"max":null,"max_length":null,"pattern":null,"values":null}},"fields":[]},{"name":"technician_email","type":"string","items":null,"format":null,"drop":false,"versions":{"1":{"required":false,"min":null,"max":null,"max_length":null,"pattern":null,"values":null}},"fields":[]}]},{"name":"orders","event_id_field":"order_id","event_time_field":"placed_at","event_time_format":"iso8601_utc","max_future_skew_ms":300000,"fields":[{"name":"customer_id","type":"string","items":null,"format":null,"drop":false,"versions":{"1":{"required":true,"min":null,"max":null,"max_length":null,"pattern":null,"values":null},"2":{"required":true,"min":null,"max":null,"max_length":null,"pattern":null,"values":null}},"fields":[]},{"name":"amount_cents","type":"long","items":null,"format":null,"drop":false,"versions":{"1":{"required":true,"min":0.0,"max":100000000.0,"max_length":null,"pattern":null,"values":null},"2":{"required":true,"min":0.0,"max":100000000.0,"max_length":null,"pattern":null,"values":null}},"fields":[]},{"name":"currency","type":"enum","items":null,"format":null,"drop":false,"versions":{"1":{"required":true,"min":null,"max":null,"max_length":null,"pattern":null,"values":["EUR","USD","GBP"]},"2":{"required":true,"min":null,"max":null,"max_length":null,"pattern":null,"values":["EUR","USD","GBP"]}},"fields":[]},{"name":"customer_email","type":"string","items":null,"format":null,"drop":true,"versions":{"1":{"required":false,"min":null,"max":null,"max_length":null,"pattern":null,"values":null},"2":{"required":false,"min":null,"max":null,"max_length":null,"pattern":null,"values":null}},"fields":[]},{"name":"channel","type":"enum","items":null,"format":null,"drop":false,"versions":{"2":{"required":true,"min":null,"max":null,"max_length":null,"pattern":null,"values":["web","store","app"]}},"fields":[]},{"name":"coupon_code","type":"string","items":null,"format":null,"drop":false,"versions":{"2":{"required":false,"min":null,"max":null,"max_length":32,"pattern":"^[A-Z0-9-]+$","values":null}},"fields":[]}]}]}'
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
    -- The tenant that owns the topic, never the claimed one.
    `tenant_id` STRING,
    `event_type` STRING,
    `schema_version` INT,
    `reason_codes` ARRAY<STRING>,
    -- The record's own tenant_id, cut to 256 characters.
    `claimed_tenant` STRING,
    `source_topic` STRING,
    `source_partition` INT,
    `source_offset` BIGINT,
    `ingest_at` TIMESTAMP_LTZ(3),
    -- The Kafka key's first dlq.max_key_bytes bytes (conf/silver.yaml), and its full length.
    `source_key` BYTES,
    `source_key_bytes` BIGINT,
    -- The record's Kafka headers as (key, value) pairs (a list, so any reader can load it);
    -- null and flagged when, as JSON, they are over dlq.max_headers_bytes.
    `source_headers` ARRAY<ROW<`key` STRING, `value` BYTES>>,
    `source_headers_dropped` BOOLEAN,
    -- The value's first dlq.max_value_bytes bytes; the length and SHA-256 (hex) of all of it.
    -- The whole record is in bronze_events at (source_topic, source_partition, source_offset).
    `raw_value` BYTES,
    `raw_value_bytes` BIGINT,
    `raw_value_sha256` STRING,
    `raw_value_truncated` BOOLEAN,
    `detected_at` TIMESTAMP_LTZ(3)
) WITH (
  'connector' = 'kafka',
  'topic' = 'dlq_events',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'value.format' = 'json',
  'value.json.timestamp-format.standard' = 'ISO-8601',
  'sink.delivery-guarantee' = 'exactly-once',
  'properties.max.request.size' = '8388608',
  'sink.transactional-id-prefix' = 'streamlake.silver.dlq_events',
  'properties.transaction.timeout.ms' = '600000'
);

-- Per-tenant counts per window of ingest time, upserted as they grow (the last value per key
-- is the count). Conservation: read = dlq + valid, and duplicates dropped = valid - silver.
CREATE TEMPORARY TABLE audit_silver_counts (
    `window_start` TIMESTAMP(3),
    `window_end` TIMESTAMP(3),
    `tenant_id` STRING,
    `event_type` STRING,
    -- read, dlq, valid or silver.
    `metric` STRING,
    `count_records` BIGINT,
    PRIMARY KEY (window_start, window_end, tenant_id, event_type, metric) NOT ENFORCED
) WITH (
  'connector' = 'upsert-kafka',
  'topic' = 'audit_silver_counts',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'value.format' = 'json',
  'value.json.timestamp-format.standard' = 'ISO-8601',
  'key.format' = 'json',
  'key.json.timestamp-format.standard' = 'ISO-8601',
  'value.fields-include' = 'ALL',
  'sink.delivery-guarantee' = 'exactly-once',
  'properties.max.request.size' = '8388608',
  'sink.transactional-id-prefix' = 'streamlake.silver.audit_silver_counts',
  'properties.transaction.timeout.ms' = '600000'
);

-- Purpose: one event type's field rejects, PII-handled typed values, deduplicated Silver rows and audit counts (rendered into silver.sql once per event type; its DLQ and audit rows join silver.sql's single INSERT into each).

-- ===== event type device_telemetry =====
-- The routed events of this type: silver_validate checked their fields (field_reasons) and typed
-- them into typed_device_telemetry.
CREATE TEMPORARY VIEW silver_checked_device_telemetry AS
SELECT * FROM bronze_timed
WHERE route_reason IS NULL AND event_type = 'device_telemetry';

-- The envelope, this type's fields (all versions'), where the row came from and the watermarks
-- (streamlake/config/tables.py silver()).
CREATE TEMPORARY TABLE silver_device_telemetry (
    `tenant_id` STRING,
    `event_type` STRING,
    `schema_version` INT,
    `event_id` STRING,
    `event_at` TIMESTAMP_LTZ(3),
    `device_id` STRING,
    `temperature_c` DOUBLE,
    `humidity_pct` INT,
    `battery_ok` BOOLEAN,
    `status` STRING,
    `location` ROW<`lat` DOUBLE, `lon` DOUBLE>,
    `tags` ARRAY<STRING>,
    `technician_email` STRING,
    `source_topic` STRING,
    `source_partition` INT,
    `source_offset` BIGINT,
    `ingest_at` TIMESTAMP_LTZ(3),
    -- The watermark of the row's Bronze partition when the row was read: the row is late when
    -- event_at is at or behind it. Depends only on the partition's contents, not on read speed.
    `partition_watermark_at` TIMESTAMP_LTZ(3),
    -- The Silver job's watermark when the row was written (the smallest of every Bronze
    -- partition's): every on-time row after this one in its Silver partition has a later event
    -- time. Each Silver partition has one writer, and every partition gets rows ('owned'
    -- partitioner, udfs/ OwnedPartitions), so readers can use it as their watermark.
    `stream_watermark_at` TIMESTAMP_LTZ(3)
) WITH (
  'connector' = 'kafka',
  'topic' = 'silver_device_telemetry',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'value.format' = 'json',
  'value.json.timestamp-format.standard' = 'ISO-8601',
  'key.format' = 'json',
  'key.fields' = 'tenant_id;event_id',
  'value.fields-include' = 'ALL',
  'sink.partitioner' = 'io.streamlake.udfs.OwnedPartitions',
  'sink.delivery-guarantee' = 'exactly-once',
  'properties.max.request.size' = '8388608',
  'sink.transactional-id-prefix' = 'streamlake.silver.silver_device_telemetry',
  'properties.transaction.timeout.ms' = '600000'
);

-- Field rejects, as received: silver.sql's dlq_rejects joins them and bounds every DLQ row.
CREATE TEMPORARY VIEW dlq_rows_device_telemetry AS
SELECT topic_tenant, event_type, schema_version, field_reasons, claimed_tenant,
       source_topic, source_partition, source_offset, ingest_at, raw_key, source_headers,
       raw_value, record_bytes, CAST(proc_at AS TIMESTAMP_LTZ(3))
FROM silver_checked_device_telemetry
WHERE field_reasons IS NOT NULL;

-- Deduplicate on (tenant_id, event_id), keeping the first arrival; state lives for this event
-- type's dedup horizon (1h, wall-clock: this operator's TTL in the compiled plan,
-- jobs/plan_ttl.py).
CREATE TEMPORARY VIEW silver_deduped_device_telemetry AS
SELECT * FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY tenant_id, event_id ORDER BY proc_at) AS arrival_rank
    FROM silver_checked_device_telemetry
    WHERE field_reasons IS NULL
)
WHERE arrival_rank = 1;

INSERT INTO silver_device_telemetry
SELECT tenant_id, event_type, schema_version, event_id, event_at,
       `typed_device_telemetry`.`device_id` AS `device_id`,
       `typed_device_telemetry`.`temperature_c` AS `temperature_c`,
       `typed_device_telemetry`.`humidity_pct` AS `humidity_pct`,
       `typed_device_telemetry`.`battery_ok` AS `battery_ok`,
       `typed_device_telemetry`.`status` AS `status`,
       `typed_device_telemetry`.`location` AS `location`,
       `typed_device_telemetry`.`tags` AS `tags`,
       CASE WHEN CHAR_LENGTH(`typed_device_telemetry`.`technician_email`) <= 4 THEN REPEAT('*', CHAR_LENGTH(`typed_device_telemetry`.`technician_email`)) ELSE CONCAT(REPEAT('*', CHAR_LENGTH(`typed_device_telemetry`.`technician_email`) - 4), RIGHT(`typed_device_telemetry`.`technician_email`, 4)) END AS `technician_email`,
       source_topic, source_partition, source_offset, ingest_at,
       partition_watermark_at, CURRENT_WATERMARK(event_clock_at)
FROM silver_deduped_device_telemetry;

CREATE TEMPORARY VIEW audit_rows_device_telemetry AS
SELECT ingest_window_ms, topic_tenant, 'device_telemetry',
       CASE WHEN field_reasons IS NULL THEN 'valid' ELSE 'dlq' END
FROM silver_checked_device_telemetry
UNION ALL
SELECT ingest_window_ms, topic_tenant, 'device_telemetry', 'silver'
FROM silver_deduped_device_telemetry;


-- Purpose: one event type's field rejects, PII-handled typed values, deduplicated Silver rows and audit counts (rendered into silver.sql once per event type; its DLQ and audit rows join silver.sql's single INSERT into each).

-- ===== event type orders =====
-- The routed events of this type: silver_validate checked their fields (field_reasons) and typed
-- them into typed_orders.
CREATE TEMPORARY VIEW silver_checked_orders AS
SELECT * FROM bronze_timed
WHERE route_reason IS NULL AND event_type = 'orders';

-- The envelope, this type's fields (all versions'), where the row came from and the watermarks
-- (streamlake/config/tables.py silver()).
CREATE TEMPORARY TABLE silver_orders (
    `tenant_id` STRING,
    `event_type` STRING,
    `schema_version` INT,
    `event_id` STRING,
    `event_at` TIMESTAMP_LTZ(3),
    `customer_id` STRING,
    `amount_cents` BIGINT,
    `currency` STRING,
    `channel` STRING,
    `coupon_code` STRING,
    `source_topic` STRING,
    `source_partition` INT,
    `source_offset` BIGINT,
    `ingest_at` TIMESTAMP_LTZ(3),
    -- The watermark of the row's Bronze partition when the row was read: the row is late when
    -- event_at is at or behind it. Depends only on the partition's contents, not on read speed.
    `partition_watermark_at` TIMESTAMP_LTZ(3),
    -- The Silver job's watermark when the row was written (the smallest of every Bronze
    -- partition's): every on-time row after this one in its Silver partition has a later event
    -- time. Each Silver partition has one writer, and every partition gets rows ('owned'
    -- partitioner, udfs/ OwnedPartitions), so readers can use it as their watermark.
    `stream_watermark_at` TIMESTAMP_LTZ(3)
) WITH (
  'connector' = 'kafka',
  'topic' = 'silver_orders',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'value.format' = 'json',
  'value.json.timestamp-format.standard' = 'ISO-8601',
  'key.format' = 'json',
  'key.fields' = 'tenant_id;event_id',
  'value.fields-include' = 'ALL',
  'sink.partitioner' = 'io.streamlake.udfs.OwnedPartitions',
  'sink.delivery-guarantee' = 'exactly-once',
  'properties.max.request.size' = '8388608',
  'sink.transactional-id-prefix' = 'streamlake.silver.silver_orders',
  'properties.transaction.timeout.ms' = '600000'
);

-- Field rejects, as received: silver.sql's dlq_rejects joins them and bounds every DLQ row.
CREATE TEMPORARY VIEW dlq_rows_orders AS
SELECT topic_tenant, event_type, schema_version, field_reasons, claimed_tenant,
       source_topic, source_partition, source_offset, ingest_at, raw_key, source_headers,
       raw_value, record_bytes, CAST(proc_at AS TIMESTAMP_LTZ(3))
FROM silver_checked_orders
WHERE field_reasons IS NOT NULL;

-- Deduplicate on (tenant_id, event_id), keeping the first arrival; state lives for this event
-- type's dedup horizon (1h, wall-clock: this operator's TTL in the compiled plan,
-- jobs/plan_ttl.py).
CREATE TEMPORARY VIEW silver_deduped_orders AS
SELECT * FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY tenant_id, event_id ORDER BY proc_at) AS arrival_rank
    FROM silver_checked_orders
    WHERE field_reasons IS NULL
)
WHERE arrival_rank = 1;

INSERT INTO silver_orders
SELECT tenant_id, event_type, schema_version, event_id, event_at,
       CASE WHEN `typed_orders`.`customer_id` IS NOT NULL THEN SHA256(CONCAT('<redacted ${env:STREAMLAKE_PII_HASH_KEY}>', '|', `typed_orders`.`customer_id`)) END AS `customer_id`,
       `typed_orders`.`amount_cents` AS `amount_cents`,
       `typed_orders`.`currency` AS `currency`,
       `typed_orders`.`channel` AS `channel`,
       `typed_orders`.`coupon_code` AS `coupon_code`,
       source_topic, source_partition, source_offset, ingest_at,
       partition_watermark_at, CURRENT_WATERMARK(event_clock_at)
FROM silver_deduped_orders;

CREATE TEMPORARY VIEW audit_rows_orders AS
SELECT ingest_window_ms, topic_tenant, 'orders',
       CASE WHEN field_reasons IS NULL THEN 'valid' ELSE 'dlq' END
FROM silver_checked_orders
UNION ALL
SELECT ingest_window_ms, topic_tenant, 'orders', 'silver'
FROM silver_deduped_orders;


-- Every reject, as received (each event type's field rejects join through UNION ALL).
CREATE TEMPORARY VIEW dlq_rejects AS
SELECT topic_tenant, event_type, schema_version, ARRAY[route_reason] AS reason_codes,
       claimed_tenant, source_topic, source_partition, source_offset, ingest_at, raw_key,
       source_headers, raw_value, record_bytes, CAST(proc_at AS TIMESTAMP_LTZ(3)) AS detected_at
FROM bronze_routed
WHERE route_reason IS NOT NULL
UNION ALL SELECT * FROM dlq_rows_device_telemetry
UNION ALL SELECT * FROM dlq_rows_orders;

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
       CAST(raw_key AS VARBINARY(1024)), CAST(key_bytes AS BIGINT),
       CASE WHEN headers_bytes <= 8192 THEN MAP_ENTRIES(source_headers) END,
       COALESCE(headers_bytes > 8192, FALSE),
       CAST(raw_value AS VARBINARY(65536)), CAST(record_bytes AS BIGINT),
       SHA256(raw_value), COALESCE(record_bytes > 65536, FALSE),
       detected_at
FROM dlq_measured;

-- What each record counts towards: (ingest window, tenant, event type, metric).
CREATE TEMPORARY VIEW audit_facts AS
SELECT CAST(TO_TIMESTAMP_LTZ(f.ingest_window_ms, 3) AS TIMESTAMP(3)) AS window_start,
       CAST(TO_TIMESTAMP_LTZ(f.ingest_window_ms + 60000, 3) AS TIMESTAMP(3)) AS window_end,
       f.tenant_id, f.event_type, f.metric
FROM (
    SELECT ingest_window_ms, topic_tenant AS tenant_id, '' AS event_type, 'read' AS metric
    FROM bronze_routed
    UNION ALL
    SELECT ingest_window_ms, topic_tenant, '', 'dlq'
    FROM bronze_routed
    WHERE route_reason IS NOT NULL
    UNION ALL SELECT * FROM audit_rows_device_telemetry
UNION ALL SELECT * FROM audit_rows_orders
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

