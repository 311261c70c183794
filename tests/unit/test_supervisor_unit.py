"""The supervisor's back-off, restarts and exit reports, and how `resume` picks its checkpoint:
with `sleep` standing in for a component and checkpoint folders laid out by hand (no JVM)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from streamlake.config import loader as config
from streamlake.config import settings
from streamlake.config.settings import PlatformSettings, SupervisorSettings
from streamlake.runtime import runs
from streamlake.stack import cluster, control, processes, supervisor


def test_backoff_doubles_from_one_second_to_thirty() -> None:
    s = settings.load_platform().supervisor
    assert [s.backoff_s(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_a_backoff_that_starts_above_its_maximum_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "platform.yaml"
    p.write_text("supervisor: {backoff_initial: 1min, backoff_max: 30s}\n")
    with pytest.raises(config.ConfigError) as e:
        settings.load_platform(p)
    assert e.value.key_path == "supervisor"


def test_exit_status_is_told_as_code_or_signal() -> None:
    assert supervisor.describe_exit(-9) == (None, "SIGKILL", "killed by SIGKILL")
    assert supervisor.describe_exit(1) == (1, None, "exited with code 1")
    assert supervisor.describe_exit(None)[:2] == (None, None)


def test_checkpoints_are_retained_on_cancel_in_the_checkpoint_folder() -> None:
    c = cluster.flink_config(settings.load_platform())
    assert (
        c["execution.checkpointing.externalized-checkpoint-retention"] == "RETAIN_ON_CANCELLATION"
    )
    assert c["execution.checkpointing.dir"] == cluster.CHECKPOINTS.as_uri()


def _step_until(
    w: supervisor.Watch, s: PlatformSettings, what: str, timeout_s: float = 20
) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        supervisor.step(w, s, None, {w.name: w})
        if what == w.state:
            return time.monotonic()
        time.sleep(0.05)
    raise AssertionError(f"{w.name} not {what} after {timeout_s}s: {w}")


def test_killed_process_is_restarted_after_a_doubling_backoff_and_a_stopped_one_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"unit-sup-{time.monotonic_ns()}"
    log = tmp_path / "p.log"
    monkeypatch.setitem(processes.LOG_OF, name, log)

    def start(_name: str, _s: object, _conf: object) -> str:
        log.write_text("a line it wrote\n")
        processes.spawn(name, ["sleep", "300"], {"PATH": "/usr/bin:/bin"}, log, tmp_path)
        return "started"

    monkeypatch.setattr(control, "start_again", start)
    s = PlatformSettings(
        supervisor=SupervisorSettings(
            backoff_initial="300ms", backoff_max="600ms", reset_after="1s"
        )
    )
    start(name, s, None)
    first = processes.owned(name)
    assert first is not None
    w = supervisor.Watch(name, state="up", pid=first.pid)
    try:
        os.kill(first.pid, signal.SIGKILL)
        died = _step_until(w, s, "restarting")
        assert w.last_failure is not None
        assert (w.last_failure["pid"], w.last_failure["signal"]) == (first.pid, "SIGKILL")
        assert w.last_failure["log_tail"] == ["a line it wrote"]
        assert _step_until(w, s, "up") - died >= 0.3 and w.restarts == 1
        second = processes.owned(name)
        assert second is not None and second.pid != first.pid

        # Dead again before reset_after: the back-off doubles.
        os.kill(second.pid, signal.SIGKILL)
        died = _step_until(w, s, "restarting")
        assert w.failures_in_a_row == 2
        assert _step_until(w, s, "up") - died >= 0.6 and w.restarts == 2
        # Up for reset_after: the next failure waits backoff_initial again.
        deadline = time.monotonic() + 10
        while w.failures_in_a_row and time.monotonic() < deadline:
            supervisor.step(w, s, None, {name: w})
            time.sleep(0.05)
        assert w.failures_in_a_row == 0

        # Stopped on purpose: it stays down, with no restart scheduled.
        assert processes.stop(name, timeout_s=10)
        _step_until(w, s, "stopped")
        supervisor.step(w, s, None, {name: w})
        assert (w.state, w.restart_at, w.restarts, processes.owned(name)) == (
            "stopped",
            None,
            2,
            None,
        )
    finally:
        processes.stop(name, timeout_s=10)
        processes.stopped_file(name).unlink(missing_ok=True)


def _chk(root: Path, job_id: str, n: int, mtime: float, complete: bool = True) -> Path:
    d = root / job_id / f"chk-{n}"
    d.mkdir(parents=True)
    if complete:
        (d / "_metadata").write_bytes(b"\x49\x60\x67\x2d")
        os.utime(d / "_metadata", (mtime, mtime))
    return d


def test_resume_picks_the_newest_completed_checkpoint_of_the_latest_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chk = tmp_path / "checkpoints"
    monkeypatch.setattr(cluster, "CHECKPOINTS", chk)
    monkeypatch.setattr(runs, "RUNS", tmp_path / "runs.jsonl")
    a1, a2, b1 = "a1" * 16, "a2" * 16, "b1" * 16

    def run(job: str, job_id: str, savepoint: str | None = None) -> None:
        runs.record({"job": job, "job_id": job_id, "conf": None, "savepoint": savepoint})

    with pytest.raises(processes.StackError, match="no run of silver is recorded"):
        runs.latest_checkpoint("silver")
    run("silver", a1)
    run("gold", b1)
    _chk(chk, a1, 2, 100)
    _chk(chk, a1, 10, 200)  # numbered past 9: not ordered as text
    _chk(chk, a1, 11, 300, complete=False)  # in progress: no _metadata
    _chk(chk, b1, 1, 900)  # another job's
    assert runs.latest_checkpoint("silver") == str(chk / a1 / "chk-10")

    # A savepoint `stop` took after the last checkpoint is newer: that one.
    sp = tmp_path / "savepoints" / "savepoint-a1"
    sp.mkdir(parents=True)
    (sp / "_metadata").write_bytes(b"x")
    os.utime(sp / "_metadata", (400, 400))
    runs.record({"stopped": a1, "savepoint": f"file:{sp}"})
    assert runs.latest_checkpoint("silver") == str(sp)

    # Resumed, and lost again before its first checkpoint: where it was started from.
    run("silver", a2, savepoint=str(sp))
    assert runs.latest_checkpoint("silver") == str(sp)
    _chk(chk, a2, 1, 500)
    assert runs.latest_checkpoint("silver") == str(chk / a2 / "chk-1")

    # A fresh run that never completed a checkpoint is not resumed from an older run's state.
    run("silver", "c1" * 16)
    with pytest.raises(processes.StackError, match="completed no checkpoint"):
        runs.latest_checkpoint("silver")
    assert [json.loads(x)["job_id"] for x in runs.RUNS.read_text().splitlines()[-1:]] == ["c1" * 16]


def test_resume_all_takes_the_jobs_a_new_jobmanager_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runs, "RUNS", tmp_path / "runs.jsonl")
    known = {"r" * 32: "RUNNING", "f" * 32: "FINISHED"}
    monkeypatch.setattr(runs, "state_on_cluster", lambda _p, jid: known.get(jid))
    for job, jid in [
        ("silver", "x" * 32),  # superseded by its next run
        ("silver", "s" * 32),  # lost
        ("gold", "r" * 32),  # still running
        ("device_anomaly", "c" * 32),  # cancelled by us, then lost
        ("demo_event_counts", "f" * 32),  # finished
        ("passthrough", "p" * 32),  # stopped with a savepoint, then lost
    ]:
        runs.record({"job": job, "job_id": jid})
    runs.record({"cancelled": "c" * 32})
    runs.record({"stopped": "p" * 32, "savepoint": "/sp"})
    assert runs.resumable_jobs(settings.load_platform()) == ["silver"]
