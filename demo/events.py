"""The demo's seeded input: windowed-count events and raw Bronze records for two tenants (with bad
records of seven kinds and producer-retry duplicates), what each must become, and the partition
each goes to."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

BASE_MS = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)


def sample_events(
    seed: int = 7, keys: int = 5, seconds: int = 60, per_second: int = 10, disorder_ms: int = 3000
) -> list[dict[str, Any]]:
    """Seeded events in arrival order: event times spread over `seconds`, arriving out of order.

    Arrival order is event time plus a random delay below `disorder_ms`, so no event arrives
    more than `disorder_ms` behind one with a later event time (inside the job's watermark bound).
    """
    rng = random.Random(seed)  # noqa: S311 (seeded sample data)
    events = []
    for i in range(seconds * per_second):
        ts = BASE_MS + rng.randrange(seconds * 1000)
        events.append(
            {
                "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "event_key": f"sensor-{rng.randrange(keys) + 1}",
                "event_time_ms": ts,
                "value": round(rng.uniform(0, 100), 2),
                "_arrival": ts + rng.randrange(disorder_ms),
                "_i": i,
            }
        )
    events.sort(key=lambda e: (e["_arrival"], e["_i"]))
    return [{k: v for k, v in e.items() if not k.startswith("_")} for e in events]


def expected_counts(events: Iterable[dict[str, Any]], window_ms: int) -> Counter[tuple[str, str]]:
    """(window start ISO, key) -> count, computed directly from the events."""
    out: Counter[tuple[str, str]] = Counter()
    for e in events:
        start = e["event_time_ms"] - e["event_time_ms"] % window_ms
        out[(_iso(start), e["event_key"])] += 1
    return out


def _iso(ms: int, millis: bool = False) -> str:
    """UTC ISO-8601: seconds (as Flink prints window bounds) or milliseconds with a Z."""
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return (
        dt.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        if millis
        else dt.strftime("%Y-%m-%dT%H:%M:%S")
    )


def norm_ts(v: str) -> str:
    return v.replace(" ", "T")[:19]


BAD_KINDS: tuple[tuple[str, Callable[[dict[str, Any]], bytes]], ...] = (
    ("malformed_json", lambda e: json.dumps(e).encode()[:-7]),
    (
        "missing_field",
        lambda e: _enc({k: v for k, v in e.items() if k not in ("device_id", "currency")}),
    ),
    ("out_of_range", lambda e: _enc({**e, "humidity_pct": 250, "amount_cents": -5})),
    (
        "tenant_topic_mismatch",
        lambda e: _enc({**e, "tenant_id": "globex" if e["tenant_id"] == "acme" else "acme"}),
    ),
    ("unknown_event_type", lambda e: _enc({**e, "event_type": "clicks"})),
    (
        "event_time_in_future",
        lambda e: _enc(
            {
                **e,
                "event_time": e.get("event_time", 0) + 86_400_000 * 30,
                "placed_at": "2099-01-01T00:00:00Z",
            }
        ),
    ),
    ("invalid_tenant_id", lambda e: _enc({**e, "tenant_id": "../../etc"})),
)


def _enc(e: dict[str, Any]) -> bytes:
    return json.dumps(e, separators=(",", ":")).encode()


def silver_events(seed: int = 11, n: int = 3000, now_ms: int | None = None) -> dict[str, Any]:
    """Seeded raw events for two tenants and two event types, with bad records and duplicates.

    Returns the records per tenant topic, what the Silver job must make of them, and per tenant
    topic each record's fate ("silver", "duplicate" or its DLQ reason) with the event it was made
    from (what an oracle of the later layers needs).
    """
    rng = random.Random(seed)  # noqa: S311 (seeded sample data)
    now_ms = now_ms or int(time.time() * 1000)
    out: dict[str, list[bytes]] = {"acme": [], "globex": []}
    expect: dict[str, Counter[str]] = {"acme": Counter(), "globex": Counter()}
    fates: dict[str, list[tuple[str, dict[str, Any]]]] = {"acme": [], "globex": []}
    for i in range(n):
        tenant = "acme" if rng.random() < 0.7 else "globex"
        if tenant == "acme" and rng.random() < 0.6:
            e: dict[str, Any] = {
                "tenant_id": tenant,
                "event_type": "device_telemetry",
                "schema_version": 1,
                "event_id": f"t-{i}",
                "event_time": now_ms - rng.randrange(60_000),
                "device_id": f"dev-{rng.randrange(50)}",
                "temperature_c": round(rng.uniform(-10, 45), 1),
                "humidity_pct": rng.randrange(101),
                "battery_ok": rng.random() > 0.1,
                "status": rng.choice(["ok", "ok", "degraded"]),
            }
        else:
            e = {
                "tenant_id": tenant,
                "event_type": "orders",
                "schema_version": 2,
                "order_id": f"o-{i}",
                "placed_at": _iso(now_ms - rng.randrange(60_000), millis=True),
                "customer_id": f"cust-{rng.randrange(500)}",
                "amount_cents": rng.randrange(100, 50_000),
                "currency": rng.choice(["EUR", "USD", "GBP"]),
                "channel": rng.choice(["web", "store", "app"]),
                "customer_email": f"c{i}@example.com",
            }
        r = rng.random()
        if r < 0.06:
            reason, make = rng.choice(BAD_KINDS)
            out[tenant].append(make(e))
            fates[tenant].append((reason, e))
            expect[tenant]["dlq"] += 1
            expect[tenant][f"dlq:{reason}"] += 1
            continue
        out[tenant].append(_enc(e))
        fates[tenant].append(("silver", e))
        expect[tenant]["silver"] += 1
        if r < 0.09:  # a producer retry: the same event again
            out[tenant].append(_enc(e))
            fates[tenant].append(("duplicate", e))
            expect[tenant]["duplicates"] += 1
    for tenant in out:
        expect[tenant]["read"] = len(out[tenant])
    return {"records": out, "expect": expect, "fates": fates, "now_ms": now_ms}


def placement(
    fates: dict[str, list[tuple[str, dict[str, Any]]]], partitions: int
) -> dict[str, list[int]]:
    """The Bronze partition of each record of each tenant's topic: events round robin by position
    (not librdkafka's random choice for a null key), a producer retry on its original's partition
    as a real retry is. Each partition then holds the same records in the same order on every
    run, and since lateness is decided per Bronze partition, so are the late rows; and a retry
    meets the watermark its original met, whichever copy the Silver job keeps."""
    out: dict[str, list[int]] = {}
    for tenant, records in fates.items():
        parts: list[int] = []
        events = 0
        for fate, _e in records:
            if fate == "duplicate":
                parts.append(parts[-1])
            else:
                parts.append(events % partitions)
                events += 1
        out[tenant] = parts
    return out
