"""The benchmark's seeded load: tenants, key skew, out-of-order, late, future, duplicate and bad
events into the Bronze topics (`python -m bench.generate` runs it alone)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass
class LoadSpec:
    """What the generator sends; seeded, so two runs send the same events."""

    seed: int = 6
    tenants: tuple[str, ...] = ("acme", "globex")
    devices: int = 500
    key_skew: float = 1.2  # Zipf exponent over devices (1 hot device, a long tail)
    out_of_order_ms: int = 3_000  # within the 5 s watermark bound
    out_of_order_share: float = 0.1  # events sent after later ones
    late_fraction: float = 0.002  # older than the bound: late rows
    future_fraction: float = 0.0005  # hours ahead: the DLQ (event_time_in_future)
    duplicate_fraction: float = 0.01
    bad_fraction: float = 0.005


class Generator:
    """Bronze JSON events for the onboarded tenants; the event time is the creation time."""

    def __init__(self, spec: LoadSpec, topics: dict[str, str]) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.topics = topics  # tenant -> bronze topic
        weights = [1 / (i + 1) ** spec.key_skew for i in range(spec.devices)]
        total = sum(weights)
        self.cum = list(_accumulate([w / total for w in weights]))
        self.seq = 0
        self.last: bytes = b""

    def _device(self) -> int:
        x = self.rng.random()
        lo, hi = 0, len(self.cum) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if self.cum[mid] < x:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def event(self, now_ms: int) -> tuple[str, bytes]:
        s, r = self.spec, self.rng
        self.seq += 1
        u = r.random()
        if u < s.duplicate_fraction and self.last:
            return self.topics["acme"], self.last
        u = r.random()
        if u < s.bad_fraction:
            return self.topics["acme"], b'{"tenant_id":"acme","event_type":"device_telemetry",'
        t = now_ms - (r.randrange(s.out_of_order_ms) if r.random() < s.out_of_order_share else 0)
        if u < s.bad_fraction + s.late_fraction:
            t = now_ms - 10_000 - r.randrange(60_000)
        elif u < s.bad_fraction + s.late_fraction + s.future_fraction:
            t = now_ms + 3 * 3_600_000
        d = self._device()
        if d % 4 == 3:
            tenant = "globex"
            body = (
                f'{{"tenant_id":"globex","event_type":"orders","schema_version":2,'
                f'"order_id":"o-{self.seq}-c{now_ms}","placed_at":"{_iso(t)}","customer_id":"c-{d}",'
                f'"amount_cents":{r.randrange(100, 90_000)},"currency":"EUR","channel":"web"}}'
            )
        else:
            tenant = "acme"
            body = (
                f'{{"tenant_id":"acme","event_type":"device_telemetry","schema_version":1,'
                f'"event_id":"e-{self.seq}-c{now_ms}","event_time":{t},"device_id":"dev-{d}",'
                f'"temperature_c":{round(40 + 30 * r.random() + (r.random() < 0.01) * 40, 1)},'
                f'"status":"{"degraded" if r.random() < 0.02 else "ok"}"}}'
            )
        self.last = body.encode()
        return self.topics[tenant], self.last

    def produce(
        self, bootstrap: str, n: int, rate: float | None = None, backdate_ms: int = 0
    ) -> float:
        """Send n events (at `rate` per second, or as fast as possible); return the seconds.

        backdate_ms: the events are created on a clock that runs from `backdate_ms` ago to now
        over the n events, instead of the wall clock. A pre-load sent in a second would otherwise
        all carry the same second, and event-time work (windows, CEP, the DataStream job's
        timers) could not run until later events moved the watermark past it.
        """
        from confluent_kafka import Producer

        p = Producer(
            {
                "bootstrap.servers": bootstrap,
                "linger.ms": 20,
                "batch.size": 1_000_000,
                "compression.type": "lz4",
                "log_level": 3,
            }
        )
        t0 = time.monotonic()
        start_ms = int(time.time() * 1000)
        for i in range(n):
            if rate:
                due = t0 + i / rate
                lag = due - time.monotonic()
                if lag > 0.002:
                    p.poll(0)
                    time.sleep(lag)
            now_ms = int(time.time() * 1000)
            if backdate_ms:
                now_ms = start_ms - backdate_ms + backdate_ms * i // n
            topic, value = self.event(now_ms)
            while True:
                try:
                    p.produce(topic, value)
                    break
                except BufferError:
                    p.poll(0.05)
            if i % 10_000 == 0:
                p.poll(0)
        p.flush(120)
        return time.monotonic() - t0


def _accumulate(xs: list[float]) -> list[float]:
    out, acc = [], 0.0
    for x in xs:
        acc += x
        out.append(acc)
    return out


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
