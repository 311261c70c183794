"""Submission to the standalone cluster (`flink run -py`), and a submitted job's life through
Flink REST: resume from a checkpoint, stop with a savepoint, cancel, wait."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

from jobs import catalog
from streamlake.config import paths
from streamlake.config.settings import PlatformSettings
from streamlake.runtime import runs
from streamlake.stack import cluster, processes

_JOB_ID = re.compile(r"JobID ([0-9a-f]{32})")


def check_single_writers(
    job: catalog.SqlJob, platform: PlatformSettings, parallelism: int | None
) -> None:
    """A sink with the 'owned' partitioner (Silver) promises one writer per partition: its topic
    needs at least as many partitions as the job has subtasks (the watermark its rows carry is
    only a bound when one writer writes each partition)."""
    from connectors import kafka

    n = parallelism or platform.flink.parallelism
    fixed = [t for spec in job.tables.values() if spec.partitioner == "owned" for t in spec.topics]
    if not fixed:
        return
    md = kafka.admin(platform.kafka.bootstrap).list_topics(timeout=30)
    for topic in fixed:
        t = md.topics.get(topic)
        if t is not None and not t.error and len(t.partitions) < n:
            raise processes.StackError(
                f"{job.name}: topic {topic} has {len(t.partitions)} partition(s), fewer than the "
                f"job's parallelism {n}: each partition must have one writer (add partitions or "
                "lower the parallelism)"
            )


def submit(
    job_name: str,
    platform: PlatformSettings,
    *,
    bounded: bool = False,
    parallelism: int | None = None,
    conf_dir: Path | None = None,
    savepoint: str | None = None,
) -> str:
    """Submit a job detached with `flink run -py`; return the Flink job id.

    With `savepoint`, the job starts from that savepoint (its parallelism may differ).
    """
    # Fail fast, before starting a JVM, on bad config.
    if job_name in catalog.STREAM_JOBS:
        from jobs import device_anomaly

        device_anomaly.load(conf_dir or paths.CONF_DIR)
    else:
        check_single_writers(catalog.get(job_name, conf_dir), platform, parallelism)
    if not cluster.flink_healthy(platform):
        raise processes.StackError(
            f"no healthy Flink cluster at {platform.flink.rest_url}: run `make up`"
        )
    py = paths.python_executable()
    argv = [
        cluster.flink_bin("flink"),
        "run",
        "--detached",
        *(["--fromSavepoint", savepoint] if savepoint else []),
        "-py",
        str(paths.REPO / "streamlake" / "runtime" / "flink_entry.py"),
        "-pyexec",
        py,
        "-pyclientexec",
        py,
        # The first positional ends flink's own options; everything after goes to the script.
        job_name,
    ]
    if conf_dir:
        argv += ["--conf", str(conf_dir)]
    if bounded:
        argv.append("--bounded")
    if parallelism:
        argv += ["--parallelism", str(parallelism)]
    env = (
        cluster.prepare_flink(platform) if not cluster.FLINK_CONF.exists() else cluster.flink_env()
    )
    out = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=300, check=False, cwd=paths.REPO
    )
    m = _JOB_ID.search(out.stdout + out.stderr)
    if out.returncode != 0 or not m:
        raise processes.StackError(
            f"flink run failed (exit {out.returncode}):\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
        )
    runs.record(
        {
            "job": job_name,
            "job_id": m.group(1),
            "conf": str(conf_dir.resolve()) if conf_dir else None,
            "bounded": bounded,
            "parallelism": parallelism,
            "savepoint": savepoint,
        }
    )
    return m.group(1)


def resume(
    job_name: str,
    platform: PlatformSettings,
    *,
    parallelism: int | None = None,
) -> tuple[str, str]:
    """Submit a job again from its latest checkpoint (see latest_checkpoint) as it was submitted:
    with the same config folder, bounded or not, at the same parallelism unless another is given.
    Return (new Flink job id, the checkpoint's path)."""
    recorded = runs.runs_of(job_name)
    path = runs.latest_checkpoint(job_name)
    run = recorded[0]
    state = runs.state_on_cluster(platform, str(run["job_id"]))
    if state in runs.ALIVE:
        raise processes.StackError(
            f"{job_name} is still {state} as Flink job {run['job_id']}: stop or cancel it first"
        )
    conf = Path(str(run["conf"])) if run.get("conf") else None
    if conf is not None and not conf.is_dir():
        raise processes.StackError(f"{job_name} was submitted with --conf {conf}, which is gone")
    recorded_p = run.get("parallelism")
    job_id = submit(
        job_name,
        platform,
        bounded=bool(run.get("bounded")),
        parallelism=parallelism or (int(str(recorded_p)) if recorded_p else None),
        conf_dir=conf,
        savepoint=path,
    )
    return job_id, path


def stop_with_savepoint(
    platform: PlatformSettings,
    job_id: str,
    target_dir: Path,
    timeout_s: float = 120,
    *,
    drain: bool = False,
) -> str:
    """Stop a job with a savepoint (its Kafka transactions commit); return the savepoint path.

    With `drain`, Flink first sends the end-of-input watermark through the job, as at the end of
    a bounded run: every window and event-time timer fires and is written before it stops."""
    target_dir.mkdir(parents=True, exist_ok=True)
    trigger = cluster.rest_post(
        platform,
        f"/jobs/{job_id}/stop",
        {"targetDirectory": target_dir.resolve().as_uri(), "drain": drain},
    )["request-id"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        st = cluster.rest_get(platform, f"/jobs/{job_id}/savepoints/{trigger}")
        if st["status"]["id"] == "COMPLETED":
            op = st.get("operation", {})
            if "failure-cause" in op:
                raise processes.StackError(
                    f"savepoint of {job_id} failed: {str(op['failure-cause'])[:2000]}"
                )
            wait_job(platform, job_id, {"FINISHED"}, timeout_s=timeout_s)
            runs.record({"stopped": job_id, "savepoint": str(op["location"])})
            return str(op["location"])
        time.sleep(0.5)
    raise TimeoutError(f"savepoint of {job_id} not done after {timeout_s:.0f}s")


def cancel_job(platform: PlatformSettings, job_id: str, timeout_s: float = 60) -> None:
    cluster.rest_patch(platform, f"/jobs/{job_id}?mode=cancel")
    wait_job(platform, job_id, {"CANCELED"}, timeout_s=timeout_s)
    runs.record({"cancelled": job_id})


def wait_job(platform: PlatformSettings, job_id: str, until: set[str], timeout_s: float) -> str:
    """Poll the REST API until the job reaches one of `until` (or a terminal failure)."""
    deadline = time.monotonic() + timeout_s
    state = "UNKNOWN"
    while time.monotonic() < deadline:
        state = str(cluster.rest_get(platform, f"/jobs/{job_id}")["state"])
        if state in until:
            return state
        if state in {"FAILED", "CANCELED"} - until:
            exc = cluster.rest_get(platform, f"/jobs/{job_id}/exceptions")
            root = (exc.get("exceptionHistory", {}).get("entries") or [{}])[0]
            raise processes.StackError(
                f"job {job_id} {state}: {root.get('exceptionName', '')}\n"
                f"{str(root.get('stacktrace', ''))[:3000]}"
            )
        time.sleep(0.5)
    raise TimeoutError(f"job {job_id} still {state} after {timeout_s:.0f}s")
