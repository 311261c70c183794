from __future__ import annotations

from collections import Counter
from typing import Any

from demo import events as demo_events
from demo import run as demo
from streamlake.config import paths
from tests.oracles import demo as demo_oracle
from tests.support.timefmt import iso


def test_sample_events_are_seeded_and_disorder_is_bounded() -> None:
    a, b = demo_events.sample_events(seed=3), demo_events.sample_events(seed=3)
    assert a == b and len(a) == 600
    worst = 0
    top = a[0]["event_time_ms"]
    for e in a:
        top = max(top, e["event_time_ms"])
        worst = max(worst, top - e["event_time_ms"])
    assert 0 < worst < 3000  # out of order, but inside the 5 s watermark bound


def test_a_retry_goes_to_its_originals_partition_and_events_round_robin() -> None:
    data = demo_events.silver_events(seed=11, n=600, now_ms=1_795_000_000_000)
    place = demo_events.placement(data["fates"], 3)
    for tenant, fates in data["fates"].items():
        parts = place[tenant]
        assert len(parts) == len(fates) == len(data["records"][tenant])
        events = [p for (fate, _e), p in zip(fates, parts, strict=True) if fate != "duplicate"]
        assert events == [i % 3 for i in range(len(events))]
        for i, (fate, _e) in enumerate(fates):
            if fate == "duplicate":
                assert fates[i - 1][0] == "silver" and parts[i] == parts[i - 1]


def demo_expectations() -> tuple[dict[str, Any], dict[str, Any], list[Any]]:
    data = demo_events.silver_events(now_ms=1_795_000_000_000)
    rows = demo_oracle.silver_rows(
        data["fates"], demo_events.placement(data["fates"], 3), paths.CONF_DIR, "k"
    )
    return data, rows, demo_oracle.alerts(rows, paths.CONF_DIR)


def test_the_demos_gold_oracle_starts_from_the_events_sent() -> None:
    """The oracle's Silver rows are the generator's (so its Gold is computed from what was
    sent), and the paths the demo checks are exercised: late rows of both types, every
    aggregate, revised windows, alerts of both jobs."""
    data, rows, alerts = demo_expectations()
    silver = Counter(r["tenant_id"] for rs in rows.values() for r in rs)
    assert silver == {t: e["silver"] for t, e in data["expect"].items()}
    late = demo_oracle.late(rows)
    assert all(len(ids) > 100 for ids in late.values())
    gold = demo_oracle.gold(rows, paths.CONF_DIR)
    assert gold.keys() == {f"gold_{f.stem}" for f in (paths.CONF_DIR / "gold").glob("*.yaml")}
    assert all(gold.values())
    assert any(w["late_rows"] for w in gold["gold_device_temperature_1m"].values())
    # The demo's readings fire these (a SQL spike and absence rule, the DataStream job's silence).
    assert {"device_temperature_spike", "device_no_readings", "device_silent"} <= {
        a[0] for a in alerts
    }


def test_the_demos_gold_check_fails_on_a_wrong_window() -> None:
    _data, rows, _alerts = demo_expectations()
    name = "device_temperature_1m"
    agg = demo_oracle.aggregates(paths.CONF_DIR)[name][1]
    want = demo_oracle.gold(rows, paths.CONF_DIR)[f"gold_{name}"]
    # The windows as the Gold topic carries them (JSON, window bounds as UTC text).
    topic = [
        {
            "tenant_id": k[0],
            "device_id": k[1],
            "window_start": iso(k[2]),
            "window_end": iso(k[3]),
            **w,
        }
        for k, w in want.items()
    ]
    assert demo._gold_mismatch(demo._windows(topic, agg), want) == ""
    wrong = [dict(r) for r in topic]
    wrong[0]["max_temperature_c"] += 0.5
    assert "max_temperature_c" in demo._gold_mismatch(demo._windows(wrong, agg), want)
    assert "missing" in demo._gold_mismatch(demo._windows(topic[1:], agg), want)
