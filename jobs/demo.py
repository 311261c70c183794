"""`make demo`: the pipeline end to end on the local stack, checked against what was produced."""

from __future__ import annotations

import itertools
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from connectors import kafka
from jobs import catalog, stack, submit
from jobs.settings import PlatformSettings

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


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _norm_ts(v: str) -> str:
    return v.replace(" ", "T")[:19]


def run(platform: PlatformSettings) -> int:
    t0 = time.monotonic()
    for line in stack.up(platform):
        print(line)
    job = catalog.get("demo_event_counts")
    src, dst = job.source_topics()[0], job.sink_topics()[0]
    bootstrap = platform.kafka.bootstrap
    # Safe to run twice: the demo's topics start empty each time.
    kafka.delete_topics(bootstrap, [src, dst])
    kafka.create_topics(bootstrap, [src, dst], partitions=platform.kafka.default_partitions)
    events = sample_events()
    kafka.produce_json(bootstrap, src, events, key="event_key")
    late_order = sum(
        1 for a, b in itertools.pairwise(events) if b["event_time_ms"] < a["event_time_ms"]
    )
    print(f"produced {len(events)} events to {src} ({late_order} arrive after a later event)")
    print(f"sample event: {events[0]}")

    job_id = submit.submit(job.name, platform, bounded=True)
    print(
        f"submitted {job.name} as Flink job {job_id}: {platform.flink.rest_url}/#/job/running/{job_id}/overview"
    )
    state = submit.wait_job(platform, job_id, {"FINISHED"}, timeout_s=300)
    print(f"job {job_id} {state}")

    rows = kafka.read_committed_json(bootstrap, dst, group_id=f"demo-reader-{uuid.uuid4().hex[:8]}")
    got = Counter(
        {(_norm_ts(r["window_start"]), r["event_key"]): int(r["count_events"]) for r in rows}
    )
    window_ms = int(job.params["window_size_s"]) * 1000
    want = expected_counts(events, window_ms)
    print(f"\n{dst} (read_committed), {len(rows)} rows:")
    print(f"{'window_start (UTC)':20} {'event_key':10} {'count':>6} {'expected':>9}")
    for ws, key in sorted(set(got) | set(want)):
        mark = "" if got[(ws, key)] == want[(ws, key)] else "  <-- MISMATCH"
        print(f"{ws:20} {key:10} {got[(ws, key)]:6d} {want[(ws, key)]:9d}{mark}")
    ok = got == want and len(rows) == len(want)
    print(
        f"\n{'OK' if ok else 'FAILED'}: {sum(got.values())} events counted in {len(rows)} windows, "
        f"{sum(want.values())} expected; {time.monotonic() - t0:.1f}s in all"
    )
    print(f"Flink UI: {platform.flink.rest_url}   SQL: make sql   stop: make down")
    return 0 if ok else 1
