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
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors import kafka
from demo import events as demo_events
from streamlake.config.settings import PlatformSettings
from streamlake.lake import landing as lake
from streamlake.runtime import submit
from streamlake.stack import cluster
from tests.support.private_stack import PrivateStack, private_stack, wait_until


@pytest.fixture(scope="module")
def healing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateStack]:
    with private_stack(tmp_path_factory.mktemp("heal"), "heal") as st:
        yield st


def test_killed_taskmanager_is_restarted_and_flink_lists_one_again(healing: PrivateStack) -> None:
    name = "flink-taskmanager"
    before = healing.watch(name)["restarts"]
    old_pid, old_ids = healing.pid(name), cluster.taskmanager_ids(healing.platform)
    assert len(old_ids) == 1
    t0 = time.monotonic()
    os.kill(old_pid, signal.SIGKILL)

    wait_until("the TaskManager is restarted", lambda: healing.restarted(name, before + 1))
    t_restarted = time.monotonic() - t0
    new_ids = wait_until(
        "Flink lists exactly one TaskManager, a new one",
        lambda: (
            (ids := cluster.taskmanager_ids(healing.platform))
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
        return int(cluster.rest_get(platform, f"/jobs/{job_id}/checkpoints")["counts"]["completed"])
    except (OSError, KeyError, ValueError):  # not scheduled yet
        return 0


def test_cancelled_job_keeps_its_latest_checkpoint(healing: PrivateStack) -> None:
    bootstrap = healing.platform.kafka.bootstrap
    src, dst = f"bronze_demo_events_c{healing.uid}", f"gold_demo_counts_c{healing.uid}"
    kafka.create_topics(bootstrap, [src, dst], partitions=3)
    try:
        kafka.produce_json(
            bootstrap, src, demo_events.sample_events(seed=2, seconds=5), key="event_key"
        )
        conf = healing.job_conf(input_topic=src, output_topic=dst)
        job_id = _submitted_id(healing.jobs("submit", "demo_event_counts", conf=conf))
        wait_until(
            "two completed checkpoints",
            lambda: _completed_checkpoints(healing.platform, job_id) >= 2,
        )
        cluster.rest_patch(healing.platform, f"/jobs/{job_id}?mode=cancel")
        submit.wait_job(healing.platform, job_id, {"CANCELED"}, timeout_s=60)
        latest = cluster.rest_get(healing.platform, f"/jobs/{job_id}/checkpoints")["latest"]
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
        first = demo_events.sample_events(seed=3, seconds=30, keys=3)
        later = [
            {**e, "event_time_ms": e["event_time_ms"] + 30_000}
            for e in demo_events.sample_events(seed=4, seconds=30, keys=3)
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
                cluster.flink_healthy(platform)
                and cluster.rest_get(platform, "/overview")["slots-available"] >= 1
            ),
        )
        t_cluster = time.monotonic() - t0
        assert cluster.rest_get(platform, "/jobs/overview")["jobs"] == []  # no HA: jobs are lost
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
            {
                "event_id": "flush",
                "event_key": "flush",
                "event_time_ms": demo_events.BASE_MS + 600_000,
            }
        ).encode()
        kafka.produce(bootstrap, src, [(b"flush", flush)] * 3, partition_of={0: 0, 1: 1, 2: 2})
        want = sorted(
            (start, key, n)
            for (start, key), n in demo_events.expected_counts(first + later, 10_000).items()
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
            cluster.rest_patch(platform, f"/jobs/{new_id}?mode=cancel")
            submit.wait_job(platform, new_id, {"CANCELED"}, timeout_s=60)
        kafka.delete_topics(bootstrap, [src, dst])
