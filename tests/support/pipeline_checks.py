"""What the whole pipeline must produce from the seeded catch-up stream
(tests/support/catchup_stream.py, its oracle tests/oracles/catchup.py), compared the same way
whether the rows were read from the Kafka topics or from the Delta tables: Silver ids, late ids,
the DLQ by reason, duplicates and conservation from the audit counts, every Gold window that has
surely fired, and every alert that has surely fired.

Rows are plain dicts; timestamps may be ISO strings (Kafka JSON) or datetimes (Delta).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from connectors import kafka
from tests.conftest import SilverConf, make_silver_conf
from tests.oracles import anomaly, catchup
from tests.oracles import gold as oracle
from tests.support import catchup_stream as cs
from tests.support.timefmt import duration_ms as _ms
from tests.support.timefmt import from_iso

Row = dict[str, Any]
FLUSH_1_MS, FLUSH_2_MS = 40 * 60_000, 80 * 60_000
FLUSH_2_ROUNDS = 10  # of one record per Bronze partition each
# Windows ending by then have surely fired: the Gold watermark has passed the first flush records.
CUTOFF_AFTER_END_MS = FLUSH_1_MS - max(cs.BOUND_MS.values())
# Alerts whose last event is this far before the cut-off have surely fired (the longest rule).
ALERT_MARGIN_MS = 10 * 60_000
RULES = {
    "device_overheating",
    "device_temperature_spike",
    "device_degraded_then_failed",
    "device_no_readings",
}


def seeded_stream(seed: int, n: int) -> dict[str, Any]:
    """The catch-up stream ending three hours ago, its flush records (sent after the data) and
    what the oracle expects of both."""
    end = (int(time.time() * 1000) - 3 * cs.HOUR) // 60_000 * 60_000
    recs = cs.generate(seed, n, end)
    # The second flush has rows enough that every Silver partition gets one (rows are spread
    # by key), so every Gold partition's watermark passes the first flush without idleness.
    flush = cs.flush(end, FLUSH_1_MS, 10**7) + [
        r for i in range(FLUSH_2_ROUNDS) for r in cs.flush(end, FLUSH_2_MS + i, 2 * 10**7 + 10 * i)
    ]
    return {"end": end, "recs": recs, "flush": flush, "want": catchup.expect(recs + flush)}


def interleaved(recs: list[cs.Rec]) -> list[cs.Rec]:
    """Round robin over the partitions, each in its own order: roughly event-time order."""
    by_part: dict[tuple[str, int], list[cs.Rec]] = {}
    for r in recs:
        by_part.setdefault((r.topic_tenant, r.partition), []).append(r)
    lists = list(by_part.values())
    out: list[cs.Rec] = []
    i = 0
    while any(i < len(lst) for lst in lists):
        out.extend(lst[i] for lst in lists if i < len(lst))
        i += 1
    return out


def send(sc: SilverConf, bootstrap: str, recs: list[cs.Rec]) -> None:
    for tenant in ("acme", "globex"):
        mine = [r for r in recs if r.topic_tenant == tenant]
        if mine:
            kafka.produce(
                bootstrap,
                sc.bronze(tenant),
                [(None, r.value) for r in mine],
                partition_of={i: r.partition for i, r in enumerate(mine)},
            )


def audit_read(bootstrap: str, sc: SilverConf) -> int:
    rows = kafka.read_committed_latest_json(bootstrap, sc.audit, f"r-{sc.uid}-{time.monotonic()}")
    return sum(r["count_records"] for r in rows if r["metric"] == "read")


def private_conf(tmp_path: Path, uid: str) -> SilverConf:
    """conf/ with the catch-up stream's record limit and every topic private to the test."""
    sc = make_silver_conf(tmp_path, uid)
    sc.edit("silver.yaml", max_record_bytes=cs.MAX_RECORD_BYTES)
    for f in sorted((sc.dir / "gold").glob("*.yaml")):
        sc.edit(f"gold/{f.name}", topic=sc.topic(f"gold_{f.stem}"))
    sc.edit(
        "gold.yaml",
        alert_topic=sc.topic("alert_events"),
        late_topics={et: sc.topic(f"late_{et}") for et in cs.BOUND_MS},
    )
    sc.edit("streams/device_anomaly.yaml", output_topic=sc.topic("alert_events"))
    return sc


