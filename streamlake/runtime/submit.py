"""Submission to the standalone cluster (`flink run -py`) and the Flink SQL client."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.error
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jobs import catalog
from streamlake.compile import sqlfile
from streamlake.config import paths
from streamlake.config.settings import PlatformSettings
from streamlake.runtime import flinkenv
from streamlake.stack import control as stack

_JOB_ID = re.compile(r"JobID ([0-9a-f]{32})")
_CREATE_TABLE = re.compile(r"CREATE\s+(?:TEMPORARY\s+)?TABLE\s+(`?[A-Za-z0-9_]+`?)", re.IGNORECASE)


def check_single_writers(
    job: catalog.SqlJob, platform: PlatformSettings, parallelism: int | None
) -> None:
    """A sink with the 'fixed' partitioner (Silver) promises one writer per partition: its topic
    needs at least as many partitions as the job has subtasks (the watermark its rows carry is
    only a bound when one writer writes each partition)."""
    from connectors import kafka

    n = parallelism or platform.flink.parallelism
    fixed = [t for spec in job.tables.values() if spec.partitioner == "fixed" for t in spec.topics]
    if not fixed:
        return
    md = kafka.admin(platform.kafka.bootstrap).list_topics(timeout=30)
    for topic in fixed:
        t = md.topics.get(topic)
        if t is not None and not t.error and len(t.partitions) < n:
            raise stack.StackError(
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
    if not stack.flink_healthy(platform):
        raise stack.StackError(
            f"no healthy Flink cluster at {platform.flink.rest_url}: run `make up`"
        )
    py = paths.python_executable()
    argv = [
        stack.flink_bin("flink"),
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
    env = stack.prepare_flink(platform) if not stack.FLINK_CONF.exists() else stack.flink_env()
    out = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=300, check=False, cwd=paths.REPO
    )
    m = _JOB_ID.search(out.stdout + out.stderr)
    if out.returncode != 0 or not m:
        raise stack.StackError(
            f"flink run failed (exit {out.returncode}):\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
        )
    _record(
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


# ---------------------------------------------------------------------------------------------
# Runs and their checkpoints. Checkpoint folders are named by Flink job id, so every submission
# is recorded (job name -> job id, and how it was started) to find a job's latest checkpoint.

RUNS = paths.FLINK_STATE / "runs.jsonl"
_ALIVE = {"INITIALIZING", "CREATED", "RUNNING", "FAILING", "CANCELLING", "RESTARTING"}
_ALIVE |= {"SUSPENDED", "RECONCILING"}


def _record(entry: dict[str, object]) -> None:
    RUNS.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"at": datetime.now(UTC).isoformat(timespec="seconds"), **entry})
    with RUNS.open("a") as f:
        f.write(line + "\n")


def _entries() -> list[dict[str, object]]:
    try:
        text = RUNS.read_text()
    except OSError:
        return []
    return [json.loads(ln) for ln in text.splitlines() if ln.strip()]


def runs_of(job_name: str) -> list[dict[str, object]]:
    """The recorded submissions of a job, newest first."""
    return [e for e in reversed(_entries()) if e.get("job") == job_name]


def completed_checkpoints(job_id: str) -> list[Path]:
    """The job's completed checkpoints (chk-<n> folders holding a _metadata file), oldest first."""
    folder = stack.CHECKPOINTS / job_id
    found = []
    for d in folder.glob("chk-*") if folder.is_dir() else []:
        n = d.name.removeprefix("chk-")
        if n.isdigit() and (d / "_metadata").is_file():
            found.append((int(n), d))
    return [d for _n, d in sorted(found)]


