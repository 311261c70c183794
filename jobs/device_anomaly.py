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

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pyflink.datastream import FlatMapFunction, KeyedProcessFunction

from streamlake.config import loader as config
from streamlake.config import paths, registry, tables
from streamlake.config.settings import PlatformSettings

JOB_NAME = "device_anomaly"
CONFIG_FILE = Path("streams") / "device_anomaly.yaml"

_NUMERIC = ("int", "long", "double")
_KEYLIKE = ("string", "enum")


class ZScoreRule(config.Strict):
    rule_id: str = Field(pattern=registry.NAME.pattern)
    k: float = Field(gt=0)
    # Two readings are the fewest with a sample standard deviation.
    min_samples: int = Field(ge=2)


class SilenceRule(config.Strict):
    rule_id: str = Field(pattern=registry.NAME.pattern)
    after: registry.Duration


class DeviceAnomalyConfig(config.Strict):
    event_type: str
    key_field: str = Field(pattern=registry.NAME.pattern)
    value_field: str = Field(pattern=registry.NAME.pattern)
    zscore: ZScoreRule
    silence: SilenceRule
    state_ttl: registry.Duration
    idle_timeout: registry.Duration
    output_topic: str

    @field_validator("output_topic")
    @classmethod
    def _alert_topic(cls, v: str) -> str:
        if not registry.TOPIC.match(v) or not v.startswith("alert_"):
            raise ValueError("a topic name starting with alert_")
        return v


@dataclass(frozen=True)
class Spec:
    """Everything the job needs, resolved from its config and the registry."""

    config_file: Path
    event_type: str
    silver_topic: str
    key_field: str
    value_field: str
    watermark_ms: int
    idle_timeout_ms: int
    state_ttl_ms: int
    zscore_rule_id: str
    k: float
    min_samples: int
    silence_rule_id: str
    silence_ms: int
    output_topic: str


def load(conf_dir: Path) -> Spec:
    """Load conf/streams/device_anomaly.yaml and check it against the onboarding registry."""
    path = conf_dir / CONFIG_FILE
    cfg = config.load(DeviceAnomalyConfig, path)
    reg = registry.load_registry(conf_dir)
    et = reg.event_types.get(cfg.event_type)
    if et is None:
        known = ", ".join(sorted(reg.event_types)) or "none"
        raise config.ConfigError(
            path, "event_type", f"a known event type ({known}), got {cfg.event_type!r}"
        )
    if cfg.silence.rule_id == cfg.zscore.rule_id:
        raise config.ConfigError(
            path,
            "silence.rule_id",
            f"a rule id other than zscore.rule_id, got {cfg.silence.rule_id!r}",
        )
    if registry.duration_ms(cfg.state_ttl) <= registry.duration_ms(cfg.silence.after):
        # A device's state would expire before its silence alert is due.
        raise config.ConfigError(
            path, "state_ttl", f"a duration longer than silence.after, got {cfg.state_ttl!r}"
        )
    fields = et.silver_fields()
    for key, want in (("key_field", _KEYLIKE), ("value_field", _NUMERIC)):
        name = getattr(cfg, key)
        spec = fields.get(name)
        if spec is None or spec.type not in want:
            have = ", ".join(n for n, f in fields.items() if f.type in want) or "none"
            raise config.ConfigError(
                path, key, f"a {'/'.join(want)} field of {et.event_type} ({have}), got {name!r}"
            )
    return Spec(
        config_file=path,
        event_type=et.event_type,
        silver_topic=et.topic,
        key_field=cfg.key_field,
        value_field=cfg.value_field,
        # The event type's bound: how far a device's readings can arrive out of order (its reason
        # is in the event type's file). Readings later than this are not applied, and counted.
        watermark_ms=registry.duration_ms(et.watermark.max_out_of_orderness),
        idle_timeout_ms=registry.duration_ms(cfg.idle_timeout),
        state_ttl_ms=registry.duration_ms(cfg.state_ttl),
        zscore_rule_id=cfg.zscore.rule_id,
        k=cfg.zscore.k,
        min_samples=cfg.zscore.min_samples,
        silence_rule_id=cfg.silence.rule_id,
        silence_ms=registry.duration_ms(cfg.silence.after),
        output_topic=cfg.output_topic,
    )


