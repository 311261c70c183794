"""Same answers at any read speed: the Silver and Gold jobs on the cluster, over a seeded stream of
100,000 Bronze events (2 tenants x 3 partitions, 2 h of event time), once trickled in while the
jobs run and once produced in full before they start (a restart after downtime, a backfill).
Both runs must equal one oracle (tests/catchup_stream.py, plain Python from the semantics): Silver
ids, late ids, the DLQ by reason, every Gold window that has surely fired, and the alerts."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors import kafka
from jobs import catalog, settings, submit
from tests import catchup_stream as cs
from tests import gold_oracle as oracle
from tests.conftest import SilverConf, make_silver_conf
from tests.job.test_gold import _ms, alert_row, from_iso, read_gold

N_EVENTS = 100_000
SEED = 20261201
FLUSH_1_MS, FLUSH_2_MS = 40 * 60_000, 80 * 60_000
# Windows ending by then have surely fired: the Gold watermark has passed the first flush records.
CUTOFF_AFTER_END_MS = FLUSH_1_MS - max(cs.BOUND_MS.values())


def private_conf(tmp_path: Path, uid: str) -> SilverConf:
    sc = make_silver_conf(tmp_path, uid)
    sc.edit("silver.yaml", max_record_bytes=cs.MAX_RECORD_BYTES)
    for f in sorted((sc.dir / "gold").glob("*.yaml")):
        sc.edit(f"gold/{f.name}", topic=sc.topic(f"gold_{f.stem}"))
    sc.edit(
        "gold.yaml",
        alert_topic=sc.topic("alert_events"),
        late_topics={et: sc.topic(f"late_{et}") for et in cs.BOUND_MS},
    )
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


def wait_for(what: str, check: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(2)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def audit_read(bootstrap: str, sc: SilverConf) -> int:
    rows = kafka.read_committed_latest_json(bootstrap, sc.audit, f"r-{sc.uid}-{time.monotonic()}")
    return sum(r["count_records"] for r in rows if r["metric"] == "read")


@pytest.fixture(scope="module")
def stream() -> dict[str, Any]:
    end = (int(time.time() * 1000) - 3 * cs.HOUR) // 60_000 * 60_000
    recs = cs.generate(SEED, N_EVENTS, end)
    flush = cs.flush(end, FLUSH_1_MS, 10**7) + cs.flush(end, FLUSH_2_MS, 2 * 10**7)
    return {"end": end, "recs": recs, "flush": flush, "want": cs.expect(recs + flush)}


@pytest.mark.parametrize("mode", ["trickle", "backlog"])
def test_results_do_not_depend_on_read_speed(
    mode: str, stream: dict[str, Any], tmp_path: Path, uid: str, bootstrap: str
) -> None:
    sc = private_conf(tmp_path, uid)
    platform = settings.load_platform(sc.dir / "platform.yaml")
    jobs = [catalog.get("silver", sc.dir), catalog.get("gold", sc.dir)]
    topics = sorted({t for j in jobs for t in j.topics()})
    cfgs = {t: c for j in jobs for t, c in j.topic_configs().items()}
    for t in topics:
        kafka.create_topics(bootstrap, [t], partitions=cs.PARTITIONS, topic_config=cfgs.get(t))
    recs, flush, want = stream["recs"], stream["flush"], stream["want"]
    total = len(recs) + len(flush)
    ids: list[str] = []
    try:
        # The first flush records follow the data in every partition. The second go out once
        # the Silver job has read everything before them, so the rows they become carry a
        # watermark past the first: every window and rule of the data then fires.
        if mode == "backlog":
            send(sc, bootstrap, interleaved(recs) + flush[:6])
        for name in ("silver", "gold"):
            ids.append(submit.submit(name, platform, conf_dir=sc.dir, parallelism=1))
        if mode == "trickle":
            ordered = interleaved(recs)
            for i in range(0, len(ordered), 1_000):
                send(sc, bootstrap, ordered[i : i + 1_000])
                time.sleep(0.2)
            send(sc, bootstrap, flush[:6])
        for n, rest in ((len(recs) + 6, flush[6:]), (total, [])):

            def read_all(n: int = n) -> bool:
                return audit_read(bootstrap, sc) == n

            wait_for(f"the Silver job to have read {n} records", read_all, timeout_s=400)
            send(sc, bootstrap, rest)
        check_silver(sc, bootstrap, want)
        check_gold(sc, bootstrap, stream)
    finally:
        for job_id in ids:
            submit.cancel_job(platform, job_id)
        kafka.delete_topics(bootstrap, topics)


def _ids(rows: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {
        (r["tenant_id"], r["event_id"])
        for r in rows
        if not r["event_id"].startswith(cs.FLUSH_PREFIX)
    }


def _no_flush(ids: set[tuple[str, str]]) -> set[tuple[str, str]]:
    return {i for i in ids if not i[1].startswith(cs.FLUSH_PREFIX)}


def check_silver(sc: SilverConf, bootstrap: str, want: cs.Expected) -> None:
    for et in cs.BOUND_MS:
        got = kafka.read_committed_json(bootstrap, sc.silver(et), f"r-{sc.uid}-{et}", timeout_s=120)
        assert _ids(got) == _no_flush(want.silver[et]), et
        assert len(got) == len(want.silver[et]), f"{et}: a Silver row written twice"
    dlq = kafka.read_committed_json(bootstrap, sc.dlq, f"r-{sc.uid}-dlq", timeout_s=120)
    got_dlq = Counter((r["tenant_id"], r["reason_codes"][0]) for r in dlq)
    assert got_dlq == want.dlq
    # Every kind of bad record is in the stream, so the comparison above is not vacuous.
    assert len({reason for _t, reason in want.dlq}) >= 12
    audit = kafka.read_committed_latest_json(bootstrap, sc.audit, f"r-{sc.uid}-audit")
    totals: Counter[tuple[str, str]] = Counter()
    for r in audit:
        totals[(r["tenant_id"], r["metric"])] += r["count_records"]
    for tenant in ("acme", "globex"):
        assert totals[(tenant, "valid")] - totals[(tenant, "silver")] == want.duplicates[tenant]


def check_gold(sc: SilverConf, bootstrap: str, stream: dict[str, Any]) -> None:
    want: cs.Expected = stream["want"]
    cutoff = stream["end"] + CUTOFF_AFTER_END_MS
    for et in cs.BOUND_MS:
        topic = sc.topic(f"late_{et}")

        def late_ids(t: str = topic) -> set[tuple[str, str]]:
            return _ids(kafka.read_committed_json(bootstrap, t, f"r-{time.monotonic()}", 120))

        def all_late(f: Callable[[], set[tuple[str, str]]] = late_ids, e: str = et) -> bool:
            return f() >= want.late[e]

        wait_for(f"late {et} rows", all_late, 300)
        assert late_ids() == want.late[et], et
    assert sum(len(v) for v in want.late.values()) > 1_000
    revised = 0
    key = os.environ["STREAMLAKE_PII_HASH_KEY"]
    for name, (et, agg) in aggregates(sc.dir).items():
        rows = [
            cs.pii_hashed(r, key)
            for r in want.rows[et]
            if not r["event_id"].startswith(cs.FLUSH_PREFIX)
        ]
        expect = {
            k: {m: round(v, 6) if isinstance(v, float) else v for m, v in row.items()}
            for k, row in oracle.gold(rows, 0, agg).items()
            if k[-1] <= cutoff
        }
        revised += sum(1 for r in expect.values() if r["late_rows"])

        def fired(n: str = name, a: oracle.Aggregate = agg) -> dict[Any, Any]:
            got = read_gold(bootstrap, sc.topic(f"gold_{n}"), a.group_by, list(a.measures))
            return {
                k: {m: round(v, 6) if isinstance(v, float) else v for m, v in row.items()}
                for k, row in got.items()
                if k[-1] <= cutoff
            }

        def equal(f: Callable[[], dict[Any, Any]] = fired, w: dict[Any, Any] = expect) -> bool:
            return f() == w

        wait_for(f"gold_{name}", equal, 300)
        assert fired() == expect, name
    assert revised > 10
    alerts = kafka.read_committed_json(bootstrap, sc.topic("alert_events"), f"r-{sc.uid}-a", 120)
    got_alerts = sorted(
        alert_row(a)
        for a in alerts
        if a["alert_key"] != "dev-999999" and from_iso(a["last_event_at"]) <= cutoff - 10 * 60_000
    )
    on_time = [
        r
        for r in want.rows["device_telemetry"]
        if not r["_late"] and not r["event_id"].startswith(cs.FLUSH_PREFIX)
    ]
    want_alerts = sorted(
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
    want_alerts = [a for a in want_alerts if a[-1] <= cutoff - 10 * 60_000]
    assert {a[0] for a in want_alerts} == {
        "device_overheating",
        "device_temperature_spike",
        "device_degraded_then_failed",
        "device_no_readings",
    }
    assert got_alerts == want_alerts
