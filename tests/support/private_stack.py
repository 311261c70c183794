"""A private stack for tests that kill its processes: its own ports, folders, pipeline id and
config, started with `jobs up` like `make up` and stopped with `jobs down`, independent of the
shared stack `make test` starts (nothing here talks to its ports)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from streamlake.config import paths, settings
from streamlake.config.settings import PlatformSettings
from streamlake.stack import processes


def wait_until(what: str, check: Callable[[], Any], timeout_s: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:.0f}s: {what}")
        time.sleep(0.25)


def free_ports(n: int) -> list[int]:
    with ExitStack() as es:
        socks = [es.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


@dataclass
class PrivateStack:
    dir: Path  # STREAMLAKE_STACK_DIR
    conf: Path
    platform: PlatformSettings
    env: dict[str, str]
    uid: str

    def jobs(self, *args: str, conf: Path | None = None, timeout_s: float = 300) -> str:
        """`python -m jobs --conf CONF ARGS` on this stack; its stdout (fails on a non-zero exit)."""
        res = subprocess.run(
            [sys.executable, "-m", "jobs", "--conf", str(conf or self.conf), *args],
            env=self.env,
            cwd=paths.REPO,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        assert res.returncode == 0, (
            f"jobs {' '.join(args)}: {res.stdout[-3000:]}{res.stderr[-3000:]}"
        )
        return res.stdout

    def pid(self, name: str) -> int:
        return int(json.loads((self.dir / "run" / f"{name}.pid").read_text())["pid"])

    def pid_or_none(self, name: str) -> int | None:
        """The pid of a process of the stack, None while it is down (no pid file)."""
        try:
            return self.pid(name)
        except FileNotFoundError:
            return None

    def watch(self, name: str) -> dict[str, Any]:
        state = json.loads((self.dir / "run" / "supervisor.json").read_text())
        return dict(state["watching"][name])

    def status_of(self, name: str) -> list[str]:
        """`jobs status` lines about one process: its own line and the indented ones below it."""
        lines = self.jobs("status").splitlines()
        i = next(i for i, ln in enumerate(lines) if ln.split()[:1] == [name])
        block = [lines[i]]
        for ln in lines[i + 1 :]:
            if not ln.startswith(" "):
                break
            block.append(ln)
        return block

    def restarted(self, name: str, restarts: int) -> bool:
        w = self.watch(name)
        return bool(w["restarts"] == restarts and w["state"] == "up")

    def job_conf(self, **job: str) -> Path:
        """A copy of this stack's config whose demo job reads and writes the given topics."""
        d = self.conf.parent / f"conf-{uuid.uuid4().hex[:6]}"
        shutil.copytree(self.conf, d)
        f = d / "jobs" / "demo_event_counts.yaml"
        f.write_text(yaml.safe_dump({**yaml.safe_load(f.read_text()), **job}))
        return d


def edit_yaml(path: Path, **changes: Any) -> None:
    data = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        if isinstance(value, dict):
            data.setdefault(key, {}).update(value)
        else:
            data[key] = value
    path.write_text(yaml.safe_dump(data))


def alive(pid: int, started: str | None) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return stat[0] != "Z" and stat[19] == started


@contextmanager
def private_stack(
    base: Path,
    name: str,
    *,
    conf: Path | None = None,
    flink: dict[str, Any] | None = None,
    platform: dict[str, Any] | None = None,
) -> Iterator[PrivateStack]:
    """`jobs up` a stack under `base` with a copy of `conf` (conf/ by default) on free ports;
    `jobs down` it on exit and check that none of its processes is left."""
    uid = uuid.uuid4().hex[:8]
    stack_dir = base / "stack"
    stack_dir.mkdir(parents=True)
    (stack_dir / "jars").symlink_to(paths.JARS)  # the jars `make jars` resolved
    conf_dir = base / "conf"
    shutil.copytree(conf or paths.CONF_DIR, conf_dir)
    kafka_port, controller_port, rest_port, rpc_port = free_ports(4)
    edit_yaml(
        conf_dir / "platform.yaml",
        pipeline_id=f"{name}{uid}",
        kafka={"port": kafka_port, "controller_port": controller_port, "heap": "512m"},
        flink={
            "rest_port": rest_port,
            "rpc_port": rpc_port,
            "task_slots": 2,
            "jobmanager_memory": "1024m",
            "taskmanager_memory": "1280m",
            "checkpoint_interval_ms": 1000,
            "state_backend": "hashmap",
            **(flink or {}),
        },
        **(platform or {}),
    )
    edit_yaml(
        conf_dir / "lake.yaml", lake_root=str(base / "lake"), consumer_group=f"{name}{uid}.loader"
    )
    env = {**os.environ, "STREAMLAKE_STACK_DIR": str(stack_dir)}
    st = PrivateStack(
        stack_dir, conf_dir, settings.load_platform(conf_dir / "platform.yaml"), env, uid
    )
    try:
        t0 = time.monotonic()
        st.jobs("up", timeout_s=600)
        print(f"private stack up in {time.monotonic() - t0:.1f}s")
        yield st
    finally:
        started = {}
        for proc in (processes.SUPERVISOR, *processes.COMPONENTS):
            f = stack_dir / "run" / f"{proc}.pid"
            if f.exists():
                rec = json.loads(f.read_text())
                started[int(rec["pid"])] = str(rec["started"])
        out = st.jobs("down", timeout_s=300)
        assert "supervisor: stopped" in out
        # `down` stopped exactly what `up` (and the supervisor) started: none of it is left.
        assert not [pid for pid, t in started.items() if alive(pid, t)], out
