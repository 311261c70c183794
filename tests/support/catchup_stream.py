"""A seeded Bronze stream for the catch-up and chaos tests, in plain Python (its oracle:
tests/oracles/catchup.py).

Two tenants, three partitions each (acme: device telemetry and orders on one topic; globex:
orders, schema version 2), two hours of event time in the past, on-time disorder within half of
each type's bound, 1 % an hour late, a few late by seconds (they revise Gold), 2 % resent
duplicates (same bytes, same partition), 5 % bad records of eight kinds, records near and over
max_record_bytes. Each record's fate is known when it is made.

The oracle is written from the platform's stated semantics (README, "Event time"), not from
the SQL: per Bronze partition, in offset order, a record that names a known event type and has a
parseable event time no more than max_future_skew ahead moves that partition's watermark to
(event time - its type's bound); a Silver row is late when its event time is at or behind its
partition's watermark, itself included.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

from tests.support.timefmt import iso

BOUND_MS = {"device_telemetry": 5_000, "orders": 10_000}
MAX_RECORD_BYTES = 4096
HOUR = 3_600_000
PARTITIONS = 3
FLUSH_PREFIX = "flush-"


@dataclass
class Rec:
    topic_tenant: str
    partition: int
    value: bytes
    fate: str  # "silver", "duplicate", or the DLQ reason
    event_type: str | None = None
    clock_ms: int | None = None  # the record's clock (event time minus bound), if it has one
    row: dict[str, Any] = field(default_factory=dict)  # the Silver row's fields, if silver


def generate(seed: int, n: int, end_ms: int) -> list[Rec]:
    """n records spread over the six partitions, event times in [end - 2 h, end]."""
    rng = random.Random(seed)
    start = end_ms - 2 * HOUR
    out: list[Rec] = []
    per_part = n // (2 * PARTITIONS)
    step = (end_ms - start) / per_part
    temps: dict[str, float] = {}
    used: set[tuple[str, int]] = set()
    seq = 0
    for tenant in ("acme", "globex"):
        for p in range(PARTITIONS):
            clock = float(start)
            mine: list[Rec] = []
            for _ in range(per_part):
                clock += rng.uniform(0.5, 1.5) * step
                seq += 1
                if mine and rng.random() < 0.02:
                    # A producer retry: the same bytes again, a little later in the partition.
                    prev = rng.choice(mine[-20:])
                    if prev.fate in ("silver", "duplicate"):
                        mine.append(
                            Rec(tenant, p, prev.value, "duplicate", prev.event_type, prev.clock_ms)
                        )
                        continue
                et = "orders" if tenant == "globex" or rng.random() < 0.5 else "device_telemetry"
                bound = BOUND_MS[et]
                t = int(clock) - rng.randrange(bound // 2)
                r = rng.random()
                if r < 0.01:
                    t -= HOUR  # an hour late
                elif r < 0.015:
                    t -= rng.randint(bound + 1_000, 120_000)  # late, within allowed lateness
                mine.append(_record(rng, tenant, p, et, t, seq, temps, end_ms + 3 * HOUR, used))
            out.extend(mine)
    return out


def _record(
    rng: random.Random,
    tenant: str,
    p: int,
    et: str,
    t: int,
    seq: int,
    temps: dict[str, float],
    now_ms: int,
    used: set[tuple[str, int]],
) -> Rec:
    bad = rng.random() < 0.05
    kind = rng.randrange(8) if bad else -1
    if et == "device_telemetry":
        dev = f"dev-{rng.randrange(40)}"
        # No two readings of a device at one millisecond: MATCH_RECOGNIZE orders such a tie by
        # arrival, which is read order, outside what the platform promises.
        while (dev, t) in used:
            t -= 1
        used.add((dev, t))
        temps[dev] = max(-20.0, min(140.0, temps.get(dev, 40.0) + rng.uniform(-8, 8)))
        if rng.random() < 0.03:
            temps[dev] = min(140.0, temps[dev] + 30)
        ev: dict[str, Any] = {
            "tenant_id": tenant,
            "event_type": et,
            "schema_version": 1,
            "event_id": f"t-{seq}",
            "event_time": t,
            "device_id": dev,
            "temperature_c": round(temps[dev], 2),
            "status": rng.choices(["ok", "degraded", "failed"], [0.85, 0.1, 0.05])[0],
        }
        time_key = "event_time"
    else:
        ev = {
            "tenant_id": tenant,
            "event_type": et,
            "schema_version": 2 if tenant == "globex" else 1,
            "order_id": f"o-{seq}",
            "placed_at": iso(t),
            "customer_id": f"c-{rng.randrange(300)}",
            "amount_cents": rng.randrange(100, 50_000),
            "currency": rng.choice(["EUR", "USD", "GBP"]),
        }
        if tenant == "globex":
            ev["channel"] = rng.choice(["web", "store", "app"])
        time_key = "placed_at"
    fate = "silver"
    clock: int | None = t - BOUND_MS[et]
    text: str | None = None
    if kind == 0:
        text = json.dumps(ev)[:-7]  # cut short
        fate, clock = "malformed_json", None
    elif kind == 1:
        missing = "device_id" if et == "device_telemetry" else "customer_id"
        del ev[missing]
        fate = f"missing_field:{missing}"
    elif kind == 2:
        field_ = "temperature_c" if et == "device_telemetry" else "amount_cents"
        ev[field_] = "12"
        fate = f"wrong_type:{field_}"
    elif kind == 3:
        if et == "device_telemetry":
            ev["temperature_c"] = 400.0
            fate = "out_of_range:temperature_c"
        else:
            ev["amount_cents"] = -5
            fate = "out_of_range:amount_cents"
    elif kind == 4:
        ev["tenant_id"] = "initech"
        fate = "unknown_tenant"
    elif kind == 5:
        future = now_ms + 3 * HOUR
        ev[time_key] = future if et == "device_telemetry" else iso(future)
        fate, clock = "event_time_in_future", None
    elif kind == 6:
        if et == "device_telemetry":
            ev["status"] = "melting"
            fate = "invalid_enum:status"
        else:
            ev["currency"] = "XYZ"
            fate = "invalid_enum:currency"
    elif kind == 7:
        # Over the size limit: never parsed, so no clock either.
        ev["pad"] = "x" * (MAX_RECORD_BYTES + 100)
        fate, clock = "oversized_record", None
    elif rng.random() < 0.003:
        # Near the limit, and valid (an undeclared field is not carried into Silver).
        ev["pad"] = "y" * (MAX_RECORD_BYTES - len(json.dumps(ev)) - 20)
    value = (text if text is not None else json.dumps(ev, separators=(",", ":"))).encode()
    row: dict[str, Any] = {}
    if fate == "silver":
        row = {
            "tenant_id": tenant,
            "event_id": ev.get("event_id") or ev["order_id"],
            "t": t,
            **{k: v for k, v in ev.items() if k not in ("event_time", "placed_at")},
        }
    return Rec(tenant, p, value, fate, et, clock, row)


def flush(end_ms: int, offset_ms: int, seq: int) -> list[Rec]:
    """One valid record per partition far ahead of the data (still in the past), so that the
    watermark passes every window and rule of the data: telemetry on acme, orders on globex."""
    out = []
    t = end_ms + offset_ms
    for tenant in ("acme", "globex"):
        for p in range(PARTITIONS):
            seq += 1
            if tenant == "acme":
                ev: dict[str, Any] = {
                    "tenant_id": tenant,
                    "event_type": "device_telemetry",
                    "schema_version": 1,
                    "event_id": f"{FLUSH_PREFIX}{seq}",
                    "event_time": t,
                    "device_id": "dev-999999",
                    "temperature_c": 20.0,
                }
                et = "device_telemetry"
            else:
                ev = {
                    "tenant_id": tenant,
                    "event_type": "orders",
                    "schema_version": 2,
                    "order_id": f"{FLUSH_PREFIX}{seq}",
                    "placed_at": iso(t),
                    "customer_id": f"{FLUSH_PREFIX}customer",
                    "amount_cents": 1,
                    "currency": "EUR",
                    "channel": "web",
                }
                et = "orders"
            out.append(
                Rec(
                    tenant,
                    p,
                    json.dumps(ev, separators=(",", ":")).encode(),
                    "silver",
                    et,
                    t - BOUND_MS[et],
                    {"tenant_id": tenant, "event_id": f"{FLUSH_PREFIX}{seq}", "t": t, **ev},
                )
            )
    return out
