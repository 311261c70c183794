"""The whole pipeline against a bare baseline, in one run on this machine and stack (issue 6).

Scenarios, each on its own copy of conf/ (own topics, groups, transactional ids, lake):

- baseline:      a bare Flink job, Bronze JSON in -> Kafka out, no logic, exactly-once;
- pipeline_eo:   Bronze -> Silver/DLQ (silver job) -> Gold windows + CEP alerts (gold job),
                 exactly-once, default checkpoint interval, Delta loader running;
- pipeline_alo:  the same, at-least-once (no Kafka transactions), to show what exactly-once costs.

Per scenario:
1. capacity: N events pre-loaded to Bronze, then the jobs start; the processing rate is the
   slope of the committed output between 20 % and 80 % of the run (start-up and the last
   checkpoint excluded), sampled every second;
2. latency: events produced at half that rate for a while, stamped with their creation time
   (their event time); a read_committed consumer records when each Silver row and each alert
   becomes visible, and the loader's Gold table is polled for new windows;
3. cost: CPU seconds and peak RSS of every process of the stack (Kafka, Flink JM/TM and their
   Python workers, the loader), checkpoint durations from Flink's REST API, Delta files written.

    make up && python -m bench.pipeline            (make bench runs it)

Writes bench/results/<date>-pipeline.{json,md} and PNG charts next to them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform as pyplatform
import random
import re
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Consumer, TopicPartition

from connectors import kafka
from jobs import catalog
from streamlake.config import paths, settings
from streamlake.config.settings import PlatformSettings
from streamlake.runtime import submit
from streamlake.stack import cluster, processes

RESULTS = paths.REPO / "bench" / "results"
WORK = paths.STACK / "bench"


# ---------------------------------------------------------------------------------------------
# Load generator


@dataclass
class LoadSpec:
    """What the generator sends; seeded, so two runs send the same events."""

    seed: int = 6
    tenants: tuple[str, ...] = ("acme", "globex")
    devices: int = 500
    key_skew: float = 1.2  # Zipf exponent over devices (1 hot device, a long tail)
    out_of_order_ms: int = 3_000  # within the 5 s watermark bound
    out_of_order_share: float = 0.1  # events sent after later ones
    late_fraction: float = 0.002  # older than the bound: late rows
    future_fraction: float = 0.0005  # hours ahead: the DLQ (event_time_in_future)
    duplicate_fraction: float = 0.01
    bad_fraction: float = 0.005


class Generator:
    """Bronze JSON events for the onboarded tenants; the event time is the creation time."""

    def __init__(self, spec: LoadSpec, topics: dict[str, str]) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.topics = topics  # tenant -> bronze topic
        weights = [1 / (i + 1) ** spec.key_skew for i in range(spec.devices)]
        total = sum(weights)
        self.cum = list(_accumulate([w / total for w in weights]))
        self.seq = 0
        self.last: bytes = b""

    def _device(self) -> int:
        x = self.rng.random()
        lo, hi = 0, len(self.cum) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if self.cum[mid] < x:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def event(self, now_ms: int) -> tuple[str, bytes]:
        s, r = self.spec, self.rng
        self.seq += 1
        u = r.random()
        if u < s.duplicate_fraction and self.last:
            return self.topics["acme"], self.last
        u = r.random()
        if u < s.bad_fraction:
            return self.topics["acme"], b'{"tenant_id":"acme","event_type":"device_telemetry",'
        t = now_ms - (r.randrange(s.out_of_order_ms) if r.random() < s.out_of_order_share else 0)
        if u < s.bad_fraction + s.late_fraction:
            t = now_ms - 10_000 - r.randrange(60_000)
        elif u < s.bad_fraction + s.late_fraction + s.future_fraction:
            t = now_ms + 3 * 3_600_000
        d = self._device()
        if d % 4 == 3:
            tenant = "globex"
            body = (
                f'{{"tenant_id":"globex","event_type":"orders","schema_version":2,'
                f'"order_id":"o-{self.seq}-c{now_ms}","placed_at":"{_iso(t)}","customer_id":"c-{d}",'
                f'"amount_cents":{r.randrange(100, 90_000)},"currency":"EUR","channel":"web"}}'
            )
        else:
            tenant = "acme"
            body = (
                f'{{"tenant_id":"acme","event_type":"device_telemetry","schema_version":1,'
                f'"event_id":"e-{self.seq}-c{now_ms}","event_time":{t},"device_id":"dev-{d}",'
                f'"temperature_c":{round(40 + 30 * r.random() + (r.random() < 0.01) * 40, 1)},'
                f'"status":"{"degraded" if r.random() < 0.02 else "ok"}"}}'
            )
        self.last = body.encode()
        return self.topics[tenant], self.last

    def produce(
        self, bootstrap: str, n: int, rate: float | None = None, backdate_ms: int = 0
    ) -> float:
        """Send n events (at `rate` per second, or as fast as possible); return the seconds.

        backdate_ms: the events are created on a clock that runs from `backdate_ms` ago to now
        over the n events, instead of the wall clock. A pre-load sent in a second would otherwise
        all carry the same second, and event-time work (windows, CEP, the DataStream job's
        timers) could not run until later events moved the watermark past it.
        """
        from confluent_kafka import Producer

        p = Producer(
            {
                "bootstrap.servers": bootstrap,
                "linger.ms": 20,
                "batch.size": 1_000_000,
                "compression.type": "lz4",
                "log_level": 3,
            }
        )
        t0 = time.monotonic()
        start_ms = int(time.time() * 1000)
        for i in range(n):
            if rate:
                due = t0 + i / rate
                lag = due - time.monotonic()
                if lag > 0.002:
                    p.poll(0)
                    time.sleep(lag)
            now_ms = int(time.time() * 1000)
            if backdate_ms:
                now_ms = start_ms - backdate_ms + backdate_ms * i // n
            topic, value = self.event(now_ms)
            while True:
                try:
                    p.produce(topic, value)
                    break
                except BufferError:
                    p.poll(0.05)
            if i % 10_000 == 0:
                p.poll(0)
        p.flush(120)
        return time.monotonic() - t0


def _accumulate(xs: list[float]) -> list[float]:
    out, acc = [], 0.0
    for x in xs:
        acc += x
        out.append(acc)
    return out


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# ---------------------------------------------------------------------------------------------
# Measuring


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


# ---------------------------------------------------------------------------------------------
# Scenarios


PIPELINE_JOBS = ["silver", "gold", "device_anomaly"]
# The pre-load's events are created over the last two minutes (Generator.produce, backdate_ms):
# within every event type's max_future_skew and the dedup horizon, and old enough that the
# watermark passes all but its last seconds while the capacity is measured.
PRELOAD_SPAN_MS = 120_000


@dataclass
class Scenario:
    name: str
    jobs: list[str]
    delivery: str = "exactly-once"
    loader: bool = False
    peer: bool = False  # PySpark Structured Streaming instead of the Flink jobs
    results: dict[str, Any] = field(default_factory=dict)


def scenario_conf(name: str, delivery: str) -> Path:
    """A private copy of conf/ with its own topics, groups, transactional ids and lake."""
    d = WORK / name / "conf"
    shutil.rmtree(d.parent, ignore_errors=True)
    shutil.copytree(paths.CONF_DIR, d)
    suffix = f"_b{name}"

    def edit(rel: str, **changes: Any) -> None:
        p = d / rel
        data = yaml.safe_load(p.read_text()) if p.exists() else {}
        data.update(changes)
        p.write_text(yaml.safe_dump(data, sort_keys=False))

    plat = yaml.safe_load((d / "platform.yaml").read_text())
    plat["pipeline_id"] = f"bench_{name}"
    plat["sinks"]["delivery_guarantee"] = delivery
    (d / "platform.yaml").write_text(yaml.safe_dump(plat, sort_keys=False))
    for f in sorted((d / "tenants").glob("*.yaml")):
        edit(f"tenants/{f.name}", topics=[f"bronze_{f.stem}_events{suffix}"])
    for f in sorted((d / "event_types").glob("*.yaml")):
        edit(f"event_types/{f.name}", silver_topic=f"silver_{f.stem}{suffix}")
    edit("silver.yaml", dlq_topic=f"dlq_events{suffix}", audit_topic=f"audit_silver_counts{suffix}")
    edit(
        "gold.yaml",
        alert_topic=f"alert_events{suffix}",
        late_topics={
            et.stem: f"late_{et.stem}{suffix}" for et in (d / "event_types").glob("*.yaml")
        },
    )
    for f in sorted((d / "gold").glob("*.yaml")):
        edit(f"gold/{f.name}", topic=f"gold_{f.stem}{suffix}")
    edit("streams/device_anomaly.yaml", output_topic=f"alert_events{suffix}")
    edit(
        "lake.yaml",
        lake_root=str(WORK / name / "lake"),
        consumer_group=f"bench_{name}.loader",
        instance_id=f"bench-{name}",
    )
    return d


def job_io(name: str, conf: Path) -> tuple[list[str], list[str], dict[str, Any]]:
    """(input topics, output topics, topic configs) of a SQL job or a DataStream job."""
    if name in catalog.STREAM_JOBS:
        from jobs import device_anomaly

        spec = device_anomaly.load(conf)
        return [spec.silver_topic], [spec.output_topic], {}
    job = catalog.get(name, conf)
    return job.source_topics(), job.sink_topics(), dict(job.topic_configs())


def absence_rules(conf: Path) -> frozenset[str]:
    """Rules that fire on the absence of events: their alert comes a configured gap after the
    last event, by design, so they are reported per rule but kept out of the alert latency."""
    from jobs import device_anomaly
    from streamlake.compile import gold

    rules = {r.rule_id for r in gold.load_gold(conf).rules.values() if r.kind == "absence"}
    return frozenset(rules | {device_anomaly.load(conf).silence_rule_id})


def run_scenario(
    sc: Scenario, plat: PlatformSettings, n: int, latency_s: int, spec: LoadSpec
) -> None:
    bootstrap = plat.kafka.bootstrap
    conf = scenario_conf(sc.name, sc.delivery)
    io = {j: job_io(j, conf) for j in sc.jobs}
    topics = sorted({t for ins, outs, _ in io.values() for t in ins + outs})
    kafka.delete_topics(bootstrap, topics)
    for _ins, _outs, cfgs in io.values():
        for t, cfg in cfgs.items():
            kafka.create_topics(bootstrap, [t], plat.kafka.default_partitions, topic_config=cfg)
    for t in topics:
        kafka.create_topics(bootstrap, [t], plat.kafka.default_partitions)
    bronze, first_outputs, _ = io[sc.jobs[0]]
    outputs = [t for t in first_outputs if not t.startswith("audit_")]
    tenants = {t.split("_")[1]: t for t in bronze}
    gen = Generator(spec, tenants)

    print(f"[{sc.name}] pre-loading {n} events to {', '.join(bronze)}", flush=True)
    # What this one Python producer can send: the latency run's rate cannot be higher.
    generator_rate = n / gen.produce(bootstrap, n, backdate_ms=PRELOAD_SPAN_MS)
    in_total = end_offsets(bootstrap, bronze)

    roots = _roots()
    loader_proc = None
    if sc.loader:
        log = open(WORK / sc.name / "loader.log", "w")
        loader_proc = subprocess.Popen(
            [paths.python_executable(), "-m", "jobs", "--conf", str(conf), "loader"],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=paths.REPO,
        )
        roots["loader"] = loader_proc.pid
    job_ids: dict[str, str] = {}
    peer_proc = None
    peer_lake = WORK / sc.name / "peer-lake"
    records = FlinkSourceRecords(plat)
    if sc.peer:
        shutil.rmtree(peer_lake, ignore_errors=True)
        peer_lake.mkdir(parents=True)

        def progress() -> dict[str, int]:
            return {"peer": spark_committed_offsets(peer_lake / "_checkpoints" / "silver")}
    else:

        def progress() -> dict[str, int]:
            return {name: records(jid) for name, jid in job_ids.items()}

    sampler = Sampler(progress, roots)
    try:
        if sc.peer:
            peer_proc = start_peer(bootstrap, bronze, peer_lake, WORK / sc.name)
            roots["peer-spark"] = peer_proc.pid
        # A cancelled job of the previous scenario can hold its slot for a while.
        wait_for_free_slots(plat, 0 if sc.peer else len(sc.jobs))
        # Downstream jobs first, so they are running when their input starts to arrive; the
        # clock starts when the first job has read its first record.
        for name in [] if sc.peer else sc.jobs[1:]:
            job_ids[name] = submit.submit(name, plat, conf_dir=conf)
            submit.wait_job(plat, job_ids[name], {"RUNNING"}, timeout_s=120)
        if not sc.peer:
            job_ids = {sc.jobs[0]: submit.submit(sc.jobs[0], plat, conf_dir=conf), **job_ids}
            submit.wait_job(plat, job_ids[sc.jobs[0]], {"RUNNING"}, timeout_s=120)
        drain = Drain(plat, records, job_ids, {j: io[j][0] for j in job_ids})
        sampler.start()
        t_running = time.monotonic()
        seen_at_start = 0
        if not sc.peer:
            # Both ends of the interval are readings of the same once-a-second metric, so its
            # staleness cancels out: (total - first reading) / (done - time of first reading).
            first_jid = job_ids[sc.jobs[0]]
            while (seen_at_start := records(first_jid)) == 0 and time.monotonic() < t_running + 120:
                time.sleep(0.1)
            t_running = time.monotonic()
        if sc.peer:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline and progress()["peer"] < in_total:
                time.sleep(1)
            done_at = {"peer": time.monotonic()}
        else:
            if not drain.wait(in_total, 900):
                raise TimeoutError(f"[{sc.name}] the jobs did not process the pre-load in 900 s")
            done_at = drain.done_at
        catch_up_s = max(done_at.values()) - t_running
        capacity_samples = sampler.stop()
        first_name = next(iter(done_at))
        rate = steady_rate(capacity_samples, in_total, first_name)
        first_s, last_s = capacity_samples[0], capacity_samples[-1]
        cpu_s = sum(last_s["cpu"].values()) - sum(first_s["cpu"].values())
        sc.results["capacity"] = {
            "events": in_total,
            # From the jobs running (Spark: its queries started) until every job has processed
            # every pre-loaded event (downstream jobs: every committed row of their input).
            "events_per_s": round((in_total - seen_at_start) / catch_up_s),
            "catch_up_s": round(catch_up_s, 1),
            "catch_up_s_by_job": {k: round(v - t_running, 1) for k, v in done_at.items()},
            # The first job alone (Silver, or the baseline): its busy stretch.
            "first_job_steady_events_per_s": round(rate),
            "records_in_by_job": last_s["out"],
            "cpu_s_per_million_events": round(cpu_s / in_total * 1e6, 1),
            "cpu_s_by_process": {
                k: round(last_s["cpu"][k] - first_s["cpu"].get(k, 0.0), 1) for k in last_s["cpu"]
            },
            "peak_rss_mb": {
                k: round(max(s["rss"].get(k, 0) for s in capacity_samples) / 2**20)
                for k in last_s["rss"]
            },
            "series": {
                name: [
                    (round(s["t"] - first_s["t"], 1), s["out"].get(name, 0))
                    for s in capacity_samples
                ]
                for name in last_s["out"]
            },
        }
        print(
            f"[{sc.name}] capacity: {sc.results['capacity']['events_per_s']} events/s "
            f"(catch-up by job: {sc.results['capacity']['catch_up_s_by_job']})",
            flush=True,
        )

        # Latency at half the measured capacity (new events only: consumers start at the end),
        # or what the generator can send, if less.
        half = max(500.0, min(sc.results["capacity"]["events_per_s"] / 2, 0.9 * generator_rate))
        watchers: dict[str, Any] = {
            "silver_or_output": Isolated(
                lambda: VisibleLatency(
                    bootstrap,
                    [t for t in outputs if t.startswith(("silver_", "bench_"))],
                    "created",
                )
            )
        }
        alert_topics = sorted(
            {t for j in sc.jobs if j != sc.jobs[0] for t in io[j][1] if t.startswith("alert_")}
        )
        if alert_topics and not sc.peer:
            absent = absence_rules(conf)
            watchers["alert"] = Isolated(
                lambda: VisibleLatency(
                    bootstrap,
                    alert_topics,
                    "last_event_at",
                    1,
                    group_field="rule_id",
                    exclude_groups=absent,
                )
            )
        if sc.loader:
            from streamlake.lake.sink import lake_uri

            lake_root = str(WORK / sc.name / "lake")
            silver_uri = lake_uri(lake_root, "silver_device_telemetry")
            gold_uri = lake_uri(lake_root, "gold_device_temperature_1m")
            watchers["silver_delta"] = Isolated(lambda: DeltaLatency(silver_uri))
            watchers["gold_delta_after_window_end"] = Isolated(lambda: GoldWatcher(gold_uri))
        if sc.peer:
            watchers = {
                "silver_delta": Isolated(lambda: DeltaLatency(str(peer_lake / "silver"))),
                "gold_delta_after_window_end": Isolated(
                    lambda: GoldWatcher(str(peer_lake / "gold_device_1m"))
                ),
            }
        for w in watchers.values():
            w.start()
        for w in watchers.values():
            w.ready.wait(30)
        n_lat = int(half * latency_s)
        print(f"[{sc.name}] latency run: {n_lat} events at {half:.0f}/s", flush=True)
        lake_dir = peer_lake if sc.peer else WORK / sc.name / "lake"
        files_before = _delta_files(lake_dir)
        t0 = time.monotonic()
        gen.produce(bootstrap, n_lat, rate=half)
        sent_s = time.monotonic() - t0
        t_sent = time.monotonic()
        # Sustained means the jobs drain what was sent at this rate promptly: within two
        # checkpoint intervals and 5 s (commits, then one more hop downstream).
        grace_s = 2 * plat.flink.checkpoint_interval_ms / 1000 + 5
        expect = in_total + n_lat
        if sc.peer:
            while time.monotonic() < t_sent + 120 and progress()["peer"] < expect:
                time.sleep(0.5)
            drained = progress()["peer"] >= expect
        else:
            drain = Drain(plat, records, job_ids, {j: io[j][0] for j in job_ids})
            drained = drain.wait(expect, 120)
        drain_s = time.monotonic() - t_sent
        time.sleep(3)  # the last rows reach Delta and the watchers
        for w in watchers.values():
            w.stop_flag.set()
            w.join(15)
        files_after = _delta_files(lake_dir)
        sc.results["latency"] = {
            "rate_events_per_s": round(half),
            "rate_limited_by_generator": half < sc.results["capacity"]["events_per_s"] / 2,
            "achieved_send_rate": round(n_lat / sent_s),
            "drain_after_last_send_s": round(drain_s, 1) if drained else None,
            "kept_up": drained and drain_s <= grace_s,
            **{
                f"{k}_ms": {
                    "n": len(w.latencies),
                    "p50": _r(pct(w.latencies, 0.5)),
                    "p95": _r(pct(w.latencies, 0.95)),
                    "p99": _r(pct(w.latencies, 0.99)),
                }
                for k, w in watchers.items()
            },
        }
        if "alert" in watchers:
            sc.results["latency"]["alert_ms_by_rule"] = {
                rule: {"n": len(xs), "p50": _r(pct(xs, 0.5)), "p99": _r(pct(xs, 0.99))}
                for rule, xs in sorted(watchers["alert"].by_group.items())
            }
            sc.results["latency"]["alert_rules_left_out"] = sorted(absent)
        if "gold_delta_after_window_end" in watchers:
            sc.results["latency"]["gold_windows_early_partial"] = watchers[
                "gold_delta_after_window_end"
            ].early_partial
        if sc.loader or sc.peer:
            sc.results["latency"]["delta_files_per_min"] = round(
                (files_after - files_before) / ((time.monotonic() - t0) / 60), 1
            )
        sc.results["checkpoints"] = {n_: _checkpoints(plat, jid) for n_, jid in job_ids.items()}
        if job_ids:
            sc.results["profile"] = {n_: profile(plat, jid) for n_, jid in job_ids.items()}
        print(f"[{sc.name}] {json.dumps(sc.results['latency'])}", flush=True)
    finally:
        for jid in job_ids.values():
            try:
                submit.cancel_job(plat, jid, timeout_s=240)
            except Exception as exc:
                print(f"[{sc.name}] cancel {jid}: {exc}")
        for proc in (loader_proc, peer_proc):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
        kafka.delete_topics(bootstrap, topics)


PEER_PY = paths.STACK / "peer-venv" / "bin" / "python"


def start_peer(
    bootstrap: str, topics: list[str], lake: Path, work: Path
) -> subprocess.Popen[bytes]:
    if not PEER_PY.exists():
        raise SystemExit(
            f"{PEER_PY} is missing: `make bench` installs the peer (pyspark, delta-spark)"
        )
    ready = work / "peer.ready"
    ready.unlink(missing_ok=True)
    log = open(work / "peer.log", "w")
    proc = subprocess.Popen(
        [
            str(PEER_PY),
            str(paths.REPO / "bench" / "peer_spark.py"),
            "--bootstrap",
            bootstrap,
            "--topics",
            ",".join(topics),
            "--lake",
            str(lake),
            "--ready",
            str(ready),
            "--jars",
            str(paths.JARS / "peer"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=paths.REPO,
    )
    deadline = time.monotonic() + 600
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the PySpark peer did not start; see {work / 'peer.log'}")
        time.sleep(0.5)
    return proc


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def _roots() -> dict[str, int]:
    out = {}
    for name in ("kafka", "flink-jobmanager", "flink-taskmanager"):
        proc = processes.owned(name)
        if proc is not None:
            out[name] = proc.pid
    return out


def _delta_files(root: Path) -> int:
    return sum(1 for _ in root.rglob("*.parquet")) if root.exists() else 0


def wait_for_free_slots(plat: PlatformSettings, n: int, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while int(cluster.rest_get(plat, "/overview").get("slots-available", 0)) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {n} free task slots after {timeout_s:.0f}s")
        time.sleep(1)


def profile(plat: PlatformSettings, job_id: str) -> dict[str, Any]:
    """Where the first job's time goes: busy time per vertex, and the hottest frames of the
    busiest one (Flink's on-CPU flame graph, sampled through the REST API)."""
    out: dict[str, Any] = {"vertices": []}
    try:
        job = cluster.rest_get(plat, f"/jobs/{job_id}")
        busiest, most = None, -1.0
        for v in job["vertices"]:
            got = cluster.rest_get(
                plat,
                f"/jobs/{job_id}/vertices/{v['id']}/subtasks/metrics"
                "?get=busyTimeMsPerSecond,backPressuredTimeMsPerSecond&agg=max",
            )
            m = {g["id"]: g.get("max") for g in got}
            busy = float(m.get("busyTimeMsPerSecond") or 0)
            out["vertices"].append(
                {
                    "name": v["name"][:120],
                    "busy_ms_per_s": busy,
                    "backpressured_ms_per_s": m.get("backPressuredTimeMsPerSecond"),
                }
            )
            if busy > most:
                busiest, most = v["id"], busy
        url = f"/jobs/{job_id}/vertices/{busiest}/flamegraph?type=on_cpu"
        cluster.rest_get(plat, url)  # the first request starts the sampling
        time.sleep(6)
        tree = cluster.rest_get(plat, url).get("data", {})
        inclusive: dict[str, int] = {}

        def walk(n: dict[str, Any]) -> None:
            name = str(n.get("name", "?"))
            inclusive[name] = inclusive.get(name, 0) + int(n.get("value", 0))
            for c in n.get("children", []):
                walk(c)

        walk(tree)
        total = max(int(tree.get("value", 0)), 1)
        hot = sorted(
            (
                (v, k)
                for k, v in inclusive.items()
                if any(
                    w in k
                    for w in (
                        "flink.table",
                        "flink.cep",
                        "rocksdb",
                        "flink.runtime.state",
                        "flink.python",
                        "jackson",
                        "jsonpath",
                        "regex",
                    )
                )
            ),
            reverse=True,
        )[:25]
        out["busiest_frames_share"] = [(round(v / total, 3), k[:140]) for v, k in hot]
    except Exception as exc:
        out["error"] = str(exc)[:300]
    return out


def _checkpoints(plat: PlatformSettings, job_id: str) -> dict[str, Any]:
    try:
        cp = cluster.rest_get(plat, f"/jobs/{job_id}/checkpoints")
    except Exception:
        return {}
    s = cp.get("summary", {}).get("end_to_end_duration", {})
    return {
        "completed": cp.get("counts", {}).get("completed"),
        "duration_ms_p50": s.get("p50"),
        "duration_ms_max": s.get("max"),
    }


# ---------------------------------------------------------------------------------------------
# Report


def machine() -> dict[str, Any]:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        "?",
    )
    import importlib.metadata as md

    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": pyplatform.python_version(),
        "apache-flink": md.version("apache-flink"),
        "kafka": "4.1.1",
        "deltalake": md.version("deltalake"),
        "confluent-kafka": md.version("confluent-kafka"),
    }


