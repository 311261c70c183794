"""What the benchmark measures while a scenario runs: committed records, Flink's source counts,
CPU and memory of the stack's processes, and the latency until Silver rows, alerts, Gold windows
and Delta rows become visible."""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from streamlake.config.settings import PlatformSettings
from streamlake.stack import cluster


def _committed_reader(bootstrap: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-reader-{uuid.uuid4().hex[:6]}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "log_level": 3,
        }
    )


def _ends(c: Consumer, topics: list[str]) -> dict[tuple[str, int], int]:
    """The last stable offset (what read_committed readers can see) of each partition."""
    md = c.list_topics(timeout=10)
    out = {}
    for t in topics:
        for p in md.topics[t].partitions if t in md.topics else []:
            out[(t, p)] = c.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
    return out


def end_offsets(bootstrap: str, topics: list[str]) -> int:
    """Sum of the last stable offsets of the topics."""
    c = _committed_reader(bootstrap)
    try:
        return sum(_ends(c, topics).values())
    finally:
        c.close()


def committed_records(bootstrap: str, topics: list[str]) -> int:
    """How many records a read_committed reader of the topics sees now. Not the end offsets:
    on a transactional topic every commit also takes an offset, for its marker."""
    c = _committed_reader(bootstrap)
    try:
        ends = {tp: hi for tp, hi in _ends(c, topics).items() if hi > 0}
        c.assign([TopicPartition(t, p, 0) for t, p in ends])
        n, deadline = 0, time.monotonic() + 120
        while time.monotonic() < deadline:
            n += sum(1 for m in c.consume(10_000, 0.5) if m.error() is None)
            # The position passes a commit marker without returning a record.
            pos = c.position([TopicPartition(t, p) for t, p in ends])
            if all(tp.offset >= ends[(tp.topic, tp.partition)] for tp in pos):
                break
        return n
    finally:
        c.close()


class FlinkSourceRecords:
    """Records the source operators of a Flink job have emitted (REST metrics, refreshed every
    second): the job's input processed, at a finer grain than offsets committed on checkpoints."""

    def __init__(self, plat: PlatformSettings) -> None:
        self.plat = plat
        self.metric: dict[str, list[tuple[str, str]]] = {}

    def _find(self, jid: str) -> list[tuple[str, str]]:
        out = []
        for v in cluster.rest_get(self.plat, f"/jobs/{jid}")["vertices"]:
            if not v["name"].startswith("Source"):
                continue
            ids = cluster.rest_get(self.plat, f"/jobs/{jid}/vertices/{v['id']}/subtasks/metrics")
            for m in ids:
                if m["id"].startswith("Source") and m["id"].endswith(".numRecordsOut"):
                    out.append((v["id"], m["id"]))
        return out

    def __call__(self, jid: str) -> int:
        if not self.metric.get(jid):
            self.metric[jid] = self._find(jid)
        total = 0
        for vid, mid in self.metric[jid]:
            got = cluster.rest_get(
                self.plat, f"/jobs/{jid}/vertices/{vid}/subtasks/metrics?get={mid}&agg=sum"
            )
            total += int(float(got[0]["sum"])) if got else 0
        return total


def last_checkpoint_ms(plat: PlatformSettings, job_id: str) -> int:
    """Trigger time (epoch ms) of the job's latest completed checkpoint, 0 if none."""
    cp = cluster.rest_get(plat, f"/jobs/{job_id}/checkpoints")
    latest = (cp.get("latest") or {}).get("completed") or {}
    return int(latest.get("trigger_timestamp") or 0)


