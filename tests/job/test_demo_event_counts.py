"""The windowed-count job on the local executor against the real broker.

Expected counts come from an oracle written here, independently of the job's SQL: plain Python
over the same seeded events. The output is read with read_committed and must match exactly, at
parallelism 1 and 2, and must have been written in Kafka transactions.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from connectors import kafka
from jobs import catalog
from streamlake.config import settings
from streamlake.runtime import flinkenv

WINDOW_MS = 10_000
BASE = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def events_with_disorder(seed: int, n: int = 400) -> list[dict[str, Any]]:
    """Events over 40 s of event time in 4 keys, each arriving up to 2.5 s out of order."""
    rng = random.Random(seed)
    evs = []
    for i in range(n):
        ts = BASE + rng.randrange(40_000)
        evs.append(
            (
                ts + rng.randrange(2_500),
                i,
                {
                    "event_id": str(uuid.uuid4()),
                    "event_key": f"k{rng.randrange(4)}",
                    "event_time_ms": ts,
                },
            )
        )
    return [e for _a, _i, e in sorted(evs, key=lambda x: (x[0], x[1]))]


def oracle(events: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    from datetime import UTC, datetime

    out: Counter[tuple[str, str]] = Counter()
    for e in events:
        start = e["event_time_ms"] // WINDOW_MS * WINDOW_MS
        iso = datetime.fromtimestamp(start / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
        out[(iso, e["event_key"])] += 1
    return out


def committed_offsets_span(bootstrap: str, topic: str) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"span-{uuid.uuid4().hex}"})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts)
    finally:
        c.close()


@pytest.mark.parametrize("parallelism", [1, 2])
def test_tumbling_counts_match_oracle_exactly_once(
    parallelism: int,
    bootstrap: str,
    topic_factory: Callable[..., str],
    conf_dir: Callable[..., Path],
    uid: str,
) -> None:
    src, dst = topic_factory("bronze_demo_events"), topic_factory("gold_demo_event_counts_10s")
    # Bounded, every partition finishes at its end offset, so no partition needs idleness to let
    # the watermark on; an idle timeout could only take a partition whose first fetch came late
    # for idle, and its first events would then be dropped as late (seen once in CI: one event
    # of the first window missing). Processing-time idleness is outside what is checked here.
    conf = conf_dir(input_topic=src, output_topic=dst, idle_timeout_s="3600")
    events = events_with_disorder(seed=parallelism)
    # A duplicate delivery upstream is counted twice by this raw-count job: the oracle says so too.
    events.append(dict(events[5]))
    kafka.produce_json(bootstrap, src, events, key="event_key")

    platform = settings.load_platform(conf / "platform.yaml")
    job = catalog.get("demo_event_counts", conf)
    t_env = flinkenv.table_env(platform, name=f"test-{uid}", local=True, parallelism=parallelism)
    job.run(t_env, platform, bounded=True).wait()

    rows = kafka.read_committed_json(bootstrap, dst, group_id=f"reader-{uid}")
    got: Counter[tuple[str, str]] = Counter()
    for r in rows:
        key = (r["window_start"][:19], r["event_key"])
        assert key not in got, f"window emitted twice: {key}"
        got[key] = r["count_events"]
    assert got == oracle(events)
    # Written in transactions: commit markers take offsets beyond the data records.
    assert committed_offsets_span(bootstrap, dst) > len(rows)
