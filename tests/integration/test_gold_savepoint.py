"""The Gold job on the cluster, unbounded: an empty partition does not stall it (idle timeout),
and stopping with a savepoint and resuming at another parallelism gives the results of an
uninterrupted run (the oracle, which the job matches at parallelism 1 and 2 in tests/job)."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from connectors import kafka
from streamlake.config import settings
from streamlake.runtime import submit
from tests.conftest import make_silver_conf
from tests.job.test_gold import (
    AGGREGATES,
    BOUND_MS,
    RULES,
    T0,
    GoldConf,
    oracle_aggregate,
    read_gold,
    silver_row,
    stamped,
    to_rows,
)
from tests.oracles import gold as oracle


def wait_for(what: str, check: Callable[[], Any], timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(1)
    raise AssertionError(
        f"timed out after {timeout_s}s waiting for {what}; last: {str(last)[:500]}"
    )


def rows_in_order(seed: int, n: int) -> list[dict[str, Any]]:
    """Rows whose disorder (under 3 s) stays inside the 5 s bound: none is late, whatever
    order the partitions are read in."""
    rng = random.Random(seed)
    temps = {d: 40.0 for d in range(5)}
    out = []
    for i in range(n):
        d = rng.randrange(5)
        temps[d] = max(
            -20.0, min(140.0, temps[d] + rng.uniform(-6, 6) + (rng.random() < 0.05) * 30)
        )
        status = rng.choices(["ok", "degraded", "failed"], [0.8, 0.12, 0.08])[0]
        t = T0 + i * 211 + rng.randint(0, 2_900) + (i > n // 2) * 40_000  # a pause mid-way
        out.append(
            silver_row(i, "acme" if d < 3 else "globex", f"dev-{d}", t, round(temps[d], 2), status)
        )
    assert len({(r["device_id"], r["event_at"]) for r in out}) == n
    return out


def produce(bootstrap: str, topic: str, rows: list[dict[str, Any]], partitions: list[int]) -> None:
    rows = stamped(rows)
    kafka.produce(
        bootstrap,
        topic,
        [(None, json.dumps(r).encode()) for r in rows],
        partition_of={i: partitions[i % len(partitions)] for i in range(len(rows))},
    )


def gold_state(bootstrap: str, gc: GoldConf) -> dict[str, Any]:
    out: dict[str, Any] = {
        name: read_gold(bootstrap, gc.gold(name), a["group_by"], list(a["measures"]))
        for name, a in AGGREGATES.items()
    }
    alerts = kafka.read_committed_json(
        bootstrap, gc.alerts, group_id=f"r-{gc.alerts}-{time.monotonic()}"
    )
    from tests.job.test_gold import alert_row

    out["alerts"] = sorted(alert_row(a) for a in alerts if a["alert_key"] != "dev-flush")
    return out


def rounded(table: dict[Any, dict[str, Any]], last: int | None = None) -> dict[Any, dict[str, Any]]:
    """Floats to 6 decimals (sums in another order differ in the last bits); with `last`, only
    the windows of the real rows (the far-ahead rows' windows never close)."""
    return {
        k: {m: round(v, 6) if isinstance(v, float) else v for m, v in row.items()}
        for k, row in table.items()
        if last is None or k[-2] < last + 60_000
    }


def expected(rows: list[dict[str, Any]]) -> dict[str, Any]:
    orows = to_rows(rows)
    out: dict[str, Any] = {
        name: oracle.gold(orows, BOUND_MS, oracle_aggregate(name)) for name in AGGREGATES
    }
    alerts = [
        ("r_hot", *a)
        for a in oracle.threshold(orows, "device_id", ("temperature_c", ">", 90), 3, 10_000)
    ]
    alerts += [
        ("r_spike", *a) for a in oracle.spike(orows, "device_id", "temperature_c", 25, 5_000)
    ]
    alerts += [
        ("r_seq", *a)
        for a in oracle.sequence(
            orows, "device_id", [("status", "=", "degraded"), ("status", "=", "failed")], 20_000
        )
    ]
    alerts += [("r_quiet", *a) for a in oracle.absence(orows, "device_id", 15_000)]
    out["alerts"] = sorted(alerts)
    assert set(RULES) == {"r_hot", "r_spike", "r_seq", "r_quiet"}
    return out


def test_savepoint_and_rescale_equal_an_uninterrupted_run(
    tmp_path: Path, uid: str, bootstrap: str
) -> None:
    gc = GoldConf(make_silver_conf(tmp_path, uid))
    # This test leaves a partition empty on purpose: a short idle timeout lets the windows fire.
    gc.sc.edit("gold.yaml", idle_timeout="10s")
    platform = settings.load_platform(gc.dir / "platform.yaml")
    topics = [gc.silver, gc.late, gc.alerts, *(gc.gold(n) for n in AGGREGATES)]
    kafka.create_topics(bootstrap, topics, partitions=3)
    job_id = None
    try:
        rows = rows_in_order(seed=7, n=600)
        first, second = rows[:300], rows[300:]
        # Phase 1 fills partitions 0 and 1 only: partition 2 stays empty, and only the idle
        # timeout lets the watermark (and so the windows) move on.
        produce(bootstrap, gc.silver, first, [0, 1])
        job_id = submit.submit("gold", platform, conf_dir=gc.dir, parallelism=1)
        want = expected(rows)
        t_early = wait_for(
            "Gold windows while a partition is empty",
            lambda: read_gold(bootstrap, gc.gold("t_tumble"), ["device_id"], ["readings"]),
            timeout_s=120,
        )
        assert set(t_early) <= set(want["t_tumble"])
        savepoint = submit.stop_with_savepoint(platform, job_id, tmp_path / "savepoints")
        job_id = None
        # Results committed before the stop; the resumed job must neither repeat nor lose them.
        assert gold_state(bootstrap, gc)["alerts"], (
            "phase 1 raised no alert: the test would be weak"
        )
        # Phase 2 on every partition, then one far-ahead row per partition so that every
        # window and session of the real rows closes.
        last = max(to_rows(rows), key=lambda r: r["t"])["t"]
        produce(bootstrap, gc.silver, second, [0, 1, 2])
        flush = [
            silver_row(10_000 + p, "acme", "dev-flush", last + 3_600_000 + p, 20.0)
            for p in range(3)
        ]
        produce(bootstrap, gc.silver, flush, [0, 1, 2])
        job_id = submit.submit(
            "gold", platform, conf_dir=gc.dir, parallelism=2, savepoint=savepoint
        )

        def done() -> bool:
            got = gold_state(bootstrap, gc)
            return all(rounded(got[n], last) == rounded(want[n]) for n in AGGREGATES) and (
                got["alerts"] == want["alerts"]
            )

        try:
            wait_for("the resumed job to reach the oracle's results", done, timeout_s=180)
        finally:
            got = gold_state(bootstrap, gc)
        # Exactly the oracle: nothing lost across the savepoint, nothing doubled.
        for n in AGGREGATES:
            g, w = rounded(got[n], last), rounded(want[n])
            diff = {k: (g.get(k), w.get(k)) for k in set(g) | set(w) if g.get(k) != w.get(k)}
            assert not diff, (n, len(diff), sorted(diff.items())[:3])
        assert got["alerts"] == want["alerts"]
        # Each window of an aggregate without allowed lateness was written once, before or
        # after the savepoint (a restart from scratch would write the first half again).
        records = list(kafka.read_committed(bootstrap, gc.gold("t_hop"), group_id=f"r-{uid}-hop"))
        assert len(records) == len({k for k, _ in records})
        assert kafka.read_committed_json(bootstrap, gc.late, group_id=f"r-{uid}-late") == []
    finally:
        if job_id is not None:
            submit.cancel_job(platform, job_id)
        kafka.delete_topics(bootstrap, topics)