class Drain:
    """Whether every job of a scenario has processed all of its input.

    The first job has when its sources have emitted `expect_first` records. A downstream job reads
    the first job's output with read_committed, so its input is complete only once the first job
    has committed everything: after a checkpoint triggered once the first job had read all. Its
    target is then the committed end of its input topics.
    """

    def __init__(
        self,
        plat: PlatformSettings,
        records: FlinkSourceRecords,
        job_ids: dict[str, str],
        inputs: dict[str, list[str]],
    ) -> None:
        self.plat, self.records, self.job_ids, self.inputs = plat, records, job_ids, inputs
        self.names = list(job_ids)
        self.first_done_ms = 0
        self.targets: dict[str, int] = {}
        self.done_at: dict[str, float] = {}

    def poll(self, expect_first: int) -> bool:
        now = time.monotonic()
        first = self.names[0]
        if first not in self.done_at:
            if self.records(self.job_ids[first]) < expect_first:
                return False
            self.done_at[first] = now
            self.first_done_ms = int(time.time() * 1000)
        for name in self.names[1:]:
            if name in self.done_at:
                continue
            if name not in self.targets:
                if last_checkpoint_ms(self.plat, self.job_ids[first]) <= self.first_done_ms:
                    return False
                self.targets[name] = committed_records(self.plat.kafka.bootstrap, self.inputs[name])
            if self.records(self.job_ids[name]) < self.targets[name]:
                return False
            self.done_at[name] = now
        return True

    def wait(self, expect_first: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.poll(expect_first):
                return True
            time.sleep(0.5)
        return False


def spark_committed_offsets(checkpoint: Path) -> int:
    """Sum of the Kafka offsets of the last micro-batch a Spark query committed."""
    commits = checkpoint / "commits"
    done = (
        sorted((int(f.name) for f in commits.glob("[0-9]*") if f.name.isdigit()), reverse=True)
        if commits.exists()
        else []
    )
    for batch in done:
        f = checkpoint / "offsets" / str(batch)
        if f.exists():
            last = f.read_text().strip().splitlines()[-1]
            return sum(int(o) for parts in json.loads(last).values() for o in parts.values())
    return 0


def _proc_tree(pids: list[int]) -> list[int]:
    out, todo = set(), list(pids)
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    while todo:
        p = todo.pop()
        if p not in out:
            out.add(p)
            todo.extend(children.get(p, []))
    return sorted(out)


def _is_python(pid: int) -> bool:
    try:
        return b"python" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _cpu_rss(pid: int) -> tuple[float, int]:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        cpu = (int(fields[11]) + int(fields[12])) / tick
        rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        return cpu, rss
    except (OSError, IndexError, ValueError):
        return 0.0, 0


class Sampler(threading.Thread):
    """Every second: output progress, CPU seconds and RSS per component of the stack."""

    def __init__(self, progress: Callable[[], dict[str, int]], roots: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.progress = progress
        self.roots = roots
        self.samples: list[dict[str, Any]] = []
        self.stop_flag = threading.Event()
        self.cpu0: dict[int, float] = {}

    def snapshot(self) -> dict[str, Any]:
        cpu: dict[str, float] = {}
        rss: dict[str, int] = {}
        for name, root in self.roots.items():
            for pid in _proc_tree([root]):
                c, r = _cpu_rss(pid)
                # The TaskManager's Python workers (PyFlink's Beam harness) apart from its JVM.
                part = (
                    "flink-python-workers"
                    if name == "flink-taskmanager" and pid != root and _is_python(pid)
                    else name
                )
                cpu[part] = cpu.get(part, 0.0) + c
                rss[part] = rss.get(part, 0) + r
        return {"t": time.monotonic(), "out": self.progress(), "cpu": cpu, "rss": rss}

    def run(self) -> None:
        while not self.stop_flag.is_set():
            self.samples.append(self.snapshot())
            self.stop_flag.wait(0.5)

    def stop(self) -> list[dict[str, Any]]:
        self.stop_flag.set()
        self.join(10)
        self.samples.append(self.snapshot())
        return self.samples


def steady_rate(samples: list[dict[str, Any]], total: int, job: str) -> float:
    """Output per second while the job was busy: from the first output seen to the last sample
    before the output was complete. Under exactly-once, output becomes visible at checkpoint
    commits, so both ends are commit points with the job saturated in between; start-up and the
    idle tail before the final commit are excluded."""
    pts: list[tuple[float, int]] = [(float(s["t"]), int(s["out"].get(job, 0))) for s in samples]
    busy = [p for p in pts if 0 < p[1] < 0.995 * total]
    if len(busy) >= 2 and busy[-1][0] > busy[0][0] and busy[-1][1] > busy[0][1]:
        return (busy[-1][1] - busy[0][1]) / (busy[-1][0] - busy[0][0])
    done = next((p for p in pts if p[1] >= 0.995 * total), None)
    return total / (done[0] - pts[0][0]) if done and done[0] > pts[0][0] else 0.0


def pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * (len(xs) - 1) + 0.5))]


