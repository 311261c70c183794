"""The stack heals: a private stack (its own ports, folders and pipeline id, started with `jobs up`
like `make up`) whose processes are SIGKILLed one at a time; its supervisor starts each again and
`jobs status` says so. Checkpoints outlive a cancel, and after a JobManager restart `jobs resume`
starts a job from its latest checkpoint with exactly the output an uninterrupted run gives.

Independent of the shared stack `make test` starts: nothing here talks to its ports.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors import kafka
from jobs import demo, lake, paths, settings, stack, submit
from jobs.settings import PlatformSettings


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


def _edit(path: Path, **changes: Any) -> None:
    data = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        if isinstance(value, dict):
            data.setdefault(key, {}).update(value)
        else:
            data[key] = value
    path.write_text(yaml.safe_dump(data))


def _alive(pid: int, started: str | None) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return stat[0] != "Z" and stat[19] == started


@pytest.fixture(scope="module")
def healing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateStack]:
    base = tmp_path_factory.mktemp("heal")
    uid = uuid.uuid4().hex[:8]
    stack_dir = base / "stack"
    stack_dir.mkdir()
    (stack_dir / "jars").symlink_to(paths.JARS)  # the jars `make jars` resolved
    conf = base / "conf"
    shutil.copytree(paths.CONF_DIR, conf)
    kafka_port, controller_port, rest_port, rpc_port = free_ports(4)
    _edit(
        conf / "platform.yaml",
        pipeline_id=f"heal{uid}",
        kafka={"port": kafka_port, "controller_port": controller_port, "heap": "512m"},
        flink={
            "rest_port": rest_port,
            "rpc_port": rpc_port,
            "task_slots": 2,
            "jobmanager_memory": "1024m",
            "taskmanager_memory": "1280m",
            "checkpoint_interval_ms": 1000,
            "state_backend": "hashmap",
        },
    )
    _edit(conf / "lake.yaml", lake_root=str(base / "lake"), consumer_group=f"heal{uid}.loader")
    env = {**os.environ, "STREAMLAKE_STACK_DIR": str(stack_dir)}
    st = PrivateStack(stack_dir, conf, settings.load_platform(conf / "platform.yaml"), env, uid)
    try:
        t0 = time.monotonic()
        st.jobs("up", timeout_s=600)
        print(f"private stack up in {time.monotonic() - t0:.1f}s")
        yield st
    finally:
        started = {}
        for name in (stack.SUPERVISOR, *stack.COMPONENTS):
            f = stack_dir / "run" / f"{name}.pid"
            if f.exists():
                rec = json.loads(f.read_text())
                started[int(rec["pid"])] = str(rec["started"])
        out = st.jobs("down", timeout_s=300)
        assert "supervisor: stopped" in out
        # `down` stopped exactly what `up` (and the supervisor) started: none of it is left.
        assert not [pid for pid, t in started.items() if _alive(pid, t)], out


def test_killed_taskmanager_is_restarted_and_flink_lists_one_again(healing: PrivateStack) -> None:
    name = "flink-taskmanager"
    before = healing.watch(name)["restarts"]
    old_pid, old_ids = healing.pid(name), stack.taskmanager_ids(healing.platform)
    assert len(old_ids) == 1
    t0 = time.monotonic()
    os.kill(old_pid, signal.SIGKILL)

    wait_until("the TaskManager is restarted", lambda: healing.restarted(name, before + 1))
    t_restarted = time.monotonic() - t0
    new_ids = wait_until(
        "Flink lists exactly one TaskManager, a new one",
        lambda: (
            (ids := stack.taskmanager_ids(healing.platform))
            and len(ids) == 1
            and not ids & old_ids
            and ids
        ),
    )
    print(
        f"TaskManager: restarted after {t_restarted:.1f}s, sole TaskManager after {time.monotonic() - t0:.1f}s"
    )
    assert healing.pid(name) != old_pid and len(new_ids) == 1
    failure = healing.watch(name)["last_failure"]
    assert (failure["pid"], failure["signal"], failure["exit_code"]) == (old_pid, "SIGKILL", None)
    assert failure["log_tail"]  # the last lines of its log are kept
    status = healing.status_of(name)
    assert status[0].split()[:2] == [name, "up"] and f"restarts={before + 1}" in status[0]
    assert "killed by SIGKILL" in status[1] and f"pid {old_pid}" in status[1]


def test_killed_broker_is_restarted_and_serves_clients_again(healing: PrivateStack) -> None:
    name = "kafka"
    before = healing.watch(name)["restarts"]
    old_pid = healing.pid(name)
    t0 = time.monotonic()
    os.kill(old_pid, signal.SIGKILL)

    wait_until("the broker is restarted", lambda: healing.restarted(name, before + 1))
    print(f"broker: restarted and answering after {time.monotonic() - t0:.1f}s")
    bootstrap = healing.platform.kafka.bootstrap
    topic = f"heal_probe_{healing.uid}"
    kafka.create_topics(bootstrap, [topic], partitions=1)
    try:
        kafka.produce(bootstrap, topic, [(b"k", b"after the restart")])
        got = list(kafka.read_committed(bootstrap, topic, group_id=f"probe-{healing.uid}"))
        assert got == [(b"k", b"after the restart")]
    finally:
        kafka.delete_topics(bootstrap, [topic])
    failure = healing.watch(name)["last_failure"]
    assert (failure["pid"], failure["signal"]) == (old_pid, "SIGKILL")
    status = healing.status_of(name)
    assert status[0].split()[:2] == [name, "up"] and f"restarts={before + 1}" in status[0]
    assert "killed by SIGKILL" in status[1]


def test_killed_loader_is_restarted_and_lands_records_again(healing: PrivateStack) -> None:
    name = "loader"
    _settings, sinks = lake.all_sinks(healing.conf)
    bronze = next(s for s in sinks if s.table == "bronze_events")
    bootstrap = healing.platform.kafka.bootstrap
    # Created before the restart, so the new loader subscribes to an existing topic.
    kafka.create_topics(bootstrap, [bronze.topics[0]], partitions=1)
    before = healing.watch(name)["restarts"]
    old_pid = healing.pid(name)
    t0 = time.monotonic()
    os.kill(old_pid, signal.SIGKILL)

    wait_until("the loader is restarted", lambda: healing.restarted(name, before + 1))
    print(f"loader: restarted and subscribed after {time.monotonic() - t0:.1f}s")
    rows_before = (lake.table_stats(bronze) or {"rows": 0})["rows"]
    kafka.produce(bootstrap, bronze.topics[0], [(None, b'{"landed": "after the restart"}')])
    wait_until(
        "the restarted loader lands a new Bronze record in Delta",
        lambda: (lake.table_stats(bronze) or {"rows": 0})["rows"] == rows_before + 1,
    )
    failure = healing.watch(name)["last_failure"]
    assert (failure["pid"], failure["signal"]) == (old_pid, "SIGKILL")
    status = healing.status_of(name)
    assert status[0].split()[:2] == [name, "up"] and f"restarts={before + 1}" in status[0]
    assert "killed by SIGKILL" in status[1]


def _submitted_id(out: str) -> str:
    m = re.search(r"Flink job ([0-9a-f]{32})", out)
    assert m, out
    return m.group(1)


def _completed_checkpoints(platform: PlatformSettings, job_id: str) -> int:
    try:
        return int(stack.rest_get(platform, f"/jobs/{job_id}/checkpoints")["counts"]["completed"])
    except (OSError, KeyError, ValueError):  # not scheduled yet
        return 0


def test_cancelled_job_keeps_its_latest_checkpoint(healing: PrivateStack) -> None:
    bootstrap = healing.platform.kafka.bootstrap
    src, dst = f"bronze_demo_events_c{healing.uid}", f"gold_demo_counts_c{healing.uid}"
    kafka.create_topics(bootstrap, [src, dst], partitions=3)
    try:
        kafka.produce_json(bootstrap, src, demo.sample_events(seed=2, seconds=5), key="event_key")
        conf = healing.job_conf(input_topic=src, output_topic=dst)
        job_id = _submitted_id(healing.jobs("submit", "demo_event_counts", conf=conf))
        wait_until(
            "two completed checkpoints",
            lambda: _completed_checkpoints(healing.platform, job_id) >= 2,
        )
        stack.rest_patch(healing.platform, f"/jobs/{job_id}?mode=cancel")
        submit.wait_job(healing.platform, job_id, {"CANCELED"}, timeout_s=60)
        latest = stack.rest_get(healing.platform, f"/jobs/{job_id}/checkpoints")["latest"]
        path = str(latest["completed"]["external_path"]).removeprefix("file:")
        assert Path(path).parent.parent == healing.dir / "flink" / "checkpoints"
        assert Path(path).parent.name == job_id
        # Retained on cancel (the default would have deleted it with the job).
        assert (Path(path) / "_metadata").is_file()
    finally:
        kafka.delete_topics(bootstrap, [src, dst])


def test_job_resumes_from_its_latest_checkpoint_after_jobmanager_restart(
    healing: PrivateStack,
) -> None:
    bootstrap, platform = healing.platform.kafka.bootstrap, healing.platform
    src, dst = f"bronze_demo_events_r{healing.uid}", f"gold_demo_counts_r{healing.uid}"
    kafka.create_topics(bootstrap, [src, dst], partitions=3)
    new_id = None
    try:
        # 30 s of event time before the JobManager dies, the next 30 s after the job resumed.
        first = demo.sample_events(seed=3, seconds=30, keys=3)
        later = [
            {**e, "event_time_ms": e["event_time_ms"] + 30_000}
            for e in demo.sample_events(seed=4, seconds=30, keys=3)
        ]
        kafka.produce_json(bootstrap, src, first, key="event_key")
        conf = healing.job_conf(input_topic=src, output_topic=dst)
        old_id = _submitted_id(healing.jobs("submit", "demo_event_counts", conf=conf))
        committed = wait_until(
            "some windows are committed before the kill",
            lambda: kafka.read_committed_json(bootstrap, dst, group_id=f"r-{uuid.uuid4().hex}"),
        )
        restarts = healing.watch("flink-jobmanager")["restarts"]
        t0 = time.monotonic()
        os.kill(healing.pid("flink-jobmanager"), signal.SIGKILL)

        wait_until(
            "the JobManager is restarted",
            lambda: healing.restarted("flink-jobmanager", restarts + 1),
        )
        wait_until(
            "the new JobManager has a TaskManager with a free slot",
            lambda: (
                stack.flink_healthy(platform)
                and stack.rest_get(platform, "/overview")["slots-available"] >= 1
            ),
        )
        t_cluster = time.monotonic() - t0
        assert stack.rest_get(platform, "/jobs/overview")["jobs"] == []  # no HA: jobs are lost
        out = healing.jobs("resume", "--all", conf=conf)  # the lost job, and only it
        assert out.count("resumed ") == 1, out
        m = re.search(r"resumed demo_event_counts from (\S+): Flink job ([0-9a-f]{32})", out)
        assert m, out
        path, new_id = Path(m.group(1)), m.group(2)
        assert path.parent.name == old_id and path.name.startswith("chk-"), path
        print(
            f"JobManager: cluster back after {t_cluster:.1f}s, job resumed (submitted) after "
            f"{time.monotonic() - t0:.1f}s, from {path.name}; {len(committed)} windows committed "
            "before the kill"
        )
        assert submit.wait_job(platform, new_id, {"RUNNING"}, timeout_s=120) == "RUNNING"

        kafka.produce_json(bootstrap, src, later, key="event_key")
        # One event far ahead on every partition moves each partition's watermark past the
        # last window; its own window never fires.
        flush = json.dumps(
            {"event_id": "flush", "event_key": "flush", "event_time_ms": demo.BASE_MS + 600_000}
        ).encode()
        kafka.produce(bootstrap, src, [(b"flush", flush)] * 3, partition_of={0: 0, 1: 1, 2: 2})
        want = sorted(
            (start, key, n)
            for (start, key), n in demo.expected_counts(first + later, 10_000).items()
        )

        def output() -> list[tuple[str, str, int]]:
            rows = kafka.read_committed_json(bootstrap, dst, group_id=f"r-{uuid.uuid4().hex}")
            return sorted((r["window_start"][:19], r["event_key"], r["count_events"]) for r in rows)

        wait_until(
            "the resumed job's output reaches the last window", lambda: len(output()) >= len(want)
        )
        # Exactly the counts of an uninterrupted run: nothing lost, nothing counted twice.
        assert output() == want
    finally:
        if new_id is not None:
            stack.rest_patch(platform, f"/jobs/{new_id}?mode=cancel")
            submit.wait_job(platform, new_id, {"CANCELED"}, timeout_s=60)
        kafka.delete_topics(bootstrap, [src, dst])