def latest_checkpoint(job_name: str) -> str:
    """Where the job's latest run can be resumed from: the newest of its completed checkpoints and
    the savepoints `stop` took of it; if it completed none, what it was itself started from."""
    runs = runs_of(job_name)
    if not runs:
        raise stack.StackError(
            f"no run of {job_name} is recorded in {RUNS}: submit it first (jobs submit {job_name})"
        )
    run = runs[0]
    job_id = str(run["job_id"])
    candidates = completed_checkpoints(job_id)
    candidates += [
        Path(str(e["savepoint"]).removeprefix("file:"))
        for e in _entries()
        if e.get("stopped") == job_id and e.get("savepoint")
    ]
    candidates = [c for c in candidates if (c / "_metadata").is_file()]
    if candidates:
        return str(max(candidates, key=lambda c: (c / "_metadata").stat().st_mtime_ns))
    if run.get("savepoint"):
        return str(run["savepoint"])
    raise stack.StackError(
        f"{job_name}'s latest run (Flink job {job_id}, submitted {run.get('at')}) completed no "
        f"checkpoint under {stack.CHECKPOINTS} and was not started from one: submit it afresh"
    )


def _state_on_cluster(platform: PlatformSettings, job_id: str) -> str | None:
    """The job's state as the cluster knows it; None if it does not (e.g. a restarted JobManager)."""
    try:
        return str(stack.rest_get(platform, f"/jobs/{job_id}")["state"])
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def resumable_jobs(platform: PlatformSettings) -> list[str]:
    """Every job whose latest run the cluster does not know (lost with a JobManager) and that was
    not stopped or cancelled through this module. A job that finished or FAILED, or was cancelled
    elsewhere (the Web UI), is left alone: resume it by name if you mean to."""
    entries = _entries()
    ended = {str(e.get("stopped") or e.get("cancelled")) for e in entries if "job" not in e}
    names = list(dict.fromkeys(str(e["job"]) for e in reversed(entries) if "job" in e))
    latest = {n: str(runs_of(n)[0]["job_id"]) for n in names}
    return [
        n
        for n in names
        if latest[n] not in ended and _state_on_cluster(platform, latest[n]) is None
    ]