# ---- time and JSON, shared with the SQL alerts ----------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def parse_event_at(text: str) -> int:
    """Epoch milliseconds of a TIMESTAMP_LTZ as Flink's json format writes it ("...T...Z")."""
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        raise ValueError(f"timestamp without a zone: {text!r}")
    return (dt - _EPOCH) // _MS


def format_ltz(ms: int) -> str:
    """A TIMESTAMP_LTZ(3) exactly as Flink's json format writes it with timestamp-format ISO-8601
    (the platform's setting): the fraction without trailing zeros, none for whole seconds."""
    dt = _EPOCH + timedelta(milliseconds=ms)
    frac = ms % 1000
    tail = "." + f"{frac:03d}".rstrip("0") if frac else ""
    return f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt:%H:%M:%S}{tail}Z"


# The alert row: the value written to the alert topic, the columns of the alert table as
# streamlake/config/tables.py ALERTS describes them (the SQL alerts' DDL and the loader's Delta schema come from
# the same description), the Kafka key's fields first: the SQL alerts' key.fields
# (tenant_id;rule_id;alert_key) write the same key (see build()). Timestamps are TIMESTAMP_LTZ(3)
# rendered as Flink's json format writes them (format_ltz).
KEY_FIELDS = tables.ALERTS.kafka_key
ALERT_FIELDS = (*KEY_FIELDS, *(n for n in tables.ALERTS.names if n not in KEY_FIELDS))
# Detect emits every field but `measures` as it is, and the measures as two arrays (see _types()).
_BEFORE_MEASURES = ALERT_FIELDS[: ALERT_FIELDS.index("measures")]
_AFTER_MEASURES = ALERT_FIELDS[ALERT_FIELDS.index("measures") + 1 :]


def stream_type(t: tables.Type) -> Any:
    """The DataStream type a column of the description is written as (timestamps as text)."""
    from pyflink.common import Types

    if t.kind in ("string", "timestamp", "local_timestamp"):
        return Types.STRING()
    if t.kind == "double":
        return Types.DOUBLE()
    if t.kind == "long":
        return Types.LONG()
    if t.kind == "int":
        return Types.INT()
    if t.kind == "boolean":
        return Types.BOOLEAN()
    if t.kind == "row":
        # Every Row type is named: a Python worker on a cluster has no JVM to ask for the names
        # of an unnamed one (RowTypeInfo.get_field_names), and fails when it builds a coder for it.
        return Types.ROW_NAMED([n for n, _ in t.fields], [stream_type(f) for _, f in t.fields])
    if t.kind == "array" and t.items is not None:
        items = stream_type(t.items)
        return Types.OBJECT_ARRAY(items) if t.items.kind == "row" else Types.BASIC_ARRAY(items)
    raise ValueError(f"no DataStream type for {t}")


def _row(fields: tuple[str, ...]) -> Any:
    from pyflink.common import Types

    return Types.ROW_NAMED(
        list(fields), [stream_type(tables.ALERTS.column(f).type) for f in fields]
    )


