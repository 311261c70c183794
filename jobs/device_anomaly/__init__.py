"""device_anomaly: per-device z-score and silence alerts from a Silver topic (Python DataStream).

Submitted like the SQL jobs (`flink run -py streamlake/runtime/flink_entry.py device_anomaly`); config is
conf/streams/device_anomaly.yaml. The pipeline, every operator with a stable uid and name so that
savepoints survive redeploys:

    KafkaSource of Silver partition N, read_committed      uid device_anomaly.silver.pN
      -> parse readings (Python)                           uid device_anomaly.parse.pN
      -> event time and watermarks                         uid device_anomaly.event_time.pN
      -> drop the timestamp column                         uid device_anomaly.strip_time.pN
    union -> key by (tenant_id, device) -> detect          uid device_anomaly.detect
      -> detection time as the record timestamp            uid device_anomaly.detection_time
      -> drop the timestamp column                         uid device_anomaly.strip_detection_time
      -> measures zipped into (name, value) rows (Table API, stateless; generated uids)
      -> KafkaSink, exactly-once, to the alert topic       uid device_anomaly.alert_sink

The Python operators run in thread mode (python.execution-mode: thread, see stream_env): in the
TaskManager's JVM, per record, with state and timers served directly by Flink's state backend.

Which readings are late was decided by the Silver job, per Bronze partition (a reading is late
when its event time is at or behind `partition_watermark_at`, its Bronze partition's watermark),
so it does not depend on read speed; late readings are not applied, and are counted in the
`late_readings` metric. The job's watermark is the Silver job's own, carried by every row
(`stream_watermark_at`): every on-time row after a row in its Silver partition has a later event
time. PyFlink's `from_source` ignores a Python TimestampAssigner (FLINK-39725), and the Silver
records' Kafka timestamps are write times, so the carried value is parsed in Python after the
source, and becomes the record's timestamp; a watermark generated there is per source subtask, so
one single-partition source per Silver partition keeps it per partition: the union passes on the
minimum. The partitions are listed when the job is built; a partition added later needs a
redeploy (its source has a new uid and starts from the earliest offset).

The result does not depend on arrival order or parallelism: readings are buffered in keyed state and
applied in event-time order (ties by event id) once the watermark passes them. A reading that is
late by its Bronze partition, or (after an idle partition came back) behind this job's watermark,
is not applied; it is counted in the `late_readings` metric.
"""

from jobs.device_anomaly.operators import (
    ALERT_FIELDS,
    KEY_FIELDS,
    NO_WATERMARK,
    Detect,
    DetectorSpec,
    ParseReadings,
    format_ltz,
    parse_event_at,
    stream_type,
)
from jobs.device_anomaly.spec import (
    CONFIG_FILE,
    JOB_NAME,
    DeviceAnomalyConfig,
    SilenceRule,
    Spec,
    ZScoreRule,
    load,
)
from jobs.device_anomaly.topology import MAX_MEASURES, build, run, silver_partitions, stream_env

__all__ = [
    "ALERT_FIELDS",
    "CONFIG_FILE",
    "JOB_NAME",
    "KEY_FIELDS",
    "MAX_MEASURES",
    "NO_WATERMARK",
    "Detect",
    "DetectorSpec",
    "DeviceAnomalyConfig",
    "ParseReadings",
    "SilenceRule",
    "Spec",
    "ZScoreRule",
    "build",
    "format_ltz",
    "load",
    "parse_event_at",
    "run",
    "silver_partitions",
    "stream_env",
    "stream_type",
]