class GoldWatcher(threading.Thread):
    """Polls a Gold Delta table: for each window, now - window end when its row first shows the
    window's on-time rows.

    A window whose row shows up before the window has ended holds only late rows: a window that
    allows lateness takes a late row at once, as a revision, even while the window is still open.
    Those are counted in `early_partial` and measured when their row next changes after the end
    (the window firing with its on-time rows)."""

    def __init__(self, uri: str) -> None:
        super().__init__(daemon=True)
        self.uri = uri
        self.since = time.time()  # windows that ended before the run are not measured
        self.seen: set[tuple[Any, ...]] = set()
        self.early: dict[tuple[Any, ...], Any] = {}
        self.early_partial = 0
        self.latencies: list[float] = []
        self.stop_flag = threading.Event()
        self.ready = threading.Event()
        self.ready.set()

    def run(self) -> None:
        from streamlake.lake.sink import read_delta

        first = True
        while not self.stop_flag.is_set():
            try:
                rows = read_delta(
                    self.uri, ["tenant_id", "device_id", "window_start", "window_end", "readings"]
                )
            except Exception:
                rows = None
            now = time.time()
            if rows is not None:
                for r in rows.to_pylist():
                    key = (r["tenant_id"], r["device_id"], r["window_start"])
                    end = r["window_end"].replace(tzinfo=UTC).timestamp()
                    if key in self.early:
                        if now >= end and r["readings"] != self.early[key]:
                            del self.early[key]
                            self.latencies.append((now - end) * 1000)
                        continue
                    if key not in self.seen:
                        self.seen.add(key)
                        if first or end < self.since:
                            continue
                        if now < end:
                            self.early[key] = r["readings"]
                            self.early_partial += 1
                        else:
                            self.latencies.append((now - end) * 1000)
                first = False
            self.stop_flag.wait(0.5)


_CREATED = re.compile(rb'-c([0-9]{13})"')

_CREATED_STR = re.compile(r"-c([0-9]{13})$")


class DeltaLatency(threading.Thread):
    """Polls a Delta table: for each new data file, now - the creation time of (a sample of)
    its rows, read from event_id. What a reader of the lake waits for."""

    def __init__(self, uri: str, sample_every: int = 5) -> None:
        super().__init__(daemon=True)
        self.uri = uri
        self.every = sample_every
        self.since_ms = int(time.time() * 1000)
        self.seen: set[str] = set()
        self.latencies: list[float] = []
        self.stop_flag = threading.Event()
        self.ready = threading.Event()

    def _files(self) -> list[str]:
        import pyarrow as pa
        from deltalake import DeltaTable

        try:
            adds = pa.table(DeltaTable(self.uri).get_add_actions(flatten=True))
        except Exception:
            return []
        return [str(p) for p in adds.column("path").to_pylist()]

    def run(self) -> None:
        import pyarrow.parquet as pq

        self.seen = set(self._files())  # what exists before the run is not measured
        self.ready.set()
        while not self.stop_flag.is_set():
            new = [f for f in self._files() if f not in self.seen]
            now = time.time()
            for f in new:
                self.seen.add(f)
                path = f if f.startswith("/") else os.path.join(self.uri, f)
                try:
                    ids = pq.read_table(path, columns=["event_id"]).column(0).to_pylist()
                except OSError:  # compacted away meanwhile
                    continue
                for eid in ids[:: self.every]:
                    m = _CREATED_STR.search(eid or "")
                    if m and int(m.group(1)) >= self.since_ms:
                        self.latencies.append(now * 1000 - int(m.group(1)))
            self.stop_flag.wait(0.5)


