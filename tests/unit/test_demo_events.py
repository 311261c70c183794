from __future__ import annotations

from jobs import demo


def test_sample_events_are_seeded_and_disorder_is_bounded() -> None:
    a, b = demo.sample_events(seed=3), demo.sample_events(seed=3)
    assert a == b and len(a) == 600
    worst = 0
    top = a[0]["event_time_ms"]
    for e in a:
        top = max(top, e["event_time_ms"])
        worst = max(worst, top - e["event_time_ms"])
    assert 0 < worst < 3000  # out of order, but inside the 5 s watermark bound
