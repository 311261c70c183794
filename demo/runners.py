"""How the demo's data goes through the jobs, on the two stacks; the checks (demo/run.py) are the
same for both.

- `Bounded` (`make demo`, the local stack): the demo starts the stack, empties its topics and
  tables, and runs each job bounded: it reads its input to the end and finishes.
- `Live` (`make compose-demo`, docker/compose.yaml): the jobs run unbounded, as the compose
  stack's `submit` service runs them, and the loader is a service of that stack. The demo produces
  its data as a backlog, then submits the jobs on it (jobs that sat idle longer than their
  `idle_timeout` before a burst would take the partitions read first for the whole stream, and
  Gold would find on-time rows behind its watermark), waits until each job has read and
  checkpointed all its input (its consumer group's committed offsets), then stops it with a
  drained savepoint: Flink sends the end-of-input watermark through it, so every window and timer
  fires as at the end of a bounded run, and the same expected figures hold. It needs a fresh stack
  whose topics exist and no job runs (`make compose-demo` makes one).

With `await_kill`, `Live` starts the jobs on half of the data, waits until the Silver job has read
and checkpointed it, prints KILL_MARKER and waits for a TaskManager to be killed (make compose-test
kills one with `docker kill`): the jobs fail, restart from their checkpoints on the TaskManager
left, and the rest of the data follows while they recover. Nothing may be lost or doubled: the
checks are the same.
"""

from __future__ import annotations

import shutil
import time
import urllib.error
from collections import defaultdict
from pathlib import Path
from typing import Any, Protocol

from connectors import kafka
from jobs import catalog
from streamlake.config import paths
from streamlake.config.settings import PlatformSettings
from streamlake.runtime import submit
from streamlake.stack import cluster, control, processes

KILL_MARKER = "== KILL A TASKMANAGER NOW"
# Topic -> (record values, the partition of each).
Batches = dict[str, tuple[list[bytes], list[int]]]


class Runner(Protocol):
    def start(self, platform: PlatformSettings) -> list[str]: ...
    def fresh(self, platform: PlatformSettings, job: catalog.SqlJob, uris: list[str]) -> None: ...
    def produce(self, platform: PlatformSettings, batches: Batches) -> None: ...
    def silver(self, platform: PlatformSettings, job: catalog.SqlJob) -> None: ...
    def gold(self, platform: PlatformSettings, job: catalog.SqlJob) -> None: ...
    def loader_up(self) -> str: ...
    def where(self, platform: PlatformSettings) -> str: ...


def _produce(platform: PlatformSettings, batches: Batches, part: slice = slice(None)) -> None:
    for topic, (records, place) in batches.items():
        idx = range(len(records))[part]
        kafka.produce(
            platform.kafka.bootstrap,
            topic,
            [(None, records[i]) for i in idx],
            partition_of={n: place[i] for n, i in enumerate(idx)},
        )


class Bounded:
    """The local stack: each job bounded, on topics created afresh (safe to run twice)."""

    def start(self, platform: PlatformSettings) -> list[str]:
        return control.up(platform)

    def fresh(self, platform: PlatformSettings, job: catalog.SqlJob, uris: list[str]) -> None:
        # Stop the loader, empty the demo's topics and Delta tables.
        processes.stop("loader")
        bootstrap = platform.kafka.bootstrap
        kafka.delete_topics(bootstrap, job.topics())
        for uri in uris:
            if "://" not in uri:
                shutil.rmtree(uri, ignore_errors=True)
        for topic, cfg in job.topic_configs().items():
            kafka.create_topics(
                bootstrap, [topic], platform.kafka.default_partitions, topic_config=cfg
            )

    def produce(self, platform: PlatformSettings, batches: Batches) -> None:
        _produce(platform, batches)

    def silver(self, platform: PlatformSettings, job: catalog.SqlJob) -> None:
        job_id = submit.submit("silver", platform, bounded=True)
        print(f"submitted silver as Flink job {job_id}")
        submit.wait_job(platform, job_id, {"FINISHED"}, timeout_s=300)

    def gold(self, platform: PlatformSettings, job: catalog.SqlJob) -> None:
        bootstrap = platform.kafka.bootstrap
        kafka.delete_topics(bootstrap, job.sink_topics())
        kafka.create_topics(bootstrap, job.sink_topics(), platform.kafka.default_partitions)
        job_id = submit.submit("gold", platform, bounded=True)
        print(f"submitted gold as Flink job {job_id}")
        submit.wait_job(platform, job_id, {"FINISHED"}, timeout_s=300)
        # The Python DataStream job: z-score and silence alerts per device, into the same topic.
        job_id = submit.submit("device_anomaly", platform, bounded=True)
        print(f"submitted device_anomaly (DataStream) as Flink job {job_id}")
        submit.wait_job(platform, job_id, {"FINISHED"}, timeout_s=300)

    def loader_up(self) -> str:
        return control.loader_up()

    def where(self, platform: PlatformSettings) -> str:
        return f"Flink UI: {platform.flink.rest_url}   SQL: make sql   stop: make down"


