"""The benchmark's load generator: seeded, reproducible, and it sends what its spec says."""

from __future__ import annotations

import json
import re

from bench.load import Generator, LoadSpec

TOPICS = {"acme": "bronze_acme_events", "globex": "bronze_globex_events"}
NOW = 1_790_000_000_000


def events(n: int, spec: LoadSpec) -> list[tuple[str, bytes]]:
    g = Generator(spec, TOPICS)
    return [g.event(NOW + i) for i in range(n)]


def test_same_seed_same_events_other_seed_others() -> None:
    assert events(2_000, LoadSpec(seed=3)) == events(2_000, LoadSpec(seed=3))
    assert events(2_000, LoadSpec(seed=3)) != events(2_000, LoadSpec(seed=4))


def test_mix_follows_the_spec() -> None:
    spec = LoadSpec(seed=11)
    sent = events(40_000, spec)
    bad = dup = future = late = 0
    devices: dict[str, int] = {}
    prev = b""
    for i, (topic, value) in enumerate(sent):
        assert topic in TOPICS.values()
        if value == prev:  # a resend of the last well-formed event
            dup += 1
            continue
        try:
            doc = json.loads(value)
        except ValueError:
            bad += 1
            continue
        prev = value
        # The creation time travels in the event id, for end-to-end latency.
        eid = doc.get("event_id") or doc["order_id"]
        assert int(re.search(r"-c([0-9]{13})$", eid).group(1)) == NOW + i  # type: ignore[union-attr]
        assert topic == TOPICS[doc["tenant_id"]]
        if doc["event_type"] == "device_telemetry":
            devices[doc["device_id"]] = devices.get(doc["device_id"], 0) + 1
            lag = NOW + i - doc["event_time"]
            future += lag < -3_600_000
            late += lag >= 10_000
    n = len(sent)
    assert abs(bad / n - spec.bad_fraction) < 0.002
    assert abs(dup / n - spec.duplicate_fraction) < 0.004
    assert 0 < future / n < 3 * spec.future_fraction
    assert 0 < late / n < 3 * spec.late_fraction
    # Key skew: the hottest device far above the average one.
    assert max(devices.values()) > 20 * (sum(devices.values()) / len(devices))
