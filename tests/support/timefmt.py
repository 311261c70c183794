"""Times as the tests write and read them: epoch milliseconds, ISO-8601 text, config durations."""

from __future__ import annotations

import datetime as dt


def duration_ms(d: str) -> int:
    """A config duration ("500ms", "10s", "5min", "1h", "1d") in milliseconds."""
    for unit, f in (("ms", 1), ("min", 60_000), ("s", 1000), ("h", 3_600_000), ("d", 86_400_000)):
        if d.endswith(unit):
            return int(d[: -len(unit)]) * f
    raise ValueError(d)


def iso(ms: int) -> str:
    """Epoch ms as ISO-8601 UTC text with milliseconds and a Z, as the producers send it."""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def from_iso(s: str) -> int:
    """Epoch ms of ISO-8601 text (a trailing Z or none: UTC)."""
    s = s.rstrip("Z")
    d = dt.datetime.fromisoformat(s).replace(tzinfo=dt.UTC)
    return int(d.timestamp() * 1000)