def _types() -> Any:
    from pyflink.common import Types

    class T:
        # Every Row type is named: a Python worker on a cluster has no JVM to ask for the names of
        # an unnamed one (RowTypeInfo.get_field_names), and fails when it builds a coder for it.
        key = Types.ROW_NAMED(["tenant_id", "device"], [Types.STRING(), Types.STRING()])
        reading = Types.ROW_NAMED(
            ["event_id", "event_at", "value"], [Types.STRING(), Types.LONG(), Types.DOUBLE()]
        )
        keyed = Types.ROW_NAMED(["key", "reading"], [key, reading])
        timed = Types.TUPLE([keyed, Types.LONG()])
        # Timestamps are rendered to strings in Python (format_ltz); the JSON is the same.
        alert = _row(ALERT_FIELDS)
        alert_key = _row(KEY_FIELDS)
        # What Detect emits: the alert with its measures as two arrays, names and values, zipped
        # into `measures` in the JVM (see build()). In thread mode PyFlink converts an array of
        # rows returned by Python into one reused Row object repeated (PythonTypeUtils
        # RowDataConverter.reuseRow): every measure would read as the last one.
        detected_row = Types.ROW_NAMED(
            [*_BEFORE_MEASURES, "measure_names", "measure_values", *_AFTER_MEASURES],
            [
                *_row(_BEFORE_MEASURES).get_field_types(),
                Types.BASIC_ARRAY(Types.STRING()),
                Types.BASIC_ARRAY(Types.DOUBLE()),
                *_row(_AFTER_MEASURES).get_field_types(),
            ],
        )
        detected = Types.TUPLE([detected_row, Types.LONG()])

    return T


# ---- operators -----------------------------------------------------------------------------------


class ParseReadings(FlatMapFunction):  # type: ignore[misc]
    """Silver JSON -> ((tenant_id, device), (event_id, event_at_ms, value)), watermark_ms.

    Silver rows are validated upstream; a row that still lacks the key, the event time or a numeric
    value is not a reading: it is counted in `unusable_records`, not passed on. A reading late by
    its Bronze partition (event_at at or behind partition_watermark_at) is counted in
    `late_readings` and not passed on. The second field is the row's stream watermark (the
    Silver job's watermark when it wrote the row), the record timestamp this job's watermark is
    made of.
    """

    def __init__(self, key_field: str, value_field: str) -> None:
        self.key_field = key_field
        self.value_field = value_field
        self.unusable: Any = None
        self.late: Any = None

    def open(self, runtime_context: Any) -> None:
        group = runtime_context.get_metrics_group()
        self.unusable = group.counter("unusable_records")
        self.late = group.counter("late_readings")

    def flat_map(self, value: str) -> Iterator[Any]:
        from pyflink.common import Row

        try:
            row = json.loads(value)
            tenant, device = row["tenant_id"], row[self.key_field]
            reading = row[self.value_field]
            at = parse_event_at(row["event_at"])
            if (
                not isinstance(tenant, str)
                or not isinstance(device, str)
                or isinstance(reading, bool)
                or not isinstance(reading, int | float)
                or not math.isfinite(reading)
            ):
                raise ValueError("not a reading")
            event_id = str(row["event_id"])
            partition_wm = _optional_ms(row.get("partition_watermark_at"))
            stream_wm = _optional_ms(row.get("stream_watermark_at"))
        except (ValueError, KeyError, TypeError):
            self.unusable.inc()
            return
        if partition_wm is not None and at <= partition_wm:
            self.late.inc()
            return
        yield (
            Row(Row(tenant, device), Row(event_id, at, float(reading))),
            NO_WATERMARK if stream_wm is None else stream_wm,
        )


# The record timestamp of a row written before the Silver job had a watermark: moves nothing.
NO_WATERMARK = -(2**63) + 1


def _optional_ms(text: Any) -> int | None:
    return None if text is None else parse_event_at(text)


# A stand-in for a value PyFlink does not pass on to Flink, which then applies its own default.
_FLINK_DEFAULT = "Flink's default"


@dataclass(frozen=True)
class DetectorSpec:
    event_type: str
    zscore_rule_id: str
    k: float
    min_samples: int
    silence_rule_id: str
    silence_ms: int
    state_ttl_ms: int


