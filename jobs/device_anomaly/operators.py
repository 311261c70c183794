"""The device_anomaly job's Python operators, ParseReadings and Detect, and what they need: the
time and JSON helpers they share with the SQL alerts, and the records they read and emit.

They are pickled with the job and imported in the TaskManager (thread mode), by this module's path.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pyflink.datastream import FlatMapFunction, KeyedProcessFunction

from streamlake.config import tables

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