def charts(results: dict[str, Any], stem: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, r in results["scenarios"].items():
        for job, series in r.get("capacity", {}).get("series", {}).items():
            if len(series) > 1:
                xs = [t for t, _ in series[1:]]
                ys = [
                    (b - a) / max(tb - ta, 1e-9) for (ta, a), (tb, b) in itertools.pairwise(series)
                ]
                ax.plot(xs, ys, label=f"{name}: {job}")
    ax.set_xlabel("seconds since the jobs started")
    ax.set_ylabel("records read / s (Flink: source metric per job; Spark: committed batches)")
    ax.set_title("Throughput over time (pre-loaded Bronze)")
    ax.legend()
    out.append(_save(fig, stem, "throughput"))

    fig, ax = plt.subplots(figsize=(8, 4.5))
    labels, p50, p95, p99 = [], [], [], []
    for name, r in results["scenarios"].items():
        for k, v in r.get("latency", {}).items():
            if isinstance(v, dict) and v.get("p50") is not None:
                labels.append(f"{name}\n{k.removesuffix('_ms')}")
                p50.append(v["p50"])
                p95.append(v["p95"])
                p99.append(v["p99"])
    xs = list(range(len(labels)))
    w = 0.27
    ax.bar([x - w for x in xs], p50, w, label="p50")
    ax.bar(list(xs), p95, w, label="p95")
    ax.bar([x + w for x in xs], p99, w, label="p99")
    ax.set_xticks(list(xs), labels, fontsize=7)
    ax.set_ylabel("ms from event creation to visible (read_committed)")
    ax.set_title("End-to-end latency at half the measured capacity")
    ax.legend()
    out.append(_save(fig, stem, "latency"))
    return out


def _save(fig: Any, stem: Path, what: str) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    p = stem.with_name(f"{stem.name}-{what}.png")
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p.name


def markdown(results: dict[str, Any], pngs: list[str]) -> str:
    m = results["machine"]
    lines = [
        f"# Pipeline benchmark, {results['started_at']}",
        "",
        f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['mem_gib']} GiB; Python {m['python']}, "
        f"Flink {m['apache-flink']} (PyFlink), Kafka {m['kafka']}, deltalake {m['deltalake']}. "
        f"Everything on this one machine. Settings: {json.dumps(results['settings'])}.",
        "",
        "Throughput: events pre-loaded to Bronze / seconds until every job of the scenario has "
        "processed them (a downstream job: every row its upstream committed). Latencies are "
        "p50 / p95 / p99 in ms at half that rate: from event creation to the Silver (or baseline) "
        "record visible in Kafka with read_committed, to the Silver row visible in Delta, to the "
        "alert visible in Kafka (from the last event of the match; absence rules left out, see "
        "below); Gold is from the window's end to its row visible in Delta (the watermark bound, "
        "5 s, is part of it). Kept up: after the last event was sent, every job had processed "
        "everything within two checkpoint intervals + 5 s.",
        "",
        "| scenario | events/s | first job steady events/s | catch-up s by job | CPU s / M events | kept up (drain s) | output (Kafka) | Silver (Delta) | alert (Kafka) | Gold (Delta) after window end | Delta files/min |",
        "| --- | ---: | ---: | --- | ---: | --- | --- | --- | --- | --- | ---: |",
    ]
    for name, r in results["scenarios"].items():
        c, lat = r.get("capacity", {}), r.get("latency", {})

        def trio(k: str, lat: dict[str, Any] = lat) -> str:
            v = lat.get(k) or {}
            return f"{v.get('p50')} / {v.get('p95')} / {v.get('p99')}" if v else "-"

        by_job = ", ".join(f"{k} {v}" for k, v in (c.get("catch_up_s_by_job") or {}).items())
        lines.append(
            f"| {name} | {c.get('events_per_s')} | {c.get('first_job_steady_events_per_s')} | "
            f"{by_job} | {c.get('cpu_s_per_million_events')} | "
            f"{lat.get('kept_up')} ({lat.get('drain_after_last_send_s')}) | "
            f"{trio('silver_or_output_ms')} | {trio('silver_delta_ms')} | {trio('alert_ms')} | "
            f"{trio('gold_delta_after_window_end_ms')} | {lat.get('delta_files_per_min', '-')} |"
        )
    lines += ["", "Ratios within this run:", ""]
    for k, v in results["ratios"].items():
        lines.append(f"- {k}: {v}")
    lines += ["", "Alert latency by rule (ms from the last event of the match, p50 / p99, n):", ""]
    for name, r in results["scenarios"].items():
        lat = r.get("latency", {})
        for rule, v in (lat.get("alert_ms_by_rule") or {}).items():
            left = " (absence: fires a gap after the last event; not in the alert column)"
            lines.append(
                f"- {name}, {rule}: {v['p50']} / {v['p99']} (n={v['n']})"
                + (left if rule in lat.get("alert_rules_left_out", []) else "")
            )
        if lat.get("gold_windows_early_partial"):
            lines.append(
                f"- {name}: {lat['gold_windows_early_partial']} Gold windows appeared before their "
                "end holding only late rows (allowed lateness revises a window at once); they are "
                "measured when the window fired"
            )
    lines += ["", "Peak RSS (MB) and CPU seconds per process during the capacity run:", ""]
    for name, r in results["scenarios"].items():
        c = r.get("capacity", {})
        lines.append(f"- {name}: RSS {c.get('peak_rss_mb')}, CPU {c.get('cpu_s_by_process')}")
    lines += [
        "",
        "Where the time goes (per job, at the end of the latency run: busy ms/s per vertex; "
        "hottest frames of the busiest):",
        "",
    ]
    for name, r in results["scenarios"].items():
        for job, prof in (r.get("profile") or {}).items():
            for v in prof.get("vertices", []):
                lines.append(
                    f"- {name} / {job}: {v['busy_ms_per_s']:.0f} ms/s busy, "
                    f"{v['backpressured_ms_per_s']} ms/s back-pressured: `{v['name']}`"
                )
            for share, frame in prof.get("busiest_frames_share", [])[:14]:
                lines.append(f"  - {share:.0%} `{frame}`")
    lines += ["", "Checkpoints (end-to-end duration):", ""]
    for name, r in results["scenarios"].items():
        lines.append(f"- {name}: {r.get('checkpoints')}")
    lines += [""] + [f"![{p}]({p})" for p in pngs] + [""]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=3_000_000, help="pre-loaded events, baseline")
    ap.add_argument(
        "--pipeline-events", type=int, default=100_000, help="pre-loaded events, pipeline scenarios"
    )
    ap.add_argument("--peer-events", type=int, default=300_000, help="pre-loaded events, peer")
    ap.add_argument("--latency-seconds", type=int, default=40)
    ap.add_argument("--scenarios", default="baseline,pipeline_eo,pipeline_alo,peer")
    args = ap.parse_args()
    plat = settings.load_platform()
    if not cluster.flink_healthy(plat):
        raise SystemExit("no Flink cluster: run `make up` first (make bench does)")
    spec = LoadSpec()
    known = {
        "baseline": Scenario("baseline", ["passthrough"]),
        "pipeline_eo": Scenario("pipeline_eo", PIPELINE_JOBS, loader=True),
        "pipeline_alo": Scenario("pipeline_alo", PIPELINE_JOBS, "at-least-once", loader=True),
        # The peer reads the same kind of Bronze topics ("passthrough" only declares them).
        "peer": Scenario("peer", ["passthrough"], peer=True),
    }
    started = datetime.now(UTC)
    results: dict[str, Any] = {
        "started_at": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": {
            "events": args.events,
            "peer_events": args.peer_events,
            "pipeline_events": args.pipeline_events,
            "latency_seconds": args.latency_seconds,
            "checkpoint_interval_ms": plat.flink.checkpoint_interval_ms,
            "parallelism": plat.flink.parallelism,
            "load": spec.__dict__,
        },
        "scenarios": {},
    }
    for name in args.scenarios.split(","):
        sc = known[name]
        n = (
            args.peer_events
            if sc.peer
            else args.events
            if name == "baseline"
            else args.pipeline_events
        )
        run_scenario(sc, plat, n, args.latency_seconds, spec)
        results["scenarios"][name] = sc.results
    cap = {
        k: v.get("capacity", {}).get("events_per_s") or 0 for k, v in results["scenarios"].items()
    }
    ratios = {}
    if cap.get("baseline") and cap.get("pipeline_eo"):
        ratios["pipeline_eo / baseline throughput"] = round(cap["pipeline_eo"] / cap["baseline"], 2)
    if cap.get("pipeline_alo") and cap.get("pipeline_eo"):
        ratios["exactly-once / at-least-once throughput"] = round(
            cap["pipeline_eo"] / cap["pipeline_alo"], 2
        )
    if cap.get("peer") and cap.get("pipeline_eo"):
        ratios["ours (pipeline_eo) / peer (PySpark + Delta) throughput"] = round(
            cap["pipeline_eo"] / cap["peer"], 2
        )
    results["ratios"] = ratios
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"{started.date().isoformat()}-pipeline"
    pngs = charts(results, stem)
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(results, pngs))
    print(stem.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