def aggregates(conf: Path) -> dict[str, tuple[str, oracle.Aggregate]]:
    """Each Gold aggregate of the config, as the oracle models it: name -> (event type, model)."""
    out = {}
    for f in sorted((conf / "gold").glob("*.yaml")):
        a = yaml.safe_load(f.read_text())
        w = {k: _ms(v) for k, v in a["window"].items() if k != "kind"}
        lateness = a.get("allowed_lateness")
        out[a["name"]] = (
            a["event_type"],
            oracle.Aggregate(
                kind=a["window"]["kind"],
                window=w,
                group_by=a["group_by"],
                measures={
                    n: (m["fn"], m.get("field"), m.get("p")) for n, m in a["measures"].items()
                },
                allowed_lateness_ms=_ms(lateness) if lateness else None,
            ),
        )
    return out


def ms(v: Any) -> int:
    """Epoch ms of a timestamp as Kafka JSON (ISO text) or Delta (datetime, naive = UTC) has it."""
    if isinstance(v, str):
        return from_iso(v)
    assert isinstance(v, dt.datetime), v
    return int((v if v.tzinfo else v.replace(tzinfo=dt.UTC)).timestamp() * 1000)


def ids(rows: Iterable[Row]) -> set[tuple[str, str]]:
    """(tenant, event id) of each row, the flush records left out."""
    return {
        (r["tenant_id"], r["event_id"])
        for r in rows
        if not r["event_id"].startswith(cs.FLUSH_PREFIX)
    }


def no_flush(idents: set[tuple[str, str]]) -> set[tuple[str, str]]:
    return {i for i in idents if not i[1].startswith(cs.FLUSH_PREFIX)}


def check_silver(
    want: catchup.Expected, silver: dict[str, list[Row]], dlq: list[Row], audit: list[Row]
) -> None:
    """Silver rows once each, the DLQ by reason, duplicates and conservation per tenant."""
    for et in cs.BOUND_MS:
        assert ids(silver[et]) == no_flush(want.silver[et]), et
        assert len(silver[et]) == len(want.silver[et]), f"{et}: a Silver row written twice"
    assert Counter((r["tenant_id"], r["reason_codes"][0]) for r in dlq) == want.dlq
    # Every kind of bad record is in the stream, so the comparison above is not vacuous.
    assert len({reason for _t, reason in want.dlq}) >= 12
    totals: Counter[tuple[str, str]] = Counter()
    for r in audit:
        totals[(r["tenant_id"], r["metric"])] += r["count_records"]
    for tenant in ("acme", "globex"):
        assert totals[(tenant, "valid")] - totals[(tenant, "silver")] == want.duplicates[tenant]
        silver_n = sum(1 for rows in silver.values() for r in rows if r["tenant_id"] == tenant)
        dlq_n = sum(1 for r in dlq if r["tenant_id"] == tenant)
        # Conservation: every record read is in Silver, the DLQ or counted a duplicate.
        assert totals[(tenant, "read")] == silver_n + dlq_n + want.duplicates[tenant], tenant


def read_counts(audit: list[Row]) -> Counter[str]:
    out: Counter[str] = Counter()
    for r in audit:
        if r["metric"] == "read":
            out[r["tenant_id"]] += r["count_records"]
    return out


def gold_expected(conf: Path, stream: dict[str, Any]) -> dict[str, dict[tuple[Any, ...], Row]]:
    """Per aggregate, every window that has surely fired, as the oracle computes it."""
    want: catchup.Expected = stream["want"]
    cutoff = stream["end"] + CUTOFF_AFTER_END_MS
    key = os.environ["STREAMLAKE_PII_HASH_KEY"]
    out = {}
    for name, (et, agg) in aggregates(conf).items():
        rows = [
            catchup.pii_hashed(r, key)
            for r in want.rows[et]
            if not r["event_id"].startswith(cs.FLUSH_PREFIX)
        ]
        out[name] = {
            k: rounded(row) for k, row in oracle.gold(rows, 0, agg).items() if k[-1] <= cutoff
        }
    return out


def rounded(row: Row) -> Row:
    return {m: round(v, 6) if isinstance(v, float) else v for m, v in row.items()}