class Detect(KeyedProcessFunction):  # type: ignore[misc]
    """Per (tenant_id, device): rolling statistics, z-score alerts and silence alerts.

    Two keyed states per device, both with the state TTL and both pickled Python values (in thread
    mode PyFlink stores a Row in state as pickled bytes anyway; a tuple pickles smaller and faster):
      stats     (count, mean, m2, last_at, armed_at, done_at, timer_at):
                  count, mean, m2   Welford's running statistics of the applied readings
                  last_at           event time of the last applied reading
                  armed_at          the event time at which the device counts as silent, while armed
                  done_at           the watermark at which the device's readings were last applied
                  timer_at          the device's one event-time timer, if set
      pending   a list state of readings not applied yet, (event_at, event_id, value), in arrival
                order: a reading is appended, never rewritten with the others.

    A reading costs one read of `stats` and one append to `pending`. The device has at most one
    timer, at the earliest of its pending readings and its armed silence deadline: a reading sets
    it only when it is earlier than the one set (readings mostly arrive in order, so mostly not).
    When the watermark W passes the timer, every pending reading at or before W is due (all the
    on-time readings up to W are here): they are applied in event-time order (ties by event id,
    then value), so the result does not depend on arrival order; a device is silent when its armed
    deadline passes with no reading at or before it. Then the one next timer is set, after W. So a
    device's timer fires at most once per watermark advance, however many readings it applied.

    The next timer is always after the watermark, also when it is set in on_timer: in process mode
    PyFlink registers a timer set in on_timer only after the watermark step in progress, and at the
    end of a bounded input it can drop one (AbstractPythonFunctionOperator.advanceWatermark stops
    draining new timers when the fired ones exactly fill bundles), which matters only for a timer
    that is already due. At the end of input W is the maximum: everything is applied, every armed
    silence alerts, and no timer is set.

    A reading is late when it is at or behind the watermark, or at or behind done_at: watermarks
    are not part of a checkpoint, so after a restore the watermark starts from nothing, and
    without done_at a reading the job had already passed by would be applied out of order.

    State layout: not the one before issue #12 (one Row state "device" with the pending list in
    it, two timers per reading); savepoints taken before it do not restore into this job.
    """

    def __init__(self, spec: DetectorSpec) -> None:
        self.spec = spec
        self.stats: Any = None
        self.pending: Any = None
        self.late: Any = None

    def open(self, runtime_context: Any) -> None:
        from pyflink.common import Time, Types
        from pyflink.datastream.state import (
            ListStateDescriptor,
            StateTtlConfig,
            ValueStateDescriptor,
        )

        # ReturnExpiredIfNotCleanedUp, not NeverReturnExpired: in process mode PyFlink turns its
        # Python-side state cache off for the whole operator when a state never returns expired
        # values (pyflink/fn_execution/state_impl.py, enable_time_to_live; measured ~300
        # readings/s). The TTL is here to free the state of devices that are gone; a day-old
        # value read just before its cleanup is harmless.
        # The background cleanup is spelled out, as Flink's defaults: PyFlink's default
        # strategies make a py4j Duration (the RocksDB compaction filter's period, 30 days), and
        # in thread mode on a TaskManager there is no py4j gateway (the job failed in open() with
        # FileNotFoundError, launching one; the local executor has its client's). Neither of
        # PyFlink's converters passes that period on, so Flink's default applies whatever it is.
        ttl = (
            StateTtlConfig.new_builder(Time.milliseconds(self.spec.state_ttl_ms))
            .set_update_type(StateTtlConfig.UpdateType.OnCreateAndWrite)
            .set_state_visibility(StateTtlConfig.StateVisibility.ReturnExpiredIfNotCleanedUp)
            .disable_cleanup_in_background()
            .cleanup_incrementally(5, False)
            .cleanup_in_rocksdb_compact_filter(1000, periodic_compaction_time=_FLINK_DEFAULT)
            .build()
        )
        stats = ValueStateDescriptor("stats", Types.PICKLED_BYTE_ARRAY())
        stats.enable_time_to_live(ttl)
        pending = ListStateDescriptor("pending", Types.PICKLED_BYTE_ARRAY())
        pending.enable_time_to_live(ttl)
        self.stats = runtime_context.get_state(stats)
        self.pending = runtime_context.get_list_state(pending)
        self.late = runtime_context.get_metrics_group().counter("late_readings")

    def process_element(self, value: Any, ctx: Any) -> Iterator[Any]:
        event_id, at, reading = value[0], value[1], value[2]
        timers = ctx.timer_service()
        s = self.stats.value()
        if at <= timers.current_watermark() or (s is not None and s[5] is not None and at <= s[5]):
            self.late.inc()
            return
        self.pending.add((at, event_id, reading))
        if s is None:
            s = (0, 0.0, 0.0, None, None, None, None)
        timer = s[6]
        if timer is None or at < timer:
            if timer is not None:
                timers.delete_event_time_timer(timer)
            timers.register_event_time_timer(at)
            self.stats.update((*s[:6], at))
        yield from ()

    def on_timer(self, timestamp: int, ctx: Any) -> Iterator[Any]:
        spec = self.spec
        s = self.stats.value()
        if s is None:  # expired
            return
        timers = ctx.timer_service()
        # Every on-time reading up to the watermark is here, not only those up to the timer.
        wm = max(timestamp, timers.current_watermark())
        n, mean, m2, last, armed, _done, timer = s
        if timer is not None and timer > wm:  # not the device's timer (deleted, or restored)
            return
        waiting = sorted(self.pending.get() or ())
        k = bisect.bisect_right(waiting, wm, key=lambda r: r[0])
        tenant, device = ctx.get_current_key()
        for at, _event_id, x in waiting[:k]:
            if armed is not None and armed < at:
                yield self._silence(tenant, device, last)
            if n >= spec.min_samples:
                std = math.sqrt(m2 / (n - 1))
                if std > 0:
                    z = (x - mean) / std
                    if abs(z) > spec.k:
                        measures = {"value": x, "mean": mean, "std": std, "z": z, "count": n}
                        yield self._alert(
                            tenant, device, spec.zscore_rule_id, "zscore", at, measures
                        )
            n += 1
            delta = x - mean
            mean += delta / n
            m2 += delta * (x - mean)
            last, armed = at, at + spec.silence_ms
        if armed is not None and armed <= wm:
            yield self._silence(tenant, device, last)
            armed = None
        rest = waiting[k:]
        if k:
            if rest:
                self.pending.update(rest)
            else:
                self.pending.clear()
        # The one next timer: after the watermark (see the class comment).
        due = [t for t in (rest[0][0] if rest else None, armed) if t is not None]
        timer = min(due) if due else None
        if timer is not None:
            timers.register_event_time_timer(timer)
        self.stats.update((n, mean, m2, last, armed, wm, timer))

    def _silence(self, tenant: str, device: str, last: int | None) -> Any:
        assert last is not None  # armed only after a reading
        measures = {"silence_ms": float(self.spec.silence_ms)}
        return self._alert(tenant, device, self.spec.silence_rule_id, "silence", last, measures)

    def _alert(
        self,
        tenant: str,
        device: str,
        rule_id: str,
        kind: str,
        at_ms: int,
        measures: dict[str, float],
    ) -> Any:
        """(alert row, detected_at in epoch ms); the second becomes the Kafka record's timestamp.
        The row is _types().detected_row: the measures as names and values."""
        from pyflink.common import Row

        at = format_ltz(at_ms)
        now_ms = (datetime.now(UTC) - _EPOCH) // _MS
        row = Row(
            tenant,
            rule_id,
            device,
            kind,
            self.spec.event_type,
            at,
            at,
            list(measures),
            [float(v) for v in measures.values()],
            format_ltz(now_ms),
        )
        return row, now_ms


# ---- wiring ----------------------------------------------------------------------------------------


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
        "pipeline.name": name,
        "parallelism.default": str(parallelism or platform.flink.parallelism),
        "execution.checkpointing.interval": f"{platform.flink.checkpoint_interval_ms} ms",
        "execution.checkpointing.mode": "EXACTLY_ONCE",
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
        settings.setdefault("restart-strategy.type", "fixed-delay")
        settings.setdefault("restart-strategy.fixed-delay.attempts", "1")
        settings.setdefault("restart-strategy.fixed-delay.delay", "1 s")
        settings["python.executable"] = paths.python_executable()
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
