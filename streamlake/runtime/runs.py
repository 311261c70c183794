"""Runs and their checkpoints. Checkpoint folders are named by Flink job id, so every submission
is recorded (job name -> job id, and how it was started) to find a job's latest checkpoint."""

from __future__ import annotations

import json
import urllib.error
from datetime import UTC, datetime
from pathlib import Path

from streamlake.config import paths
from streamlake.config.settings import PlatformSettings
from streamlake.stack import cluster, processes

RUNS = paths.FLINK_STATE / "runs.jsonl"
ALIVE = {"INITIALIZING", "CREATED", "RUNNING", "FAILING", "CANCELLING", "RESTARTING"}
ALIVE |= {"SUSPENDED", "RECONCILING"}


def record(entry: dict[str, object]) -> None:
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
    folder = cluster.CHECKPOINTS / job_id
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
        raise processes.StackError(
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
    raise processes.StackError(
        f"{job_name}'s latest run (Flink job {job_id}, submitted {run.get('at')}) completed no "
        f"checkpoint under {cluster.CHECKPOINTS} and was not started from one: submit it afresh"
    )


def state_on_cluster(platform: PlatformSettings, job_id: str) -> str | None:
    """The job's state as the cluster knows it; None if it does not (e.g. a restarted JobManager)."""
    try:
        return str(cluster.rest_get(platform, f"/jobs/{job_id}")["state"])
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
        n for n in names if latest[n] not in ended and state_on_cluster(platform, latest[n]) is None
    ]