# -- the running pipeline ---------------------------------------------------------------------


def _rest(platform: PlatformSettings, path: str) -> Any:
    try:
        return cluster.rest_get(platform, path, timeout_s=5)
    except (OSError, urllib.error.URLError, ValueError):
        return None


def running_jobs(platform: PlatformSettings) -> dict[str, str]:
    """Job name -> id of the cluster's jobs that are not finished, failed or cancelled; a name
    that runs twice is an error (two writers of the same topics)."""
    jobs = (_rest(platform, "/jobs/overview") or {}).get("jobs", [])
    done = {"FINISHED", "FAILED", "CANCELED"}
    alive = [j for j in jobs if j["state"] not in done]
    twice = sorted({j["name"] for j in alive if sum(k["name"] == j["name"] for k in alive) > 1})
    if twice:
        raise processes.StackError(f"running more than once on the cluster: {', '.join(twice)}")
    return {j["name"]: j["jid"] for j in alive}


def ends(bootstrap: str, topics: list[str]) -> dict[tuple[str, int], int]:
    """Per partition, the offset after its last committed record (what a reader that has read
    everything has committed at least; transaction markers may follow)."""
    out: dict[tuple[str, int], int] = defaultdict(int)
    for topic in topics:
        group = f"demo-ends-{time.monotonic_ns()}"
        for part, offset, _k, _v in kafka.read_committed_records(bootstrap, topic, group):
            out[(topic, part)] = max(out[(topic, part)], offset + 1)
    return dict(out)


