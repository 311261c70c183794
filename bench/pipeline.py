"""The whole pipeline against a bare baseline, in one run on this machine and stack (issue 6).

Scenarios, each on its own copy of conf/ (own topics, groups, transactional ids, lake):

- baseline:      a bare Flink job, Bronze JSON in -> Kafka out, no logic, exactly-once;
- pipeline_eo:   Bronze -> Silver/DLQ (silver job) -> Gold windows + CEP alerts (gold job),
                 exactly-once, default checkpoint interval, Delta loader running;
- pipeline_alo:  the same, at-least-once (no Kafka transactions), to show what exactly-once costs.
- silver_alone:  the Silver job by itself on one slot (its own target);
- pipeline_eo_p2, pipeline_eo_2tm: the exactly-once pipeline at parallelism 2, on one and on two
                 TaskManagers (the scaling table: how cost grows with work, on this same machine);
- pipeline_eo_silver_hashmap: Silver's state on the heap instead of RocksDB (a tuning measured);
- pipeline_eo_reused_tm: pipeline_eo again on the TaskManager the previous scenario used (every
                 other scenario starts on a TaskManager started for it): does a long-lived one
                 degrade?

Per scenario:
1. capacity: N events pre-loaded to Bronze, then the jobs start; the processing rate is the
   slope of the committed output between 20 % and 80 % of the run (start-up and the last
   checkpoint excluded), sampled every second;
2. latency: events produced at half that rate for a while, stamped with their creation time
   (their event time); a read_committed consumer records when each Silver row and each alert
   becomes visible, and the loader's Gold table is polled for new windows;
3. cost: CPU seconds and peak RSS of every process of the stack (Kafka, Flink JM/TM and their
   Python workers, the loader), checkpoint durations from Flink's REST API, Delta files written.

    make up && python -m bench.pipeline            (make bench runs it)

Writes bench/results/<date>-pipeline.{json,md} and PNG charts next to them. The parts: load.py (the
seeded events), probes.py (what is measured), scenarios.py (each run), report.py (what is written).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from bench.load import LoadSpec
from bench.report import RESULTS, charts, machine, markdown
from bench.scenarios import PIPELINE_JOBS, Scenario, run_scenario
from streamlake.config import settings
from streamlake.stack import cluster


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=3_000_000, help="pre-loaded events, baseline")
    ap.add_argument(
        "--pipeline-events", type=int, default=100_000, help="pre-loaded events, pipeline scenarios"
    )
    ap.add_argument("--peer-events", type=int, default=300_000, help="pre-loaded events, peer")
    ap.add_argument("--latency-seconds", type=int, default=40)
    ap.add_argument(
        "--scenarios",
        default="baseline,pipeline_eo,pipeline_alo,peer,silver_alone,pipeline_eo_p2,"
        "pipeline_eo_2tm,pipeline_eo_silver_hashmap,pipeline_eo_reused_tm",
    )
    args = ap.parse_args()
    plat = settings.load_platform()
    if not cluster.flink_healthy(plat):
        raise SystemExit("no Flink cluster: run `make up` first (make bench does)")
    spec = LoadSpec()
    known = {
        "baseline": Scenario("baseline", ["passthrough"]),
        "pipeline_eo": Scenario("pipeline_eo", PIPELINE_JOBS, loader=True),
        "pipeline_alo": Scenario("pipeline_alo", PIPELINE_JOBS, "at-least-once", loader=True),
        # The Gold job emitting a watermark with every row (the default before 2026-12-03).
        "pipeline_eo_on_event": Scenario(
            "pipeline_eo_on_event", PIPELINE_JOBS, loader=True, gold={"watermark_emit": "on-event"}
        ),
        "silver_alone": Scenario("silver_alone", ["silver"]),
        "pipeline_eo_p2": Scenario("pipeline_eo_p2", PIPELINE_JOBS, loader=True, parallelism=2),
        "pipeline_eo_2tm": Scenario(
            "pipeline_eo_2tm", PIPELINE_JOBS, loader=True, parallelism=2, taskmanagers=2
        ),
        "pipeline_eo_silver_hashmap": Scenario(
            "pipeline_eo_silver_hashmap",
            PIPELINE_JOBS,
            loader=True,
            silver={"state_backend": "hashmap"},
        ),
        "pipeline_eo_reused_tm": Scenario(
            "pipeline_eo_reused_tm", PIPELINE_JOBS, loader=True, fresh_taskmanager=False
        ),
        # The peer reads the same kind of Bronze topics ("passthrough" only declares them).
        "peer": Scenario("peer", ["passthrough"], peer=True),
    }
    started = datetime.now(UTC)
    results: dict[str, Any] = {
        "started_at": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": {
            "events": args.events,
            "peer_events": args.peer_events,
            "pipeline_events": args.pipeline_events,
            "latency_seconds": args.latency_seconds,
            "checkpoint_interval_ms": plat.flink.checkpoint_interval_ms,
            "parallelism": plat.flink.parallelism,
            "load": spec.__dict__,
        },
        "scenarios": {},
    }
    for name in args.scenarios.split(","):
        sc = known[name]
        n = (
            args.peer_events
            if sc.peer
            else args.events
            if name == "baseline"
            else args.pipeline_events
        )
        run_scenario(sc, plat, n, args.latency_seconds, spec)
        results["scenarios"][name] = sc.results
    cap = {
        k: v.get("capacity", {}).get("events_per_s") or 0 for k, v in results["scenarios"].items()
    }
    ratios = {}
    if cap.get("baseline") and cap.get("pipeline_eo"):
        ratios["pipeline_eo / baseline throughput"] = round(cap["pipeline_eo"] / cap["baseline"], 2)
    if cap.get("pipeline_alo") and cap.get("pipeline_eo"):
        ratios["exactly-once / at-least-once throughput"] = round(
            cap["pipeline_eo"] / cap["pipeline_alo"], 2
        )
    if cap.get("pipeline_eo_on_event") and cap.get("pipeline_eo"):
        ratios["Gold watermark on-periodic / on-event throughput"] = round(
            cap["pipeline_eo"] / cap["pipeline_eo_on_event"], 2
        )
    if cap.get("peer") and cap.get("pipeline_eo"):
        ratios["ours (pipeline_eo) / peer (PySpark + Delta) throughput"] = round(
            cap["pipeline_eo"] / cap["peer"], 2
        )
    for other, what in (
        ("pipeline_eo_p2", "parallelism 2 / 1"),
        ("pipeline_eo_2tm", "parallelism 2 on 2 TaskManagers / parallelism 1 on 1"),
        ("pipeline_eo_silver_hashmap", "Silver state on the heap / in RocksDB"),
        ("pipeline_eo_reused_tm", "on the previous scenario's TaskManager / on a fresh one"),
    ):
        if cap.get(other) and cap.get("pipeline_eo"):
            ratios[f"{what} throughput"] = round(cap[other] / cap["pipeline_eo"], 2)
    results["ratios"] = ratios
    results["targets"] = targets(results, plat.flink.checkpoint_interval_ms)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"{started.date().isoformat()}-pipeline"
    pngs = charts(results, stem)
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(results, pngs))
    print(stem.with_suffix(".md").read_text())
    return 0


def targets(results: dict[str, Any], checkpoint_ms: int) -> list[dict[str, Any]]:
    """Issue 12's targets, each met or missed in this run (reported, never asserted)."""
    sc = results["scenarios"]
    eo = sc.get("pipeline_eo", {})
    cap = eo.get("capacity", {})
    lat = eo.get("latency", {})
    rate = cap.get("events_per_s")
    peer = sc.get("peer", {}).get("capacity", {}).get("events_per_s")
    silver = sc.get("silver_alone", {}).get("capacity", {}).get("first_job_steady_events_per_s")
    silver_p99 = (lat.get("silver_or_output_ms") or {}).get("p99")
    alert_p99 = (lat.get("alert_ms") or {}).get("p99")
    bound_ms = 5000  # device_telemetry's max_out_of_orderness (the alert rules' event type)
    rows = [
        ("exactly-once pipeline >= 3x the peer (events/s)", rate, 3 * peer if peer else None),
        ("exactly-once pipeline >= 30,000 events/s (must)", rate, 30_000),
        ("exactly-once pipeline >= 100,000 events/s (goal)", rate, 100_000),
        ("Silver job alone >= 100,000 events/s on one slot", silver, 100_000),
    ]
    out = [
        {"target": t, "measured": m, "bound": b, "met": None if m is None or b is None else m >= b}
        for t, m, b in rows
    ]
    for t, m, b in (
        ("whole pipeline <= 40 CPU-s per million events", cap.get("cpu_s_per_million_events"), 40),
        (
            f"Silver visible in Kafka p99 <= checkpoint + 1 s (ms, at {lat.get('rate_events_per_s')}"
            " events/s)",
            silver_p99,
            checkpoint_ms + 1000,
        ),
        (
            "alert p99 <= checkpoint + watermark bound + 1 s (ms)",
            alert_p99,
            checkpoint_ms + bound_ms + 1000,
        ),
    ):
        out.append({"target": t, "measured": m, "bound": b, "met": None if m is None else m <= b})
    return out


if __name__ == "__main__":
    raise SystemExit(main())
