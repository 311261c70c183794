-- Purpose: the benchmark's baseline: every Bronze record copied to one topic as it is, no logic, with the same delivery guarantee as the pipeline.

CREATE TEMPORARY TABLE bronze_events (
    raw_value  BYTES
) WITH (
${with_bronze_events}
);

CREATE TEMPORARY TABLE bench_passthrough (
    raw_value  BYTES
) WITH (
${with_bench_passthrough}
);

INSERT INTO bench_passthrough SELECT raw_value FROM bronze_events;