def behind(bootstrap: str, group: str, targets: dict[tuple[str, int], int]) -> int:
    """How many partitions `group` has not yet committed up to their target."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "log_level": 3})
    try:
        tps = [TopicPartition(t, p) for (t, p), n in targets.items() if n > 0]
        got = c.committed(tps, timeout=10) if tps else []
        return sum(1 for tp in got if tp.offset < targets[(tp.topic, tp.partition)])
    finally:
        c.close()


def wait_read(
    platform: PlatformSettings, job: str, topics: list[str], timeout_s: float = 300
) -> float:
    """Wait until the job's consumer group has committed (on a checkpoint) every record of
    `topics`; return the seconds it took."""
    targets = ends(platform.kafka.bootstrap, topics)
    group = f"{platform.pipeline_id}.{job}"
    t0 = time.monotonic()
    while (n := behind(platform.kafka.bootstrap, group, targets)) > 0:
        if time.monotonic() - t0 > timeout_s:
            raise processes.StackError(
                f"{job}: {n} partition(s) of {', '.join(topics)} still unread after {timeout_s:.0f}s"
            )
        time.sleep(1)
    return time.monotonic() - t0


class Live:
    """The compose stack's running jobs, fed the demo's data and drained (see the module doc)."""

    JOBS = ("silver", "gold", "device_anomaly")

    def __init__(self, *, await_kill: bool = False) -> None:
        self.await_kill = await_kill
        self.savepoints = paths.FLINK_STATE / "savepoints"

    def start(self, platform: PlatformSettings) -> list[str]:
        running = sorted(set(running_jobs(platform)) & set(self.JOBS))
        if running:
            raise processes.StackError(
                f"already running on {platform.flink.rest_url}: {', '.join(running)}; the live "
                "demo submits them itself, on its backlog (make compose-demo makes a fresh stack)"
            )
        ov = _rest(platform, "/overview") or {}
        return [
            f"kafka: {platform.kafka.bootstrap}",
            f"flink: {platform.flink.rest_url}, {ov.get('taskmanagers')} TaskManagers, "
            f"{ov.get('slots-total')} slots",
        ]

    def fresh(self, platform: PlatformSettings, job: catalog.SqlJob, uris: list[str]) -> None:
        """The topics exist (the submit service made them) and the Bronze ones are empty."""
        md = kafka.admin(platform.kafka.bootstrap).list_topics(timeout=30)
        absent = [t for t in job.topics() if t not in md.topics]
        full = (
            []
            if absent
            else [t for t in job.source_topics() if ends(platform.kafka.bootstrap, [t])]
        )
        if absent or full:
            raise processes.StackError(
                "the live demo needs a fresh stack (make compose-demo makes one): "
                + (f"missing topics {absent}" if absent else f"{full} already hold records")
            )

    def produce(self, platform: PlatformSettings, batches: Batches) -> None:
        """The data (with await_kill: its first half) as a backlog, then the jobs on it."""
        cut = {t: len(r) // 2 if self.await_kill else len(r) for t, (r, _p) in batches.items()}
        # A prefix of every partition: each partition gets the same records in the same order.
        for topic, (records, place) in batches.items():
            _produce(platform, {topic: (records, place)}, slice(0, cut[topic]))
        for name in self.JOBS:
            print(f"submitted {name}: Flink job {submit.submit(name, platform)}")
        if not self.await_kill:
            return
        took = wait_read(platform, "silver", sorted(batches))
        print(f"silver has read and checkpointed the first half ({took:.1f}s)")
        self._kill_and_recover(platform)
        for topic, (records, place) in batches.items():
            _produce(platform, {topic: (records, place)}, slice(cut[topic], None))
        print("produced the second half")

    def _kill_and_recover(self, platform: PlatformSettings) -> None:
        jobs = running_jobs(platform)
        before = {n: _checkpoint_and_restart(platform, jobs[n]) for n in self.JOBS}
        print(KILL_MARKER, flush=True)
        t0 = time.monotonic()
        while True:
            now = {n: _checkpoint_and_restart(platform, jobs[n]) for n in self.JOBS}
            hit = [n for n in self.JOBS if now[n][1] > before[n][1]]
            if hit:
                break
            if time.monotonic() - t0 > 180:
                raise processes.StackError("no job restarted within 180 s of the kill marker")
            time.sleep(0.5)
        t_fail = time.monotonic()
        print(f"jobs restarting {t_fail - t0:.1f}s after the marker: {', '.join(hit)}")
        while not all(_recovered(platform, jobs[n], before[n][0]) for n in self.JOBS):
            if time.monotonic() - t_fail > 300:
                raise processes.StackError("the jobs did not recover within 300 s")
            time.sleep(0.5)
        ov = _rest(platform, "/overview") or {}
        print(
            f"recovered {time.monotonic() - t_fail:.1f}s after the failure: every job RUNNING "
            f"with a new completed checkpoint ({ov.get('taskmanagers')} TaskManager(s) listed)"
        )

    def _drain(self, platform: PlatformSettings, name: str) -> None:
        job_id = running_jobs(platform)[name]
        path = submit.stop_with_savepoint(platform, job_id, self.savepoints, 300, drain=True)
        print(f"{name} (Flink job {job_id}) stopped with a drained savepoint: {Path(path).name}")

    def silver(self, platform: PlatformSettings, job: catalog.SqlJob) -> None:
        took = wait_read(platform, "silver", job.source_topics())
        print(f"silver has read and checkpointed every Bronze record ({took:.1f}s)")
        self._drain(platform, "silver")

    def gold(self, platform: PlatformSettings, job: catalog.SqlJob) -> None:
        from jobs import device_anomaly

        spec = device_anomaly.load(paths.CONF_DIR)
        for name, topics in (
            ("gold", job.source_topics()),
            ("device_anomaly", [spec.silver_topic]),
        ):
            took = wait_read(platform, name, topics)
            print(f"{name} has read and checkpointed every Silver row ({took:.1f}s)")
            self._drain(platform, name)

    def loader_up(self) -> str:
        return "loader: the compose stack's loader service lands every topic"

    def where(self, platform: PlatformSettings) -> str:
        return f"Flink UI: {platform.flink.rest_url} (from the host: make compose-up prints it)"


def _checkpoint_and_restart(platform: PlatformSettings, job_id: str) -> tuple[int, int]:
    """(latest completed checkpoint id, when the job last entered RESTARTING, ms)."""
    cp = _rest(platform, f"/jobs/{job_id}/checkpoints") or {}
    done = (cp.get("latest") or {}).get("completed") or {}
    job = _rest(platform, f"/jobs/{job_id}") or {}
    return int(done.get("id", -1)), int((job.get("timestamps") or {}).get("RESTARTING", 0))


def _recovered(platform: PlatformSettings, job_id: str, checkpoint: int) -> bool:
    job = _rest(platform, f"/jobs/{job_id}") or {}
    if job.get("state") != "RUNNING":
        return False
    if any(v["status"] != "RUNNING" for v in job.get("vertices", [])):
        return False
    return _checkpoint_and_restart(platform, job_id)[0] > checkpoint
