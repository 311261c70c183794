"""The benchmark's scenarios (baseline, pipeline exactly-once and at-least-once, the PySpark peer),
each on its own copy of conf/: run one, with its probes, and profile the jobs."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.load import Generator, LoadSpec
from bench.probes import (
    DeltaLatency,
    Drain,
    FlinkSourceRecords,
    GoldWatcher,
    Isolated,
    Sampler,
    VisibleLatency,
    cpu_by_job,
    end_offsets,
    pct,
    shared_threads,
    spark_committed_offsets,
    steady_rate,
    thread_cpu_ms,
)
from connectors import kafka
from jobs import catalog
from streamlake.config import paths
from streamlake.config.settings import PlatformSettings
from streamlake.runtime import submit
from streamlake.stack import cluster, processes

WORK = paths.STACK / "bench"


PIPELINE_JOBS = ["silver", "gold", "device_anomaly"]
# The pre-load's events are created over the last two minutes (Generator.produce, backdate_ms):
# within every event type's max_future_skew and the dedup horizon, and old enough that the
# watermark passes all but its last seconds while the capacity is measured.
PRELOAD_SPAN_MS = 120_000


@dataclass
class Scenario:
    name: str
    jobs: list[str]
    delivery: str = "exactly-once"
    loader: bool = False
    peer: bool = False  # PySpark Structured Streaming instead of the Flink jobs
    # conf/gold.yaml keys this scenario sets otherwise (e.g. the watermark emission measured
    # against the default's)
    gold: dict[str, Any] = field(default_factory=dict)
    # Start on a TaskManager started for this scenario (issue 12: a stack that had run other jobs
    # measured slower); False measures the one the previous scenario used, as it was left.
    fresh_taskmanager: bool = True
    # Every job's parallelism (None: conf/platform.yaml's), and how many TaskManagers run (the
    # local stack has one; the others are started for the scenario, on this same machine).
    parallelism: int | None = None
    taskmanagers: int = 1
    # conf/silver.yaml keys this scenario sets otherwise (e.g. its state backend)
    silver: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)


def scenario_conf(
    name: str,
    delivery: str,
    gold: dict[str, Any] | None = None,
    silver: dict[str, Any] | None = None,
) -> Path:
    """A private copy of conf/ with its own topics, groups, transactional ids and lake."""
    d = WORK / name / "conf"
    shutil.rmtree(d.parent, ignore_errors=True)
    shutil.copytree(paths.CONF_DIR, d)
    suffix = f"_b{name}"

    def edit(rel: str, **changes: Any) -> None:
        p = d / rel
        data = yaml.safe_load(p.read_text()) if p.exists() else {}
        data.update(changes)
        p.write_text(yaml.safe_dump(data, sort_keys=False))

    plat = yaml.safe_load((d / "platform.yaml").read_text())
    plat["pipeline_id"] = f"bench_{name}"
    plat["sinks"]["delivery_guarantee"] = delivery
    (d / "platform.yaml").write_text(yaml.safe_dump(plat, sort_keys=False))
    for f in sorted((d / "tenants").glob("*.yaml")):
        edit(f"tenants/{f.name}", topics=[f"bronze_{f.stem}_events{suffix}"])
    for f in sorted((d / "event_types").glob("*.yaml")):
        edit(f"event_types/{f.name}", silver_topic=f"silver_{f.stem}{suffix}")
    edit(
        "silver.yaml",
        **(silver or {}),
        dlq_topic=f"dlq_events{suffix}",
        audit_topic=f"audit_silver_counts{suffix}",
    )
    edit(
        "gold.yaml",
        **(gold or {}),
        alert_topic=f"alert_events{suffix}",
        late_topics={
            et.stem: f"late_{et.stem}{suffix}" for et in (d / "event_types").glob("*.yaml")
        },
    )
    for f in sorted((d / "gold").glob("*.yaml")):
        edit(f"gold/{f.name}", topic=f"gold_{f.stem}{suffix}")
    edit("streams/device_anomaly.yaml", output_topic=f"alert_events{suffix}")
    edit(
        "lake.yaml",
        lake_root=str(WORK / name / "lake"),
        consumer_group=f"bench_{name}.loader",
        instance_id=f"bench-{name}",
    )
    return d


def job_io(name: str, conf: Path) -> tuple[list[str], list[str], dict[str, Any]]:
    """(input topics, output topics, topic configs) of a SQL job or a DataStream job."""
    if name in catalog.STREAM_JOBS:
        from jobs import device_anomaly

        spec = device_anomaly.load(conf)
        return [spec.silver_topic], [spec.output_topic], {}
    job = catalog.get(name, conf)
    return job.source_topics(), job.sink_topics(), dict(job.topic_configs())


def absence_rules(conf: Path) -> frozenset[str]:
    """Rules that fire on the absence of events: their alert comes a configured gap after the
    last event, by design, so they are reported per rule but kept out of the alert latency."""
    from jobs import device_anomaly
    from streamlake.config import gold

    rules = {r.rule_id for r in gold.load_gold(conf).rules.values() if r.kind == "absence"}
    return frozenset(rules | {device_anomaly.load(conf).silence_rule_id})


def run_scenario(
    sc: Scenario, plat: PlatformSettings, n: int, latency_s: int, spec: LoadSpec
) -> None:
    bootstrap = plat.kafka.bootstrap
    conf = scenario_conf(sc.name, sc.delivery, sc.gold, sc.silver)
    sc.results.update(parallelism=sc.parallelism, taskmanagers=sc.taskmanagers)
    io = {j: job_io(j, conf) for j in sc.jobs}
    topics = sorted({t for ins, outs, _ in io.values() for t in ins + outs})
    kafka.delete_topics(bootstrap, topics)
    for _ins, _outs, cfgs in io.values():
        for t, cfg in cfgs.items():
            kafka.create_topics(bootstrap, [t], plat.kafka.default_partitions, topic_config=cfg)
    for t in topics:
        kafka.create_topics(bootstrap, [t], plat.kafka.default_partitions)
    bronze, first_outputs, _ = io[sc.jobs[0]]
    outputs = [t for t in first_outputs if not t.startswith("audit_")]
    tenants = {t.split("_")[1]: t for t in bronze}
    gen = Generator(spec, tenants)

    print(f"[{sc.name}] pre-loading {n} events to {', '.join(bronze)}", flush=True)
    # What this one Python producer can send: the latency run's rate cannot be higher.
    generator_rate = n / gen.produce(bootstrap, n, backdate_ms=PRELOAD_SPAN_MS)
    in_total = end_offsets(bootstrap, bronze)

    slots_needed = len(sc.jobs) * (sc.parallelism or plat.flink.parallelism)
    if sc.fresh_taskmanager and not sc.peer:
        per_tm = -(-slots_needed // sc.taskmanagers)
        fresh_taskmanager(plat, max(plat.flink.task_slots, per_tm))
    tm_uptime_s = _tm_uptime_s()
    extra_tms = [f"flink-taskmanager-{i}" for i in range(2, sc.taskmanagers + 1)]
    for name in extra_tms:
        extra_taskmanager(plat, name)
    roots = _roots(extra_tms)
    loader_proc = None
    if sc.loader:
        log = open(WORK / sc.name / "loader.log", "w")
        loader_proc = subprocess.Popen(
            [paths.python_executable(), "-m", "jobs", "--conf", str(conf), "loader"],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=paths.REPO,
        )
        roots["loader"] = loader_proc.pid
    job_ids: dict[str, str] = {}
    peer_proc = None
    peer_lake = WORK / sc.name / "peer-lake"
    records = FlinkSourceRecords(plat)
    if sc.peer:
        shutil.rmtree(peer_lake, ignore_errors=True)
        peer_lake.mkdir(parents=True)

        def progress() -> dict[str, int]:
            return {"peer": spark_committed_offsets(peer_lake / "_checkpoints" / "silver")}
    else:

        def progress() -> dict[str, int]:
            return {name: records(jid) for name, jid in job_ids.items()}

    sampler = Sampler(progress, roots)
    try:
        if sc.peer:
            peer_proc = start_peer(bootstrap, bronze, peer_lake, WORK / sc.name)
            roots["peer-spark"] = peer_proc.pid
        # A cancelled job of the previous scenario can hold its slot for a while.
        wait_for_free_slots(plat, 0 if sc.peer else slots_needed)
        # Downstream jobs first, so they are running when their input starts to arrive; the
        # clock starts when the first job has read its first record.
        for name in [] if sc.peer else sc.jobs[1:]:
            job_ids[name] = submit.submit(name, plat, conf_dir=conf, parallelism=sc.parallelism)
            submit.wait_job(plat, job_ids[name], {"RUNNING"}, timeout_s=120)
        if not sc.peer:
            job_ids = {
                sc.jobs[0]: submit.submit(
                    sc.jobs[0], plat, conf_dir=conf, parallelism=sc.parallelism
                ),
                **job_ids,
            }
            submit.wait_job(plat, job_ids[sc.jobs[0]], {"RUNNING"}, timeout_s=120)
        drain = Drain(plat, records, job_ids, {j: io[j][0] for j in job_ids})
        sampler.start()
        t_running = time.monotonic()
        seen_at_start = 0
        owners = {
            j: (f"bench_{sc.name}.{j}", _vertex_names(plat, jid)) for j, jid in job_ids.items()
        }
        threads_before: dict[str, float] = {}
        if not sc.peer:
            # Both ends of the interval are readings of the same once-a-second metric, so its
            # staleness cancels out: (total - first reading) / (done - time of first reading).
            first_jid = job_ids[sc.jobs[0]]
            while (seen_at_start := records(first_jid)) == 0 and time.monotonic() < t_running + 120:
                time.sleep(0.1)
            t_running = time.monotonic()
            threads_before = _threads(roots)
        if sc.peer:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline and progress()["peer"] < in_total:
                time.sleep(1)
            done_at = {"peer": time.monotonic()}
        else:
            if not drain.wait(in_total, 900):
                raise TimeoutError(f"[{sc.name}] the jobs did not process the pre-load in 900 s")
            done_at = drain.done_at
        catch_up_s = max(done_at.values()) - t_running
        threads_after = _threads(roots) if threads_before else {}
        capacity_samples = sampler.stop()
        first_name = next(iter(done_at))
        rate = steady_rate(capacity_samples, in_total, first_name)
        first_s, last_s = capacity_samples[0], capacity_samples[-1]
        cpu_s = sum(last_s["cpu"].values()) - sum(first_s["cpu"].values())
        sc.results["capacity"] = {
            "events": in_total,
            # From the jobs running (Spark: its queries started) until every job has processed
            # every pre-loaded event (downstream jobs: every committed row of their input).
            "events_per_s": round((in_total - seen_at_start) / catch_up_s),
            "catch_up_s": round(catch_up_s, 1),
            "catch_up_s_by_job": {k: round(v - t_running, 1) for k, v in done_at.items()},
            # The first job alone (Silver, or the baseline): its busy stretch.
            "first_job_steady_events_per_s": round(rate),
            "records_in_by_job": last_s["out"],
            "cpu_s_per_million_events": round(cpu_s / in_total * 1e6, 1),
            # The TaskManager's CPU by job (its threads; jstack), per pre-loaded Bronze event.
            "cpu_us_per_event_by_job": {
                k: round(v / in_total * 1e6, 1)
                for k, v in cpu_by_job(threads_before, threads_after, owners).items()
            }
            if threads_after
            else {},
            "taskmanager_shared_cpu_s_top": shared_threads(threads_before, threads_after, owners)
            if threads_after
            else [],
            "taskmanager_uptime_s_at_start": tm_uptime_s,
            "cpu_s_by_process": {
                k: round(last_s["cpu"][k] - first_s["cpu"].get(k, 0.0), 1) for k in last_s["cpu"]
            },
            "peak_rss_mb": {
                k: round(max(s["rss"].get(k, 0) for s in capacity_samples) / 2**20)
                for k in last_s["rss"]
            },
            "series": {
                name: [
                    (round(s["t"] - first_s["t"], 1), s["out"].get(name, 0))
                    for s in capacity_samples
                ]
                for name in last_s["out"]
            },
        }
        print(
            f"[{sc.name}] capacity: {sc.results['capacity']['events_per_s']} events/s "
            f"(catch-up by job: {sc.results['capacity']['catch_up_s_by_job']})",
            flush=True,
        )

        # Latency at half the measured capacity (new events only: consumers start at the end),
        # or what the generator can send, if less.
        half = max(500.0, min(sc.results["capacity"]["events_per_s"] / 2, 0.9 * generator_rate))
        watchers: dict[str, Any] = {
            "silver_or_output": Isolated(
                lambda: VisibleLatency(
                    bootstrap,
                    [t for t in outputs if t.startswith(("silver_", "bench_"))],
                    "created",
                )
            )
        }
        alert_topics = sorted(
            {t for j in sc.jobs if j != sc.jobs[0] for t in io[j][1] if t.startswith("alert_")}
        )
        if alert_topics and not sc.peer:
            absent = absence_rules(conf)
            watchers["alert"] = Isolated(
                lambda: VisibleLatency(
                    bootstrap,
                    alert_topics,
                    "last_event_at",
                    1,
                    group_field="rule_id",
                    exclude_groups=absent,
                )
            )
        if sc.loader:
            from streamlake.lake.sink import lake_uri

            lake_root = str(WORK / sc.name / "lake")
            silver_uri = lake_uri(lake_root, "silver_device_telemetry")
            gold_uri = lake_uri(lake_root, "gold_device_temperature_1m")
            watchers["silver_delta"] = Isolated(lambda: DeltaLatency(silver_uri))
            watchers["gold_delta_after_window_end"] = Isolated(lambda: GoldWatcher(gold_uri))
        if sc.peer:
            watchers = {
                "silver_delta": Isolated(lambda: DeltaLatency(str(peer_lake / "silver"))),
                "gold_delta_after_window_end": Isolated(
                    lambda: GoldWatcher(str(peer_lake / "gold_device_1m"))
                ),
            }
        for w in watchers.values():
            w.start()
        for w in watchers.values():
            w.ready.wait(30)
        n_lat = int(half * latency_s)
        print(f"[{sc.name}] latency run: {n_lat} events at {half:.0f}/s", flush=True)
        lake_dir = peer_lake if sc.peer else WORK / sc.name / "lake"
        files_before = _delta_files(lake_dir)
        t0 = time.monotonic()
        gen.produce(bootstrap, n_lat, rate=half)
        sent_s = time.monotonic() - t0
        t_sent = time.monotonic()
        # Sustained means the jobs drain what was sent at this rate promptly: within two
        # checkpoint intervals and 5 s (commits, then one more hop downstream).
        grace_s = 2 * plat.flink.checkpoint_interval_ms / 1000 + 5
        expect = in_total + n_lat
        if sc.peer:
            while time.monotonic() < t_sent + 120 and progress()["peer"] < expect:
                time.sleep(0.5)
            drained = progress()["peer"] >= expect
        else:
            drain = Drain(plat, records, job_ids, {j: io[j][0] for j in job_ids})
            drained = drain.wait(expect, 120)
        drain_s = time.monotonic() - t_sent
        time.sleep(3)  # the last rows reach Delta and the watchers
        for w in watchers.values():
            w.stop_flag.set()
            w.join(15)
        files_after = _delta_files(lake_dir)
        sc.results["latency"] = {
            "rate_events_per_s": round(half),
            "rate_limited_by_generator": half < sc.results["capacity"]["events_per_s"] / 2,
            "achieved_send_rate": round(n_lat / sent_s),
            "drain_after_last_send_s": round(drain_s, 1) if drained else None,
            "kept_up": drained and drain_s <= grace_s,
            **{
                f"{k}_ms": {
                    "n": len(w.latencies),
                    "p50": _r(pct(w.latencies, 0.5)),
                    "p95": _r(pct(w.latencies, 0.95)),
                    "p99": _r(pct(w.latencies, 0.99)),
                }
                for k, w in watchers.items()
            },
        }
        if "alert" in watchers:
            sc.results["latency"]["alert_ms_by_rule"] = {
                rule: {"n": len(xs), "p50": _r(pct(xs, 0.5)), "p99": _r(pct(xs, 0.99))}
                for rule, xs in sorted(watchers["alert"].by_group.items())
            }
            sc.results["latency"]["alert_rules_left_out"] = sorted(absent)
        if "gold_delta_after_window_end" in watchers:
            sc.results["latency"]["gold_windows_early_partial"] = watchers[
                "gold_delta_after_window_end"
            ].early_partial
        if sc.loader or sc.peer:
            sc.results["latency"]["delta_files_per_min"] = round(
                (files_after - files_before) / ((time.monotonic() - t0) / 60), 1
            )
        sc.results["checkpoints"] = {n_: _checkpoints(plat, jid) for n_, jid in job_ids.items()}
        if job_ids:
            sc.results["profile"] = {n_: profile(plat, jid) for n_, jid in job_ids.items()}
        print(f"[{sc.name}] {json.dumps(sc.results['latency'])}", flush=True)
    finally:
        for jid in job_ids.values():
            try:
                submit.cancel_job(plat, jid, timeout_s=240)
            except Exception as exc:
                print(f"[{sc.name}] cancel {jid}: {exc}")
        for proc in (loader_proc, peer_proc):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
        for name in extra_tms:
            processes.stop(name)
        kafka.delete_topics(bootstrap, topics)


PEER_PY = paths.STACK / "peer-venv" / "bin" / "python"


def start_peer(
    bootstrap: str, topics: list[str], lake: Path, work: Path
) -> subprocess.Popen[bytes]:
    if not PEER_PY.exists():
        raise SystemExit(
            f"{PEER_PY} is missing: `make bench` installs the peer (pyspark, delta-spark)"
        )
    ready = work / "peer.ready"
    ready.unlink(missing_ok=True)
    log = open(work / "peer.log", "w")
    proc = subprocess.Popen(
        [
            str(PEER_PY),
            str(paths.REPO / "bench" / "peer_spark.py"),
            "--bootstrap",
            bootstrap,
            "--topics",
            ",".join(topics),
            "--lake",
            str(lake),
            "--ready",
            str(ready),
            "--jars",
            str(paths.JARS / "peer"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=paths.REPO,
    )
    deadline = time.monotonic() + 600
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the PySpark peer did not start; see {work / 'peer.log'}")
        time.sleep(0.5)
    return proc


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def _roots(extra: list[str]) -> dict[str, int]:
    out = {}
    for name in ("kafka", "flink-jobmanager", "flink-taskmanager", *extra):
        proc = processes.owned(name)
        if proc is not None:
            out[name] = proc.pid
    return out


def _delta_files(root: Path) -> int:
    return sum(1 for _ in root.rglob("*.parquet")) if root.exists() else 0


def fresh_taskmanager(plat: PlatformSettings, slots: int) -> None:
    """Replace the TaskManager with a new one with this many slots. The old one is stopped on
    purpose, so the supervisor leaves the restart to us, and adopts the new one (if it dies, the
    supervisor starts it again with the platform's slots)."""
    old = cluster.taskmanager_ids(plat)
    processes.stop("flink-taskmanager")
    cluster.taskmanager_start(plat, slots=slots)
    deadline = time.monotonic() + 120
    while cluster.taskmanager_ids(plat) & old:
        if time.monotonic() > deadline:
            raise TimeoutError("the JobManager still lists the TaskManager that was stopped")
        time.sleep(1)


def extra_taskmanager(plat: PlatformSettings, name: str) -> None:
    """One more TaskManager on this machine (same config, its own ports), for a scenario."""
    cluster.taskmanager_start(plat, name=name)


def _threads(roots: dict[str, int]) -> dict[str, float]:
    """Thread CPU of every TaskManager JVM, each thread name prefixed by its JVM's."""
    out: dict[str, float] = {}
    for name, pid in roots.items():
        if name.startswith("flink-taskmanager"):
            out.update({f"{name}|{t}": ms for t, ms in thread_cpu_ms(pid).items()})
    return out


def _tm_uptime_s() -> float | None:
    proc = processes.owned("flink-taskmanager")
    up = processes.uptime_s(proc.pid) if proc else None
    return None if up is None else round(up, 1)


def _vertex_names(plat: PlatformSettings, job_id: str) -> list[str]:
    try:
        return [str(v["name"]) for v in cluster.rest_get(plat, f"/jobs/{job_id}")["vertices"]]
    except Exception:
        return []


def wait_for_free_slots(plat: PlatformSettings, n: int, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while int(cluster.rest_get(plat, "/overview").get("slots-available", 0)) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {n} free task slots after {timeout_s:.0f}s")
        time.sleep(1)


def profile(plat: PlatformSettings, job_id: str) -> dict[str, Any]:
    """Where the first job's time goes: busy time per vertex, and the hottest frames of the
    busiest one (Flink's on-CPU flame graph, sampled through the REST API)."""
    out: dict[str, Any] = {"vertices": []}
    try:
        job = cluster.rest_get(plat, f"/jobs/{job_id}")
        busiest, most = None, -1.0
        for v in job["vertices"]:
            got = cluster.rest_get(
                plat,
                f"/jobs/{job_id}/vertices/{v['id']}/subtasks/metrics"
                "?get=busyTimeMsPerSecond,backPressuredTimeMsPerSecond&agg=max",
            )
            m = {g["id"]: g.get("max") for g in got}
            busy = float(m.get("busyTimeMsPerSecond") or 0)
            out["vertices"].append(
                {
                    "name": v["name"][:120],
                    "busy_ms_per_s": busy,
                    "backpressured_ms_per_s": m.get("backPressuredTimeMsPerSecond"),
                }
            )
            if busy > most:
                busiest, most = v["id"], busy
        url = f"/jobs/{job_id}/vertices/{busiest}/flamegraph?type=on_cpu"
        cluster.rest_get(plat, url)  # the first request starts the sampling
        time.sleep(6)
        tree = cluster.rest_get(plat, url).get("data", {})
        inclusive: dict[str, int] = {}

        def walk(n: dict[str, Any]) -> None:
            name = str(n.get("name", "?"))
            inclusive[name] = inclusive.get(name, 0) + int(n.get("value", 0))
            for c in n.get("children", []):
                walk(c)

        walk(tree)
        total = max(int(tree.get("value", 0)), 1)
        hot = sorted(
            (
                (v, k)
                for k, v in inclusive.items()
                if any(
                    w in k
                    for w in (
                        "flink.table",
                        "flink.cep",
                        "rocksdb",
                        "flink.runtime.state",
                        "flink.python",
                        "jackson",
                        "jsonpath",
                        "regex",
                    )
                )
            ),
            reverse=True,
        )[:25]
        out["busiest_frames_share"] = [(round(v / total, 3), k[:140]) for v, k in hot]
    except Exception as exc:
        out["error"] = str(exc)[:300]
    return out


def _checkpoints(plat: PlatformSettings, job_id: str) -> dict[str, Any]:
    try:
        cp = cluster.rest_get(plat, f"/jobs/{job_id}/checkpoints")
    except Exception:
        return {}
    s = cp.get("summary", {}).get("end_to_end_duration", {})
    return {
        "completed": cp.get("counts", {}).get("completed"),
        "duration_ms_p50": s.get("p50"),
        "duration_ms_max": s.get("max"),
    }