class VisibleLatency(threading.Thread):
    """read_committed consumer: for each record, now - when its event was created.

    time_field "created" reads the creation time the generator put in the event id (it travels
    to Silver in event_id); any other field is read as an event time (alerts: last_event_at).
    """

    def __init__(
        self,
        bootstrap: str,
        topics: list[str],
        time_field: str,
        sample_every: int = 5,
        group_field: str | None = None,
        exclude_groups: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(daemon=True)
        self.c = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"bench-latency-{uuid.uuid4().hex[:8]}",
                "isolation.level": "read_committed",
                "auto.offset.reset": "latest",
                "enable.auto.commit": False,
                "log_level": 3,
            }
        )
        self.topics = topics
        self.field = time_field
        self.every = sample_every
        self.latencies: list[float] = []
        self.group_field = group_field
        self.by_group: dict[str, list[float]] = {}
        self.exclude = exclude_groups
        self.since_ms = int(time.time() * 1000)
        self.stop_flag = threading.Event()
        self.ready = threading.Event()
        self.c.subscribe(topics, on_assign=lambda c, p: self.ready.set())

    def run(self) -> None:
        n = 0
        while not self.stop_flag.is_set():
            for m in self.c.consume(1000, 0.2):
                if m.error() or m.value() is None:
                    continue
                n += 1
                if n % self.every:
                    continue
                now = time.time()
                value = m.value()
                assert value is not None
                if self.field == "created":
                    found = _CREATED.search(value)
                    # Only events created since the watcher started: not the pre-load's.
                    if found and int(found.group(1)) >= self.since_ms:
                        self.latencies.append(now * 1000 - int(found.group(1)))
                    continue
                try:
                    doc = json.loads(value)
                    ts = doc[self.field]
                    t = (
                        ts / 1000
                        if isinstance(ts, int)
                        else datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
                    )
                except (ValueError, KeyError, TypeError):
                    continue
                if t * 1000 < self.since_ms:
                    continue  # an alert on the pre-load's events, emitted when the run began
                if self.group_field:
                    group = str(doc.get(self.group_field))
                    self.by_group.setdefault(group, []).append((now - t) * 1000)
                    if group in self.exclude:
                        continue
                self.latencies.append((now - t) * 1000)
        self.c.close()


def _watch(factory: Callable[[], Any], ready: Any, stop: Any, results: Any) -> None:
    w = factory()
    w.start()
    w.ready.wait(60)
    ready.set()
    stop.wait()
    w.stop_flag.set()
    w.join(30)
    results.put(
        {
            "latencies": w.latencies,
            "by_group": getattr(w, "by_group", {}),
            "early_partial": getattr(w, "early_partial", 0),
        }
    )


