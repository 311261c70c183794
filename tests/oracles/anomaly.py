"""What the device_anomaly job must emit, computed independently of it (plain Python, no Flink and
no import of jobs.device_anomaly): the golden side of tests/job/test_device_anomaly.py.

The rules, as a user reads them:
- Readings of one (tenant, device) are taken in event-time order, ties by event id; a reading that
  reached the job behind the watermark is not used (the test says which ones those are).
- z-score: a reading whose distance from the mean of the device's earlier readings is more than k
  sample standard deviations of them, once there are at least min_samples earlier readings.
- silence: a gap of more than `silence_ms` between two consecutive readings alerts once, at the
  earlier reading; the end of a bounded input is the end of event time, so every device's last
  reading is followed by a silence alert too.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class Reading:
    tenant_id: str
    device_id: str
    event_id: str
    at_ms: int
    value: float


def flink_ltz(ms: int) -> str:
    """TIMESTAMP_LTZ(3) as Flink's json format (ISO-8601) writes it: 2026-01-01T00:00:00.12Z."""
    dt = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".") + "Z"


def expected_alerts(
    readings: list[Reading],
    *,
    event_type: str,
    zscore_rule_id: str,
    k: float,
    min_samples: int,
    silence_rule_id: str,
    silence_ms: int,
) -> list[dict[str, Any]]:
    by_device: dict[tuple[str, str], list[Reading]] = defaultdict(list)
    for r in readings:
        by_device[(r.tenant_id, r.device_id)].append(r)
    out: list[dict[str, Any]] = []

    def alert(r: Reading, rule_id: str, kind: str, measures: dict[str, float]) -> None:
        out.append(
            {
                "tenant_id": r.tenant_id,
                "rule_id": rule_id,
                "alert_key": r.device_id,
                "rule_kind": kind,
                "event_type": event_type,
                "first_event_at": flink_ltz(r.at_ms),
                "last_event_at": flink_ltz(r.at_ms),
                "measures": measures,
            }
        )

    for series in by_device.values():
        series.sort(key=lambda r: (r.at_ms, r.event_id, r.value))
        for i, r in enumerate(series):
            before = [p.value for p in series[:i]]
            if len(before) >= min_samples:
                mean, std = statistics.fmean(before), statistics.stdev(before)
                if std > 0 and abs(r.value - mean) / std > k:
                    z = (r.value - mean) / std
                    alert(
                        r,
                        zscore_rule_id,
                        "zscore",
                        {"value": r.value, "mean": mean, "std": std, "z": z, "count": len(before)},
                    )
            following = series[i + 1] if i + 1 < len(series) else None
            if following is None or following.at_ms - r.at_ms > silence_ms:
                alert(r, silence_rule_id, "silence", {"silence_ms": float(silence_ms)})
    return out
