"""The device_anomaly job's topology: its sources, operators and sink wired onto a
StreamExecutionEnvironment, with their stable uids (the pipeline is drawn in __init__.py)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jobs.device_anomaly.operators import (
    _AFTER_MEASURES,
    _BEFORE_MEASURES,
    Detect,
    DetectorSpec,
    ParseReadings,
    _types,
)
from jobs.device_anomaly.spec import JOB_NAME, Spec, load
from streamlake.config import paths
from streamlake.config.settings import PlatformSettings


def silver_partitions(bootstrap: str, topic: str, timeout_s: float = 30.0) -> list[int]:
    from connectors import kafka

    md = kafka.admin(bootstrap).list_topics(topic, timeout=timeout_s)
    t = md.topics.get(topic)
    if t is None or t.error is not None or not t.partitions:
        raise RuntimeError(
            f"Silver topic {topic} not found at {bootstrap}; create it (make topics) or run the "
            "Silver job first"
        )
    return sorted(t.partitions)


def build(
    env: Any,
    spec: Spec,
    platform: PlatformSettings,
    *,
    bounded: bool,
    stop_offsets: Mapping[int, int] | None = None,
) -> Any:
    """Wire the job onto `env`; return the sink.

    bounded=True reads up to the offsets that are latest when the job starts, or, where
    stop_offsets gives one, up to that offset of the partition (exclusive; the Kafka connector's
    specific-offsets bounded mode), then finishes: the end of input is the maximum watermark, so
    every pending timer, silence timers included, fires.
    """
    from pyflink.common import Duration, Types, WatermarkStrategy
    from pyflink.common.serialization import SimpleStringSchema
    from pyflink.datastream import DataStream, KeyedStream
    from pyflink.datastream.connectors import DeliveryGuarantee
    from pyflink.datastream.connectors.kafka import (
        KafkaOffsetsInitializer,
        KafkaRecordSerializationSchema,
        KafkaSink,
        KafkaSource,
        KafkaTopicPartition,
    )
    from pyflink.datastream.formats.json import JsonRowSerializationSchema
    from pyflink.java_gateway import get_gateway

    if stop_offsets and not bounded:
        raise ValueError("stop_offsets bound the input: they need bounded=True")
    t = _types()
    jvm = get_gateway().jvm
    py_eventtime = jvm.org.apache.flink.streaming.api.functions.python.eventtime
    bootstrap = platform.kafka.bootstrap
    ident = f"{platform.pipeline_id}.{JOB_NAME}"
    # The record timestamps are the Silver job's watermark carried by the rows (ParseReadings):
    # in order per Silver partition, so no bound is needed (the watermark is 1 ms behind).
    watermarks = WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(0))
    if not bounded:
        # A partition with nothing new stops holding the watermark back after idle_timeout. A
        # bounded run does not need this (a partition at its end finishes, and a finished input
        # no longer counts) and must not have it: a partition whose first records take longer
        # than the timeout (Python workers start in seconds) would be skipped, and its readings
        # would then arrive behind the watermark of the others.
        watermarks = watermarks.with_idleness(Duration.of_millis(spec.idle_timeout_ms))

    per_partition = []
    for p in silver_partitions(bootstrap, spec.silver_topic):
        tp = KafkaTopicPartition(spec.silver_topic, p)
        builder = (
            KafkaSource.builder()
            .set_bootstrap_servers(bootstrap)
            .set_partitions({tp})
            .set_group_id(ident)
            .set_client_id_prefix(f"{ident}.p{p}")
            .set_starting_offsets(KafkaOffsetsInitializer.earliest())
            .set_value_only_deserializer(SimpleStringSchema())
            .set_property("isolation.level", "read_committed")
        )
        if bounded:
            stop = (stop_offsets or {}).get(p)
            builder = builder.set_bounded(
                KafkaOffsetsInitializer.offsets({tp: stop})
                if stop is not None
                else KafkaOffsetsInitializer.latest()
            )
        raw = (
            env.from_source(builder.build(), WatermarkStrategy.no_watermarks(), f"silver p{p}")
            .uid(f"{JOB_NAME}.silver.p{p}")
            .set_parallelism(1)
        )
        parsed = (
            raw.flat_map(ParseReadings(spec.key_field, spec.value_field), output_type=t.timed)
            .name(f"parse readings p{p}")
            .uid(f"{JOB_NAME}.parse.p{p}")
            .set_parallelism(1)
        )
        # The timestamp parsed above (tuple field 1) becomes the record's event time; the
        # watermark generator is Java, one per partition.
        j_timed = parsed._j_data_stream.assignTimestampsAndWatermarks(
            watermarks._j_watermark_strategy.withTimestampAssigner(
                py_eventtime.CustomTimestampAssigner()
            )
        )
        j_timed.name(f"event time p{p}").uid(f"{JOB_NAME}.event_time.p{p}").setParallelism(1)
        j_keyed_rows = j_timed.map(
            py_eventtime.RemoveTimestampMapFunction(), t.keyed.get_java_type_info()
        )
        j_keyed_rows.name(f"strip time p{p}").uid(f"{JOB_NAME}.strip_time.p{p}").setParallelism(1)
        per_partition.append(j_keyed_rows)

    union = DataStream(per_partition[0]).union(*(DataStream(j) for j in per_partition[1:]))
    # Key by the row's first field, as PyFlink's own key_by does after its key-extracting map:
    # the parse step already put the key first, so no extra Python hop is needed.
    j_keyed = union._j_data_stream.keyBy(
        jvm.org.apache.flink.streaming.api.functions.python.KeyByKeySelector(),
        Types.ROW_NAMED(["key"], [t.key]).get_java_type_info(),
    )
    keyed = KeyedStream(j_keyed, t.reading, union)
    alerts = (
        keyed.process(
            Detect(
                DetectorSpec(
                    event_type=spec.event_type,
                    zscore_rule_id=spec.zscore_rule_id,
                    k=spec.k,
                    min_samples=spec.min_samples,
                    silence_rule_id=spec.silence_rule_id,
                    silence_ms=spec.silence_ms,
                    state_ttl_ms=spec.state_ttl_ms,
                )
            ),
            output_type=t.detected,
        )
        .name("detect anomalies")
        .uid(f"{JOB_NAME}.detect")
    )
    _check_python_mode(env, [parsed, alerts])
    # An alert leaves with its detection time as the Kafka record timestamp, not the event time the
    # keyed timer gave it: the broker's time retention counts from record timestamps, and would
    # delete at once the alerts about readings older than retention.ms (a backfill, a replay).
    j_stamped = alerts._j_data_stream.assignTimestampsAndWatermarks(
        WatermarkStrategy.no_watermarks()._j_watermark_strategy.withTimestampAssigner(
            py_eventtime.CustomTimestampAssigner()
        )
    )
    j_stamped.name("detection time").uid(f"{JOB_NAME}.detection_time")
    j_detected = j_stamped.map(
        py_eventtime.RemoveTimestampMapFunction(), t.detected_row.get_java_type_info()
    )
    j_detected.name("strip detection time").uid(f"{JOB_NAME}.strip_detection_time")
    j_alerts = _zip_measures(env, DataStream(j_detected))
    # The key is the JSON object of the row's first three fields (tenant_id, rule_id, alert_key),
    # the bytes the SQL alerts' json key format writes, so one alert key stays on one partition.
    record = (
        KafkaRecordSerializationSchema.builder()
        .set_topic(spec.output_topic)
        .set_key_serialization_schema(
            JsonRowSerializationSchema.builder().with_type_info(t.alert_key).build()
        )
        .set_value_serialization_schema(
            JsonRowSerializationSchema.builder().with_type_info(t.alert).build()
        )
        .build()
    )
    sink = (
        KafkaSink.builder()
        .set_bootstrap_servers(bootstrap)
        .set_record_serializer(record)
        # The platform's guarantee, like the SQL jobs' Kafka sinks (conf/platform.yaml: sinks).
        .set_delivery_guarantee(
            DeliveryGuarantee.EXACTLY_ONCE
            if platform.sinks.delivery_guarantee == "exactly-once"
            else DeliveryGuarantee.AT_LEAST_ONCE
        )
        .set_transactional_id_prefix(f"{ident}.alert_events")
        .set_property("transaction.timeout.ms", str(platform.sinks.transaction_timeout_ms))
        .build()
    )
    return (
        DataStream(j_alerts)
        .sink_to(sink)
        .name(f"alerts to {spec.output_topic}")
        .uid(f"{JOB_NAME}.alert_sink")
    )


# The most measures an alert has (z-score: value, mean, std, z, count).
MAX_MEASURES = 5


def _zip_measures(env: Any, detected: Any) -> Any:
    """The alert rows with `measures` as ARRAY<ROW<name, value>>, zipped from Detect's two arrays
    by the Table API (stateless projections, in the JVM); each record keeps its timestamp (the
    detection time: the rowtime attribute goes through) and has it as a tenth, trailing field,
    which the sink's serializers, reading fields by position, do not write."""
    from pyflink.table import Schema, StreamTableEnvironment
    from pyflink.table.expressions import array, col, if_then_else, row

    t_env = StreamTableEnvironment.create(env)
    table = t_env.from_data_stream(
        detected,
        Schema.new_builder()
        .column_by_metadata("rowtime", "TIMESTAMP_LTZ(3)")
        .watermark("rowtime", "SOURCE_WATERMARK()")
        .build(),
    )
    names, values = col("measure_names"), col("measure_values")

    def zipped(n: int) -> Any:
        return array(*(row(names.at(i), values.at(i)) for i in range(1, n + 1)))

    measures = zipped(MAX_MEASURES)
    for n in range(MAX_MEASURES - 1, 0, -1):
        measures = if_then_else(names.cardinality == n, zipped(n), measures)
    alerts = table.select(
        *(col(f) for f in _BEFORE_MEASURES),
        measures.alias("measures"),
        *(col(f) for f in _AFTER_MEASURES),
        col("rowtime"),
    )
    return t_env.to_data_stream(alerts)._j_data_stream