class Isolated:
    """A watcher in a process of its own. In one process the watchers share the GIL with each
    other (Delta reads, Arrow-to-Python conversion, JSON parsing): a thread that waits for it
    takes its `now` late, and the latency it records grows with the others' work (measured:
    alerts 57 s in a thread of the bench, 10 s from a process of their own)."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        self.ready = ctx.Event()
        self.stop_flag = ctx.Event()
        self._results = ctx.Queue()
        self._proc = ctx.Process(
            target=_watch, args=(factory, self.ready, self.stop_flag, self._results), daemon=True
        )
        self.latencies: list[float] = []
        self.by_group: dict[str, list[float]] = {}
        self.early_partial = 0

    def start(self) -> None:
        self._proc.start()

    def join(self, timeout: float) -> None:
        import queue

        try:
            got = self._results.get(timeout=timeout + 30)
        except queue.Empty:
            got = {}
        self._proc.join(5)
        self.latencies = got.get("latencies", [])
        self.by_group = got.get("by_group", {})
        self.early_partial = got.get("early_partial", 0)


_JSTACK_LINE = re.compile(r'^"(?P<name>.*)" #\d+.*? cpu=(?P<ms>[0-9.]+)ms ')
_SUBTASK = re.compile(r" \(\d+/\d+\)#\d+$")


def thread_cpu_ms(pid: int) -> dict[str, float]:
    """CPU milliseconds of each named Java thread of a JVM (jstack prints them since JDK 11)."""
    import subprocess

    from streamlake.stack.processes import java_executable

    jstack = str(Path(java_executable()).resolve().parent / "jstack")
    if not Path(jstack).exists():
        return {}  # a JRE without the JDK's tools: no per-job figures
    try:
        out = subprocess.run(
            [jstack, str(pid)], capture_output=True, text=True, timeout=60, check=False
        ).stdout
    except subprocess.TimeoutExpired:
        return {}
    got: dict[str, float] = {}
    for line in out.splitlines():
        m = _JSTACK_LINE.match(line)
        if m:
            got[m["name"]] = got.get(m["name"], 0.0) + float(m["ms"])
    return got


def thread_owner(name: str, jobs: dict[str, tuple[str, list[str]]]) -> str | None:
    """Which job a TaskManager thread works for: its task threads and their helpers (source
    fetchers, output flushers) are named after a task; its Kafka clients' threads carry the job's
    client, group or transactional id (`<pipeline_id>.<job>`). None: the TaskManager's own
    (GC, JIT, RPC, metrics, checkpoint I/O), shared by every job."""
    task = _SUBTASK.sub("", name.split("|", 1)[-1])
    for helper in _HELPER_PREFIXES:
        task = task.removeprefix(helper)
    for job, (ident, vertices) in jobs.items():
        if (ident and ident in name) or task in vertices:
            return job
    return None


_HELPER_PREFIXES = ("Source Data Fetcher for ", "OutputFlusher for ")


def cpu_by_job(
    before: dict[str, float], after: dict[str, float], jobs: dict[str, tuple[str, list[str]]]
) -> dict[str, float]:
    """CPU seconds each job's threads used between two thread_cpu_ms snapshots, and the rest of
    the TaskManager JVM's threads as `taskmanager (shared)`. A thread that ended in between is
    missed (the snapshots are taken while the jobs run)."""
    out: dict[str, float] = {j: 0.0 for j in jobs}
    out["taskmanager (shared)"] = 0.0
    for name, ms in after.items():
        d = ms - before.get(name, 0.0)
        if d <= 0:
            continue
        owner = thread_owner(name, jobs) or "taskmanager (shared)"
        out[owner] += d / 1000
    return {k: round(v, 2) for k, v in out.items()}


def shared_threads(
    before: dict[str, float],
    after: dict[str, float],
    jobs: dict[str, tuple[str, list[str]]],
    n: int = 6,
) -> list[tuple[str, float]]:
    """The TaskManager threads no job owns that used the most CPU seconds, grouped by name
    without numbers (e.g. `C2 CompilerThreadN`, `GC Thread#N`)."""
    groups: dict[str, float] = {}
    for name, ms in after.items():
        d = ms - before.get(name, 0.0)
        if d > 0 and thread_owner(name, jobs) is None:
            g = re.sub(r"\d+", "N", name.split("|", 1)[-1])
            groups[g] = groups.get(g, 0.0) + d / 1000
    return [(k, round(v, 2)) for k, v in sorted(groups.items(), key=lambda kv: -kv[1])[:n]]