def gold_got(
    rows: Iterable[Row], agg: oracle.Aggregate, cutoff_ms: int
) -> dict[tuple[Any, ...], Row]:
    """Final Gold rows (the last per window: read an upsert topic in order, or a MERGEd table)
    keyed like the oracle's, the windows that have surely fired only."""
    out = {}
    for r in rows:
        k = (
            r["tenant_id"],
            *(r[g] for g in agg.group_by),
            ms(r["window_start"]),
            ms(r["window_end"]),
        )
        out[k] = rounded({m: r[m] for m in [*agg.measures, "late_rows"]})
    return {k: v for k, v in out.items() if k[-1] <= cutoff_ms}


def alerts_expected(stream: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Every alert of the SQL rules whose last event is surely past the Gold watermark."""
    want: catchup.Expected = stream["want"]
    cutoff = stream["end"] + CUTOFF_AFTER_END_MS - ALERT_MARGIN_MS
    on_time = [
        r
        for r in want.rows["device_telemetry"]
        if not r["_late"] and not r["event_id"].startswith(cs.FLUSH_PREFIX)
    ]
    out = sorted(
        [
            ("device_overheating", *a)
            for a in oracle.threshold(on_time, "device_id", ("temperature_c", ">", 90), 3, 120_000)
        ]
        + [
            ("device_temperature_spike", *a)
            for a in oracle.spike(on_time, "device_id", "temperature_c", 25, 60_000)
        ]
        + [
            ("device_degraded_then_failed", *a)
            for a in oracle.sequence(
                on_time,
                "device_id",
                [("status", "=", "degraded"), ("status", "=", "failed")],
                600_000,
            )
        ]
        + [("device_no_readings", *a) for a in oracle.absence(on_time, "device_id", 300_000)]
    )
    out = [a for a in out if a[-1] <= cutoff]
    # Every rule fires in the stream, so the comparison is not vacuous.
    assert {a[0] for a in out} == RULES
    return out


def alerts_got(rows: Iterable[Row], stream: dict[str, Any]) -> list[tuple[Any, ...]]:
    cutoff = stream["end"] + CUTOFF_AFTER_END_MS - ALERT_MARGIN_MS
    got = [
        (
            a["rule_id"],
            a["tenant_id"],
            a["alert_key"],
            ms(a["first_event_at"]),
            ms(a["last_event_at"]),
        )
        for a in rows
        if a["rule_id"] in RULES and a["alert_key"] != "dev-999999"
    ]
    return sorted(a for a in got if a[-1] <= cutoff)


def anomaly_expected(conf: Path, stream: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The DataStream job's alerts (z-score and silence) that have surely fired: its oracle over
    the on-time readings (a reading late by its Bronze partition is not applied)."""
    spec = yaml.safe_load((conf / "streams" / "device_anomaly.yaml").read_text())
    want: catchup.Expected = stream["want"]
    readings = [
        anomaly.Reading(r["tenant_id"], r["device_id"], r["event_id"], r["t"], r["temperature_c"])
        for r in want.rows["device_telemetry"]
        if not r["_late"]
    ]
    alerts = anomaly.expected_alerts(
        readings,
        event_type="device_telemetry",
        zscore_rule_id=spec["zscore"]["rule_id"],
        k=spec["zscore"]["k"],
        min_samples=spec["zscore"]["min_samples"],
        silence_rule_id=spec["silence"]["rule_id"],
        silence_ms=_ms(spec["silence"]["after"]),
    )
    out = anomaly_got(alerts, stream, {spec["zscore"]["rule_id"], spec["silence"]["rule_id"]})
    # Both rules fire in the stream, so the comparison is not vacuous.
    assert {a[0] for a in out} == {spec["zscore"]["rule_id"], spec["silence"]["rule_id"]}
    return out


def anomaly_got(
    rows: Iterable[Row], stream: dict[str, Any], rules: set[str]
) -> list[tuple[Any, ...]]:
    cutoff = stream["end"] + CUTOFF_AFTER_END_MS - ALERT_MARGIN_MS
    got = [
        (a["rule_id"], a["tenant_id"], a["alert_key"], ms(a["first_event_at"]))
        for a in rows
        if a["rule_id"] in rules and a["alert_key"] != "dev-999999"
    ]
    return sorted(a for a in got if a[-1] <= cutoff)