def _check_python_mode(env: Any, streams: list[Any]) -> None:
    """Every Python operator runs in the configured python.execution-mode: PyFlink picks an
    operator per function kind when the job is built, and one that thread mode does not support
    falls back to process mode without a word."""
    from pyflink.java_gateway import get_gateway
    from pyflink.util.java_utils import get_j_env_configuration

    options = get_gateway().jvm.org.apache.flink.python.PythonOptions
    mode = str(
        get_j_env_configuration(env._j_stream_execution_environment).get(
            options.PYTHON_EXECUTION_MODE
        )
    )
    for ds in streams:
        t = ds._j_data_stream.getTransformation()
        op = t.getOperatorFactory().getOperator().getClass().getSimpleName()
        if op.startswith("Embedded") != (mode == "thread"):
            raise RuntimeError(
                f"{JOB_NAME}: operator {t.getName()!r} is a {op}, not in {mode} mode"
            )


def stream_env(
    platform: PlatformSettings,
    *,
    name: str,
    local: bool,
    parallelism: int | None = None,
    extra: Mapping[str, str] | None = None,
) -> Any:
    """A StreamExecutionEnvironment with the platform's settings (the DataStream twin of
    flinkenv.table_env): exactly-once checkpoints; locally, the connector jars and fail-fast."""
    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment

    from streamlake.runtime import flinkenv

    settings = {
        **flinkenv.job_settings(platform, name, parallelism),
        # Thread mode: the Python functions run in the TaskManager's JVM (PemJa), called per record,
        # with keyed state and timers served by Flink's own backend, instead of a separate Python
        # worker fed in bundles over gRPC (FLINK-28559; both Python operators here, the parse
        # flat_map and the keyed process function, support it: build() checks that neither fell
        # back to process mode). The embedded interpreter does not read the virtualenv's .pth
        # files: python.pythonpath gives it the venv's packages (pemja, pyflink) and the
        # checkout (jobs); on a cluster these paths must exist on every TaskManager, as the
        # interpreter from -pyexec does.
        "python.execution-mode": "thread",
        "python.pythonpath": paths.worker_python_path(),
        **(extra or {}),
    }
    if local:
        flinkenv.run_locally(settings)
    conf = Configuration()
    for k, v in settings.items():
        conf.set_string(k, v)
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    if local:
        env.add_jars(*flinkenv.connector_jars())
    return env


def run(
    platform: PlatformSettings,
    conf_dir: Path,
    *,
    local: bool,
    bounded: bool,
    parallelism: int | None = None,
    stop_offsets: Mapping[int, int] | None = None,
    extra: Mapping[str, str] | None = None,
) -> Any:
    """Build and start the job; return its JobClient (`.get_job_execution_result().result()`
    waits for a bounded run to finish)."""
    spec = load(conf_dir)
    env = stream_env(platform, name=JOB_NAME, local=local, parallelism=parallelism, extra=extra)
    build(env, spec, platform, bounded=bounded, stop_offsets=stop_offsets)
    return env.execute_async(JOB_NAME)