def resume(
    job_name: str,
    platform: PlatformSettings,
    *,
    parallelism: int | None = None,
) -> tuple[str, str]:
    """Submit a job again from its latest checkpoint (see latest_checkpoint) as it was submitted:
    with the same config folder, bounded or not, at the same parallelism unless another is given.
    Return (new Flink job id, the checkpoint's path)."""
    runs = runs_of(job_name)
    path = latest_checkpoint(job_name)
    run = runs[0]
    state = _state_on_cluster(platform, str(run["job_id"]))
    if state in _ALIVE:
        raise stack.StackError(
            f"{job_name} is still {state} as Flink job {run['job_id']}: stop or cancel it first"
        )
    conf = Path(str(run["conf"])) if run.get("conf") else None
    if conf is not None and not conf.is_dir():
        raise stack.StackError(f"{job_name} was submitted with --conf {conf}, which is gone")
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
    platform: PlatformSettings, job_id: str, target_dir: Path, timeout_s: float = 120
) -> str:
    """Stop a job with a savepoint (its Kafka transactions commit); return the savepoint path."""
    target_dir.mkdir(parents=True, exist_ok=True)
    trigger = stack.rest_post(
        platform,
        f"/jobs/{job_id}/stop",
        {"targetDirectory": target_dir.resolve().as_uri(), "drain": False},
    )["request-id"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        st = stack.rest_get(platform, f"/jobs/{job_id}/savepoints/{trigger}")
        if st["status"]["id"] == "COMPLETED":
            op = st.get("operation", {})
            if "failure-cause" in op:
                raise stack.StackError(
                    f"savepoint of {job_id} failed: {str(op['failure-cause'])[:2000]}"
                )
            wait_job(platform, job_id, {"FINISHED"}, timeout_s=timeout_s)
            _record({"stopped": job_id, "savepoint": str(op["location"])})
            return str(op["location"])
        time.sleep(0.5)
    raise TimeoutError(f"savepoint of {job_id} not done after {timeout_s:.0f}s")


def cancel_job(platform: PlatformSettings, job_id: str, timeout_s: float = 60) -> None:
    stack.rest_patch(platform, f"/jobs/{job_id}?mode=cancel")
    wait_job(platform, job_id, {"CANCELED"}, timeout_s=timeout_s)
    _record({"cancelled": job_id})


def wait_job(platform: PlatformSettings, job_id: str, until: set[str], timeout_s: float) -> str:
    """Poll the REST API until the job reaches one of `until` (or a terminal failure)."""
    deadline = time.monotonic() + timeout_s
    state = "UNKNOWN"
    while time.monotonic() < deadline:
        state = str(stack.rest_get(platform, f"/jobs/{job_id}")["state"])
        if state in until:
            return state
        if state in {"FAILED", "CANCELED"} - until:
            exc = stack.rest_get(platform, f"/jobs/{job_id}/exceptions")
            root = (exc.get("exceptionHistory", {}).get("entries") or [{}])[0]
            raise stack.StackError(
                f"job {job_id} {state}: {root.get('exceptionName', '')}\n"
                f"{str(root.get('stacktrace', ''))[:3000]}"
            )
        time.sleep(0.5)
    raise TimeoutError(f"job {job_id} still {state} after {timeout_s:.0f}s")


def sql_client_init(
    platform: PlatformSettings, conf_dir: Path | None = None, *, batch: bool = False
) -> Path:
    """Write the SQL client's init script: every job's tables, declared over their topics.

    The DDL is the jobs' own CREATE TABLE statements (one definition), rendered for querying:
    read_committed, from the earliest offset, bounded at the offsets current when a query starts.
    """
    seen: dict[str, str] = {}
    functions: dict[str, None] = {}
    for job in catalog.jobs(conf_dir).values():
        for stmt in sqlfile.split(job.render(platform, query=True)):
            if sqlfile.is_create_table(stmt):
                m = _CREATE_TABLE.search(stmt)
                assert m is not None
                seen.setdefault(m.group(1).strip("`"), stmt)
            elif sqlfile.is_create_function(stmt):
                # A table's computed column may call one (bronze_events' clock, udfs/).
                functions.setdefault(stmt)
    lines = [
        "-- Generated by `python -m jobs sql`: the platform's topics as tables.",
        "-- Queries read what is committed when they start, then finish. For a continuous",
        "-- query add /*+ OPTIONS('scan.bounded.mode'='unbounded') */ after the table name.",
        "SET 'sql-client.execution.result-mode' = 'tableau';",
        "SET 'table.local-time-zone' = 'UTC';",
        # A file run prints final results (batch over the bounded tables); the shell streams.
        f"SET 'execution.runtime-mode' = '{'batch' if batch else 'streaming'}';",
    ]
    # The project's JVM functions (udfs/), for the tables whose columns call them.
    flinkenv.job_jars()  # fails with a clear message if `make jars` has not built it
    lines.append(f"ADD JAR '{paths.UDFS_JAR}';")
    lines += [s + ";" for s in functions]
    lines += [s + ";" for s in seen.values()]
    out = paths.STACK / "sql" / "init.sql"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n\n".join(lines) + "\n")
    return out


def sql_client_argv(
    platform: PlatformSettings, file: Path | None, conf_dir: Path | None
) -> list[str]:
    init = sql_client_init(platform, conf_dir, batch=file is not None)
    argv = [stack.flink_bin("sql-client.sh"), "embedded", "-i", str(init)]
    if file is not None:
        argv += ["-f", str(file.resolve())]
    return argv


def run_sql(
    platform: PlatformSettings, file: Path | None, conf_dir: Path | None = None, **kw: Any
) -> subprocess.CompletedProcess[str] | None:
    """Open the SQL client (interactive) or run a file and return its output."""
    if not stack.flink_healthy(platform):
        raise stack.StackError(
            f"no healthy Flink cluster at {platform.flink.rest_url}: run `make up`"
        )
    argv = sql_client_argv(platform, file, conf_dir)
    env = stack.flink_env()
    if file is None:
        os.execvpe(argv[0], argv, env)  # noqa: S606 (Flink's own sql-client.sh)  # hand the terminal to the client
    return subprocess.run(
        argv, env=env, capture_output=True, text=True, check=False, cwd=paths.REPO, **kw
    )
