"""Processes the local stack owns: started by us in their own session, with pid and start time in
.stack/run/, so `down` stops exactly the processes `up` started (a recycled pid is never
signalled); ports, health waits, logs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from streamlake.config import paths


class StackError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Processes we own


@dataclass(frozen=True)
class Owned:
    name: str
    pid: int
    started: str  # /proc/<pid>/stat start time, to tell our process from a recycled pid

    @property
    def pid_file(self) -> Path:
        return pid_file(self.name)


def pid_file(name: str) -> Path:
    return paths.RUN / f"{name}.pid"


def stopped_file(name: str) -> Path:
    """Present while `name` was stopped on purpose (`stop`): the supervisor leaves it down."""
    return paths.RUN / f"{name}.stopped"


# The processes this process started and has not yet reaped, by name: the supervisor reads their
# exit status (code or signal) from here when one dies.
_children: dict[str, subprocess.Popen[bytes]] = {}


def child(name: str) -> subprocess.Popen[bytes] | None:
    return _children.get(name)


def _start_time(pid: int) -> str | None:
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime); the command name (field 2) may contain spaces, so split after ')'.
    return stat_line.rsplit(")", 1)[1].split()[19]


def owned(name: str) -> Owned | None:
    """The live process we started under `name`, or None (a stale pid file is removed)."""
    f = pid_file(name)
    if not f.exists():
        return None
    try:
        rec = json.loads(f.read_text())
        proc = Owned(name, int(rec["pid"]), str(rec["started"]))
    except (ValueError, KeyError):
        f.unlink()
        return None
    if _start_time(proc.pid) != proc.started or _is_zombie(proc.pid):
        f.unlink()
        return None
    return proc


def uptime_s(pid: int) -> float | None:
    """How long the process has been running (from /proc), or None if it is gone."""
    st = _start_time(pid)
    try:
        boot = next(
            float(ln.split()[1])
            for ln in Path("/proc/stat").read_text().splitlines()
            if ln.startswith("btime ")
        )
    except (OSError, StopIteration):
        return None
    if st is None:
        return None
    return max(0.0, time.time() - boot - int(st) / os.sysconf("SC_CLK_TCK"))


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """SIGTERM/SIGINT wait until the block is done: a process is never started without its pid
    file, so `down` (which SIGTERMs the supervisor, then reads the pid files) misses nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    sigs = (signal.SIGTERM, signal.SIGINT)
    old = {sig: signal.signal(sig, lambda n, _f: got.append(n)) for sig in sigs}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        for n in got:
            os.kill(os.getpid(), n)  # delivered now, to the handler that was in place


def spawn(name: str, argv: list[str], env: dict[str, str], log: Path, cwd: Path) -> Owned:
    log.parent.mkdir(parents=True, exist_ok=True)
    paths.RUN.mkdir(parents=True, exist_ok=True)
    with _signals_deferred():
        with log.open("ab") as out:
            p = subprocess.Popen(
                argv,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: `down` signals the group
            )
        _children[name] = p
        started = None
        for _ in range(50):
            started = _start_time(p.pid)
            if started:
                break
            time.sleep(0.01)
        if started is None:
            raise StackError(f"{name} exited at once; see {log}")
        proc = Owned(name, p.pid, started)
        proc.pid_file.write_text(json.dumps({"pid": p.pid, "started": started, "argv": argv[:3]}))
        stopped_file(name).unlink(missing_ok=True)
    return proc


def stop(name: str, timeout_s: float = 60.0, *, on_purpose: bool = True) -> bool:
    """SIGTERM the process group we started, wait, then SIGKILL. True if something was stopped.

    A stop on purpose is marked, so the supervisor leaves the process down until it is started
    again; the supervisor itself stops a process that will not become healthy with on_purpose=False.
    """
    proc = owned(name)
    if proc is None:
        return False
    if on_purpose:
        stopped_file(name).write_text(str(proc.pid))
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _start_time(proc.pid) != proc.started or _is_zombie(proc.pid):
            break
        time.sleep(0.2)
    else:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _wait_gone(proc, 10)
    proc.pid_file.unlink(missing_ok=True)
    if (p := _children.get(name)) is not None and p.pid == proc.pid:
        p.poll()  # reap it if it is ours
    return True


def _wait_gone(proc: Owned, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _start_time(proc.pid) != proc.started or _is_zombie(proc.pid):
            return
        time.sleep(0.1)


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def require_ports(ports: dict[int, str], setting_hint: str) -> None:
    for port, what in ports.items():
        if not port_free(port):
            raise StackError(
                f"port {port} ({what}) is already in use by a process this stack did not start. "
                f"Stop that process, or choose another port in {setting_hint}."
            )


def wait_for(check: Callable[[], bool], what: str, timeout_s: float, log: Path, name: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if owned(name) is None:
            raise StackError(f"{what}: the process exited during start-up; see {log}")
        if check():
            return
        time.sleep(0.25)
    raise StackError(f"{what}: not healthy after {timeout_s:.0f}s; see {log}")


def java_executable() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise StackError(
            "java not found: install a JDK 17 (apt-get install openjdk-17-jdk-headless)"
        )
    return found


# ---------------------------------------------------------------------------------------------
# The stack's components, and where each one logs

COMPONENTS = ("kafka", "flink-jobmanager", "flink-taskmanager", "loader")
SUPERVISOR = "supervisor"
# Where a component's last lines are read from when it dies.
LOG_OF = {
    "kafka": paths.LOGS / "kafka-server.log",
    "flink-jobmanager": paths.LOGS / "flink-jobmanager.out",
    "flink-taskmanager": paths.LOGS / "flink-taskmanager.out",
    "loader": paths.LOGS / "loader.log",
    SUPERVISOR: paths.LOGS / "supervisor.log",
}


def leftovers() -> list[tuple[int, str]]:
    """Live processes whose command line names this checkout's .stack folder."""
    marker = str(paths.STACK)
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmd and not _is_zombie(int(d.name)):
            found.append((int(d.name), cmd.strip()))
    return found
