"""Same answers at any read speed: the Silver, Gold and device_anomaly jobs on the cluster, over a
seeded stream of 100,000 Bronze events (2 tenants x 3 partitions, 2 h of event time) produced in
full before they start (a restart after downtime, a backfill), must equal one oracle
(tests/support/catchup_stream.py and tests/oracles/catchup.py, plain Python from the semantics): Silver ids, late ids, the DLQ by
reason, every Gold window that has surely fired, and the alerts of the SQL rules and of the
DataStream job. The same stream trickled in live, with the jobs already running, must give the
same: tests/integration/test_chaos.py trickles it in while killing the TaskManager, the broker and
the loader, and holds the Delta tables to the same oracle."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from connectors import kafka
from jobs import catalog
from streamlake.config import settings
from streamlake.runtime import submit
from tests.conftest import SilverConf
from tests.job.test_gold import read_gold
from tests.oracles import catchup
from tests.support import catchup_stream as cs
from tests.support import pipeline_checks as pc

N_EVENTS = 100_000
SEED = 20261201


def wait_for(what: str, check: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(2)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


@pytest.fixture(scope="module")
def stream() -> dict[str, Any]:
    return pc.seeded_stream(SEED, N_EVENTS)


def test_a_backlog_gives_what_the_oracle_says(
    stream: dict[str, Any], tmp_path: Path, uid: str, bootstrap: str
) -> None:
    """Everything produced before the jobs start (a restart after downtime, a backfill). The
    same stream trickled live into running jobs is the chaos test's (with kills on top)."""
    sc = pc.private_conf(tmp_path, uid)
    # Every Bronze and Silver partition of this stream has data until the flush, so none may
    # count as idle (idleness is processing time, outside what this test checks): with Silver's
    # default 30 s, a run beside another whole pipeline on 2 cores (load average about 26) took a
    # starved Bronze partition for idle and 1,564 on-time readings went to late_. The chaos test
    # keeps idleness out the same way.
    for rel in ("silver.yaml", "gold.yaml", "streams/device_anomaly.yaml"):
        sc.edit(rel, idle_timeout="10min")
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
        pc.send(sc, bootstrap, pc.interleaved(recs) + flush[:6])
        for name in ("silver", "gold", "device_anomaly"):
            ids.append(submit.submit(name, platform, conf_dir=sc.dir, parallelism=1))
        for n, rest in ((len(recs) + 6, flush[6:]), (total, [])):

            def read_all(n: int = n) -> bool:
                return pc.audit_read(bootstrap, sc) == n

            wait_for(f"the Silver job to have read {n} records", read_all, timeout_s=400)
            pc.send(sc, bootstrap, rest)
        check_silver(sc, bootstrap, want)
        check_gold(sc, bootstrap, stream)
    finally:
        for job_id in ids:
            submit.cancel_job(platform, job_id)
        kafka.delete_topics(bootstrap, topics)


def check_silver(sc: SilverConf, bootstrap: str, want: catchup.Expected) -> None:
    silver = {
        et: kafka.read_committed_json(bootstrap, sc.silver(et), f"r-{sc.uid}-{et}", timeout_s=120)
        for et in cs.BOUND_MS
    }
    dlq = kafka.read_committed_json(bootstrap, sc.dlq, f"r-{sc.uid}-dlq", timeout_s=120)
    audit = kafka.read_committed_latest_json(bootstrap, sc.audit, f"r-{sc.uid}-audit")
    pc.check_silver(want, silver, dlq, audit)


def check_gold(sc: SilverConf, bootstrap: str, stream: dict[str, Any]) -> None:
    want: catchup.Expected = stream["want"]
    for et in cs.BOUND_MS:
        topic = sc.topic(f"late_{et}")

        def late_ids(t: str = topic) -> set[tuple[str, str]]:
            return pc.ids(kafka.read_committed_json(bootstrap, t, f"r-{time.monotonic()}", 120))

        def all_late(f: Callable[[], set[tuple[str, str]]] = late_ids, e: str = et) -> bool:
            return f() >= want.late[e]

        wait_for(f"late {et} rows", all_late, 300)
        assert late_ids() == want.late[et], et
    assert sum(len(v) for v in want.late.values()) > 1_000
    expected = pc.gold_expected(sc.dir, stream)
    cutoff = stream["end"] + pc.CUTOFF_AFTER_END_MS
    for name, (_et, agg) in pc.aggregates(sc.dir).items():

        def fired(n: str = name, a: Any = agg) -> dict[Any, Any]:
            topic = sc.topic(f"gold_{n}")
            got = read_gold(bootstrap, topic, a.group_by, list(a.measures))
            return {k: pc.rounded(r) for k, r in got.items() if k[-1] <= cutoff}

        def equal(
            f: Callable[[], dict[Any, Any]] = fired, w: dict[Any, Any] = expected[name]
        ) -> bool:
            return f() == w

        wait_for(f"gold_{name}", equal, 300)
        assert fired() == expected[name], name
    assert sum(1 for rows in expected.values() for r in rows.values() if r["late_rows"]) > 10
    alerts = kafka.read_committed_json(bootstrap, sc.topic("alert_events"), f"r-{sc.uid}-a", 120)
    assert pc.alerts_got(alerts, stream) == pc.alerts_expected(stream)
    # The DataStream job's alerts, by the same rule: the same whatever the read speed.
    want_anomaly = pc.anomaly_expected(sc.dir, stream)
    rules = {a[0] for a in want_anomaly}

    def anomalies() -> list[tuple[Any, ...]]:
        rows = kafka.read_committed_json(
            bootstrap, sc.topic("alert_events"), f"r-{time.monotonic()}"
        )
        return pc.anomaly_got(rows, stream, rules)

    wait_for("the DataStream job's alerts", lambda: anomalies() == want_anomaly, 300)
