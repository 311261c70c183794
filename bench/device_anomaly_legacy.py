"""The device_anomaly detector as it was before issue #12 (process mode, two event-time timers per
reading, one value state holding the statistics and the whole pending list, rewritten per reading),
kept only so that bench/device_anomaly.py can measure it beside the current one on the same corpus
in one run (variant `before`). Not used by the job; its state layout is not the job's. Its alerts
are built by the current Detect (the shape the job's sink takes now).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator
from typing import Any

from jobs.device_anomaly import Detect, DetectorSpec


def _order(r: Any) -> tuple[Any, ...]:
    return (r[0], r[1], r[2])


class LegacyDetect(Detect):
    """Per (tenant_id, device): rolling statistics, z-score alerts and silence alerts.

    One value state per device (with the state TTL), so that each reading and each timer costs
    one state read and one write:
      count, mean, m2   Welford's running statistics of the applied readings
      last_at           event time of the last applied reading
      armed_at          the event time at which the device counts as silent, while armed
      done_at           the latest event time the device's timers have processed
      pending           readings not applied yet, (event_at, event_id, value)

    A reading is buffered and gets two event-time timers: one at its time, which applies it once
    the watermark passes it (the readings of one millisecond in event-id order), so readings are
    applied in event-time order whatever order they arrived in; and one silence.after later, its
    possible silence deadline. Applying a reading arms the silence at that deadline; when the
    watermark passes the armed deadline with no reading at or before it, one silence alert.

    Timers are set only in process_element, never in on_timer: PyFlink registers a timer set in
    on_timer only after the other timers of the watermark step in progress (out of order), and at
    the end of a bounded input it can drop it (AbstractPythonFunctionOperator.advanceWatermark
    stops draining new timers when the fired ones exactly fill bundles of
    python.fn-execution.bundle.size; measured: 1,000 readings of 200 devices gave no silence
    alerts). Timers are not deleted either; one that is no longer needed finds nothing to do.

    A reading is late when it is at or behind the watermark, or at or behind done_at: watermarks
    are not part of a checkpoint, so after a restore the watermark starts from nothing, and
    without done_at a reading the job had already passed by would be applied out of order.
    """

    def __init__(self, spec: DetectorSpec) -> None:
        self.spec = spec
        self.device: Any = None
        self.late: Any = None

    def open(self, runtime_context: Any) -> None:
        from pyflink.common import Time, Types
        from pyflink.datastream.state import StateTtlConfig, ValueStateDescriptor

        # ReturnExpiredIfNotCleanedUp, not NeverReturnExpired: PyFlink turns its Python-side state
        # cache off for the whole operator when a state never returns expired values (see
        # pyflink/fn_execution/state_impl.py, enable_time_to_live), and every access becomes a
        # round trip to the JVM (measured: ~300 readings/s). The TTL is here to free the state of
        # devices that are gone; a day-old value read just before its cleanup is harmless.
        ttl = (
            StateTtlConfig.new_builder(Time.milliseconds(self.spec.state_ttl_ms))
            .set_update_type(StateTtlConfig.UpdateType.OnCreateAndWrite)
            .set_state_visibility(StateTtlConfig.StateVisibility.ReturnExpiredIfNotCleanedUp)
            .build()
        )
        # Named: see _types().
        pending = Types.LIST(
            Types.ROW_NAMED(
                ["event_at", "event_id", "value"], [Types.LONG(), Types.STRING(), Types.DOUBLE()]
            )
        )
        long, double = Types.LONG(), Types.DOUBLE()
        device = ValueStateDescriptor(
            "device",
            Types.ROW_NAMED(
                ["count", "mean", "m2", "last_at", "armed_at", "done_at", "pending"],
                [long, double, double, long, long, long, pending],
            ),
        )
        device.enable_time_to_live(ttl)
        self.device = runtime_context.get_state(device)
        self.late = runtime_context.get_metrics_group().counter("late_readings")

    def process_element(self, value: Any, ctx: Any) -> Iterator[Any]:
        from pyflink.common import Row

        event_id, at, reading = value[0], value[1], value[2]
        timers = ctx.timer_service()
        d = self.device.value()
        done = d[5] if d is not None else None
        if at <= timers.current_watermark() or (done is not None and at <= done):
            self.late.inc()
            return
        entry = Row(at, event_id, reading)
        if d is None:
            d = Row(0, 0.0, 0.0, None, None, None, [entry])
        else:
            # `pending` stays sorted in application order, so a timer takes a prefix of it
            # instead of scanning and sorting everything a busy device has waiting. Readings
            # mostly arrive in order: the insertion point is at or near the end.
            if d[6] is None:
                d = Row(d[0], d[1], d[2], d[3], d[4], d[5], [])
            bisect.insort(d[6], entry, key=_order)
        self.device.update(d)
        timers.register_event_time_timer(at)
        timers.register_event_time_timer(at + self.spec.silence_ms)
        yield from ()

    def on_timer(self, timestamp: int, ctx: Any) -> Iterator[Any]:
        # The watermark has passed `timestamp`: every on-time reading up to it is here. Walk the
        # due readings in event-time order; a device is silent when its armed deadline passes
        # with no reading at or before it.
        from pyflink.common import Row

        spec = self.spec
        d = self.device.value()
        if d is None:  # expired
            return
        tenant, device = ctx.get_current_key()
        n, mean, m2, last, armed, _done, waiting = d[0], d[1], d[2], d[3], d[4], d[5], d[6]
        waiting = waiting or []
        # Sorted (process_element keeps it so): the due readings are a prefix.
        k = bisect.bisect_right(waiting, timestamp, key=lambda r: r[0])
        due = waiting[:k]
        for at, _event_id, x in due:
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
        if armed is not None and armed <= timestamp:
            yield self._silence(tenant, device, last)
            armed = None
        self.device.update(Row(n, mean, m2, last, armed, timestamp, waiting[k:]))
