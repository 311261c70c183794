"""The stack's supervisor: started by `jobs up`, stopped (first) by `jobs down`.

It starts the broker, the Flink JobManager and TaskManager and the Delta loader, so it is their
parent and knows how each one ended, then watches them: one that dies is started again after a
back-off (platform.yaml `supervisor:`: 1 s, doubling to 30 s for failures in a row, back to 1 s once
the process has stayed up for a minute). Each component's restarts and last failure (exit code or
signal, when, how long it had been up, the last lines of its log) are kept in
.stack/run/supervisor.json, which `jobs status` reads. It is recorded in .stack/run/ like the
processes it watches, so `down` stops exactly what `up` started.

A process stopped on purpose (`processes.stop`) is left down. A JobManager started again knows no jobs
(standalone, no HA): `jobs resume JOB` starts a job again from its latest checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from streamlake.config import paths
from streamlake.config.settings import PlatformSettings
from streamlake.stack import control, processes

log = logging.getLogger("streamlake.supervisor")

STATE_FILE = paths.RUN / "supervisor.json"
POLL_S = 0.5
LOG_TAIL_LINES = 20
# Not started again while what it needs is down (it would only fail its health check).
REQUIRES = {"flink-taskmanager": "flink-jobmanager", "loader": "kafka"}


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last lines of a log file (from its last 16 KiB), each cut to 300 characters."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            data = f.read()
    except OSError:
        return []
    return [ln[:300] for ln in data.decode(errors="replace").splitlines()[-lines:]]


def describe_exit(returncode: int | None) -> tuple[int | None, str | None, str]:
    """(exit code, signal name, a sentence) for a Popen returncode (negative: killed by a signal)."""
    if returncode is None:
        return None, None, "exit status unknown (not started by this supervisor)"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return None, name, f"killed by {name}"
    return returncode, None, f"exited with code {returncode}"


@dataclass
class Watch:
    """What the supervisor knows about one component."""

    name: str
    state: str = "starting"  # starting | up | restarting | stopped
    pid: int | None = None
    restarts: int = 0
    failures_in_a_row: int = 0
    up_since: float = field(default_factory=time.monotonic)
    restart_at: float | None = None  # monotonic
    last_failure: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        nxt = None
        if self.restart_at is not None:
            nxt = datetime.fromtimestamp(
                time.time() + max(0.0, self.restart_at - time.monotonic()), tz=UTC
            ).isoformat(timespec="seconds")
        return {
            "state": self.state,
            "pid": self.pid,
            "restarts": self.restarts,
            "failures_in_a_row": self.failures_in_a_row,
            "next_restart_at": nxt,
            "last_failure": self.last_failure,
        }

    def failed(self, error: str | None = None) -> None:
        """Record how the process we last saw ended (or why it could not start)."""
        p = processes.child(self.name)
        rc = None
        if p is not None and p.pid == self.pid:
            try:
                rc = p.wait(timeout=2)
            except subprocess.TimeoutExpired:
                rc = None
        code, sig, how = describe_exit(rc)
        if error:
            how = f"{how}; {error}" if rc is not None else error
        self.last_failure = {
            "at": _now_iso(),
            "pid": self.pid,
            "exit_code": code,
            "signal": sig,
            "how": how[:2000],
            "up_for_s": round(time.monotonic() - self.up_since, 1),
            "log": str(processes.LOG_OF[self.name]),
            "log_tail": log_tail(processes.LOG_OF[self.name]),
        }
        self.failures_in_a_row += 1
        self.state = "restarting"


# ---------------------------------------------------------------------------------------------
# State file


def read_state() -> dict[str, Any]:
    try:
        data = json.loads(STATE_FILE.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_state(state: dict[str, Any], watches: dict[str, Watch]) -> None:
    out = {
        **state,
        "updated_at": _now_iso(),
        "watching": {n: w.as_json() for n, w in watches.items()},
    }
    tmp = STATE_FILE.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(out, indent=1))
    os.replace(tmp, STATE_FILE)  # readers never see half a file


# ---------------------------------------------------------------------------------------------
# The supervisor process (`python -m jobs supervise`, started by `launch`)


def _exit(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


def supervise(s: PlatformSettings, names: list[str], conf_dir: Path | None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    signal.signal(signal.SIGTERM, _exit)
    signal.signal(signal.SIGINT, _exit)
    state: dict[str, Any] = {
        "pid": os.getpid(),
        "started_at": _now_iso(),
        "phase": "starting",
        "components": names,
        "messages": [],
        "error": None,
    }
    watches = {n: Watch(n) for n in names}
    _write_state(state, watches)
    try:
        try:
            for msg in control.start_all(s, names, conf_dir):
                log.info("%s", msg)
                state["messages"].append(msg)
                _write_state(state, watches)
        except Exception as exc:
            log.exception("start-up failed")
            state["phase"], state["error"] = "failed", str(exc)
            return 1
        for w in watches.values():
            proc = processes.owned(w.name)
            w.state, w.pid = "up", proc.pid if proc else None
            w.up_since = time.monotonic() - ((processes.uptime_s(w.pid) or 0.0) if w.pid else 0.0)
        state["phase"] = "running"
        _write_state(state, watches)
        while True:
            if any([step(w, s, conf_dir, watches) for w in watches.values()]):
                _write_state(state, watches)
            time.sleep(POLL_S)
    finally:
        if state["phase"] != "failed":
            state["phase"] = "stopped"
        _write_state(state, watches)
        log.info("supervisor %s", state["phase"])


def step(w: Watch, s: PlatformSettings, conf_dir: Path | None, watches: dict[str, Watch]) -> bool:
    """Look at one component once; restart it when its back-off is over. True if anything changed."""
    now = time.monotonic()
    proc = processes.owned(w.name)
    if proc is not None:
        if w.state != "up" or w.pid != proc.pid:  # e.g. the demo started the loader itself
            w.state, w.pid, w.restart_at = "up", proc.pid, None
            w.up_since = now - (processes.uptime_s(proc.pid) or 0.0)
            return True
        if w.failures_in_a_row and now - w.up_since >= _ms(s.supervisor.reset_after) / 1000:
            w.failures_in_a_row = 0
            return True
        return False
    if processes.stopped_file(w.name).exists():  # stopped on purpose: stays down
        if w.state != "stopped":
            w.state, w.restart_at = "stopped", None
            return True
        return False
    if w.state != "restarting":  # it has just died
        w.failed()
        delay = s.supervisor.backoff_s(w.failures_in_a_row)
        w.restart_at = now + delay
        log.warning("%s (pid %s) %s; restart in %.0fs", w.name, w.pid, w.last_failure, delay)
        return True
    if w.restart_at is not None and now < w.restart_at:
        return False
    need = REQUIRES.get(w.name)
    if need in watches and processes.owned(need) is None:
        return False
    w.restarts += 1
    w.up_since = time.monotonic()
    log.info("%s: restart %d", w.name, w.restarts)
    before = processes.child(w.name)
    try:
        msg = control.start_again(w.name, s, conf_dir)
    except Exception as exc:
        p = processes.child(w.name)
        w.pid = p.pid if p is not None and p is not before else None  # None: nothing started
        w.failed(error=f"restart {w.restarts} failed: {exc}")
        processes.stop(w.name, timeout_s=30, on_purpose=False)  # alive but never healthy
        delay = s.supervisor.backoff_s(w.failures_in_a_row)
        w.restart_at = time.monotonic() + delay
        log.warning("%s: %s; next restart in %.0fs", w.name, exc, delay)
        return True
    proc = processes.owned(w.name)
    w.state, w.pid, w.restart_at = "up", proc.pid if proc else None, None
    w.up_since = time.monotonic()
    log.info("%s", msg)
    if w.name == "flink-jobmanager" and (tm := watches.get("flink-taskmanager")) is not None:
        _restart_with_jobmanager(tm)
    return True


def _restart_with_jobmanager(tm: Watch) -> None:
    """A new JobManager knows none of the old one's jobs, but the TaskManager would keep running
    their tasks in its slots and only look for the new JobManager after a missed heartbeat (50 s):
    stop it now, so that the next step starts a fresh one that registers at once."""
    if processes.owned(tm.name) is None:
        return
    processes.stop(tm.name, timeout_s=30, on_purpose=False)
    tm.last_failure = {
        "at": _now_iso(),
        "pid": tm.pid,
        "exit_code": None,
        "signal": None,
        "how": "stopped by the supervisor: the JobManager was restarted, its tasks belonged to "
        "jobs the new JobManager does not know",
        "up_for_s": round(time.monotonic() - tm.up_since, 1),
        "log": str(processes.LOG_OF[tm.name]),
        "log_tail": log_tail(processes.LOG_OF[tm.name]),
    }
    tm.state, tm.restart_at = "restarting", time.monotonic()


def _ms(duration: str) -> int:
    from streamlake.config.registry import duration_ms

    return duration_ms(duration)


# ---------------------------------------------------------------------------------------------
# `jobs up` and `jobs status`


def launch(
    s: PlatformSettings, names: list[str], conf_dir: Path | None, timeout_s: float = 600
) -> list[str]:
    """Start the supervisor, which starts the stack; return once it is healthy (or raise why not).

    With a supervisor already running, `up` reports what it watches (and starts a new one, which
    keeps what runs, if more components are asked for)."""
    current = processes.owned(processes.SUPERVISOR)
    if current is not None:
        st = read_state()
        have = [str(n) for n in st.get("components", [])]
        if (
            st.get("pid") == current.pid
            and st.get("phase") == "running"
            and set(names) <= set(have)
        ):
            return [f"supervisor: already running (pid {current.pid})"] + [
                f"{n}: {'running' if processes.owned(n) else 'down, being restarted'}" for n in have
            ]
        processes.stop(processes.SUPERVISOR)
        names = [n for n in processes.COMPONENTS if n in {*names, *have}]
    STATE_FILE.parent.mkdir(parents=True, exist_ok=True)
    STATE_FILE.unlink(missing_ok=True)
    conf = ["--conf", str(conf_dir.resolve())] if conf_dir else []
    argv = [paths.python_executable(), "-m", "jobs", *conf, "supervise", ",".join(names)]
    out = processes.LOG_OF[processes.SUPERVISOR]
    proc = processes.spawn(processes.SUPERVISOR, argv, dict(os.environ), out, paths.REPO)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        st = read_state()
        if st.get("pid") == proc.pid and st.get("phase") == "running":
            return [
                *st["messages"],
                f"supervisor: up (pid {proc.pid}), restarts what dies; state in {STATE_FILE}",
            ]
        if st.get("pid") == proc.pid and st.get("phase") == "failed":
            raise processes.StackError(str(st.get("error")))
        if processes.owned(processes.SUPERVISOR) is None:
            raise processes.StackError(
                f"the supervisor exited during start-up; last lines of {out}:\n"
                + "\n".join(log_tail(out, 15))
            )
        time.sleep(0.25)
    raise processes.StackError(f"the stack is not up after {timeout_s:.0f}s; see {out}")


def process_lines() -> list[str]:
    """Per process: up/down, pid, restarts and the last failure (with its log's last lines)."""
    sup = processes.owned(processes.SUPERVISOR)
    st = read_state()
    watching: dict[str, Any] = st.get("watching", {}) if st.get("pid") else {}
    if sup is not None:
        lines = [f"{'supervisor':18} up    pid {sup.pid:<8} state in {STATE_FILE}"]
    else:
        lines = [f"{'supervisor':18} down  nothing restarts a process that dies (`make up`)"]
        if st.get("phase") == "stopped":
            watching = {}  # `down` ran: its counts belong to the last run
    for name in processes.COMPONENTS:
        proc = processes.owned(name)
        w = watching.get(name, {})
        line = f"{name:18} {'up' if proc else 'down':5} {'pid ' + str(proc.pid) if proc else '':12}"
        if w:
            line += f" restarts={w['restarts']}"
            if not proc and w["state"] == "restarting" and w.get("next_restart_at"):
                line += f"  (restart due {w['next_restart_at']})"
            if not proc and w["state"] == "stopped":
                line += "  (stopped on purpose)"
        lines.append(line.rstrip())
        lf = w.get("last_failure")
        if lf:
            lines.append(
                f"{'':18} last failure {lf['at']}: {lf['how']} (pid {lf['pid']}, "
                f"up {lf['up_for_s']}s)"
            )
            tail = lf.get("log_tail") or []
            if tail:
                lines.append(f"{'':18} last lines of {lf['log']}:")
                lines += [f"{'':20}{ln[:200]}" for ln in tail[-3:]]
    return lines


def main(s: PlatformSettings, names: str, conf_dir: Path | None) -> int:
    wanted = [n for n in names.split(",") if n]
    unknown = set(wanted) - set(processes.COMPONENTS)
    if unknown:
        print(f"error: unknown components {sorted(unknown)}", file=sys.stderr)
        return 2
    return supervise(s, wanted, conf_dir)
