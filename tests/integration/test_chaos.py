"""Exactly-once under failure, end to end: the Silver, Gold and device_anomaly jobs and the Delta
loader on a private stack, fed the seeded catch-up stream (100,000 events, 2 tenants x 3
partitions, 2 h of event time, late, duplicate and bad records) trickled in live by a producer,
while

- the TaskManager is SIGKILLed at least 5 times, each the instant a checkpoint is triggered (the
  kill counts only if that checkpoint then never completed and the job restored an earlier one),
- the broker is SIGKILLed once,
- the loader is SIGKILLed at least 5 times, at least twice between writing a commit's Parquet
  files and committing them (proven by a data file that no commit of the Delta log names),

and the supervisor restarts each. Afterwards every Delta table equals what an uninterrupted run
gives: the oracle (tests/oracles/catchup.py) that tests/integration/test_catchup.py holds a
backlog run to. Bronze holds every record sent, once; Silver, the DLQ, the late rows, every fired
Gold window, the alerts of the SQL rules and of the DataStream job, and the audit counts equal the
oracle, conserved per tenant. Each kill and its recovery time are printed.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from connectors import kafka
from jobs import catalog
from streamlake.lake import landing as lake
from streamlake.lake.sink import DeltaSink, read_delta
from streamlake.stack import cluster
from tests.conftest import SilverConf
from tests.oracles import catchup
from tests.support import catchup_stream as cs
from tests.support import pipeline_checks as pc
from tests.support.lake_files import Appearing, committed_files, is_data_file
from tests.support.private_stack import PrivateStack, private_stack, wait_until

# Part of `make test`; `make chaos` runs it alone.
pytestmark = pytest.mark.chaos

N_EVENTS = 100_000
SEED = 20261202
TM_KILLS = 5
LOADER_KILLS = 5
LOADER_MID_COMMIT = 2
CHUNK = 1_000
CHUNK_PAUSE_S = 1.2  # ~100,000 events over about two minutes, while the kills go on
ANOMALY_RULES = {"device_temperature_zscore", "device_silent"}  # conf/streams/device_anomaly.yaml


@dataclass
class Kill:
    what: str
    pid: int
    at: float  # monotonic
    landed: str = ""  # where it landed, as proven afterwards ("" if it proved nothing)
    recovery_s: float | None = None


@pytest.fixture(scope="module")
def stream() -> dict[str, Any]:
    return pc.seeded_stream(SEED, N_EVENTS)


@pytest.fixture(scope="module")
def chaos(tmp_path_factory: pytest.TempPathFactory) -> Any:
    base = tmp_path_factory.mktemp("chaos")
    sc = pc.private_conf(base / "c", "chaos")
    # Every Bronze partition has data until the flush, so no partition is ever idle here, and a
    # partition must not be taken for idle either: while the broker is down the Silver job keeps
    # running and reads nothing, and after silver.yaml's idle_timeout (30 s) every partition
    # would count as idle; when the broker is back, the first partition read would move the
    # stream watermark alone and on-time rows of the others could be classified late (seen
    # with the broker stopped for 45 s). The same holds one job downstream: while the Silver job
    # restarts, every Silver partition is quiet, and the Gold and device_anomaly jobs would take
    # them for idle (seen: 23 on-time orders late after a restart, with a 10 s Gold timeout).
    # That is idleness, not exactly-once under kills: this test keeps it out with timeouts
    # longer than any outage it causes.
    sc.edit("silver.yaml", idle_timeout="10min")
    sc.edit("gold.yaml", idle_timeout="10min")
    sc.edit("streams/device_anomaly.yaml", idle_timeout="10min")
    with private_stack(
        base / "s",
        "chaos",
        conf=sc.dir,
        flink={
            "task_slots": 3,
            "taskmanager_memory": "2048m",
            "checkpoint_interval_ms": 2000,
            # Every kill fails the jobs (the broker's many times, until it is back): a budget
            # far above this test's failures, restarting quickly.
            "restart": {"max_failures_per_interval": 100, "interval": "10min", "delay": "2s"},
        },
        # Kills come faster than the default 60 s that resets the back-off.
        platform={
            "supervisor": {"backoff_initial": "1s", "backoff_max": "2s", "reset_after": "5s"}
        },
    ) as st:
        yield st, SilverConf(st.conf, "chaos")


# -- Flink, through its REST API ----------------------------------------------------------------


def _rest(st: PrivateStack, path: str) -> Any:
    try:
        return cluster.rest_get(st.platform, path, timeout_s=2)
    except (OSError, ValueError):
        return None


def latest_completed(st: PrivateStack, jid: str) -> int:
    cp = _rest(st, f"/jobs/{jid}/checkpoints") or {}
    done = (cp.get("latest") or {}).get("completed") or {}
    return int(done.get("id", -1))


def recovered(st: PrivateStack, past: dict[str, int]) -> bool:
    """Every job runs all its tasks and has completed a checkpoint after `past[job]`."""
    for jid, ckpt in past.items():
        job = _rest(st, f"/jobs/{jid}")
        if not job or job["state"] != "RUNNING":
            return False
        if any(v["status"] != "RUNNING" for v in job["vertices"]):
            return False
        if latest_completed(st, jid) <= ckpt:
            return False
    return True


def sample_watermarks(st: PrivateStack, job_ids: list[str], stop: threading.Event) -> None:
    """Every 2 s, each job's vertices' input watermarks and their sources' split watermarks and
    idleness, one JSON line per sample in <stack>/watermarks.jsonl: where a failed run's event
    time stopped, and when."""
    out = st.dir / "watermarks.jsonl"
    t0 = time.monotonic()
    while not stop.wait(2.0):
        sample: dict[str, Any] = {"t": round(time.monotonic() - t0, 1)}
        for jid in job_ids:
            job = _rest(st, f"/jobs/{jid}") or {}
            verts: dict[str, Any] = {}
            for v in job.get("vertices", []):
                wm = _rest(st, f"/jobs/{jid}/vertices/{v['id']}/watermarks") or []
                entry: dict[str, Any] = {"wm": [w.get("value") for w in wm]}
                if v["name"].startswith("Source"):
                    names = _rest(st, f"/jobs/{jid}/vertices/{v['id']}/metrics") or []
                    want = [
                        m["id"]
                        for m in names
                        if "split" in m["id"] and ("Watermark" in m["id"] or "dle" in m["id"])
                    ]
                    if want:
                        q = urllib.parse.quote(",".join(want[:40]))
                        got = _rest(st, f"/jobs/{jid}/vertices/{v['id']}/metrics?get={q}") or []
                        entry["splits"] = {m["id"]: m.get("value") for m in got}
                verts[v["name"][:60]] = entry
            sample[jid[:8]] = {"state": job.get("state"), "vertices": verts}
        with out.open("a") as f:
            f.write(json.dumps(sample) + "\n")


def checkpoint_never_completed(st: PrivateStack, jid: str, ckpt: int) -> bool:
    """The in-flight checkpoint did not complete, and the job restored one before it."""
    cp = _rest(st, f"/jobs/{jid}/checkpoints") or {}
    status = {int(h["id"]): h["status"] for h in cp.get("history", [])}
    restored = (cp.get("latest") or {}).get("restored") or {}
    return status.get(ckpt) != "COMPLETED" and int(restored.get("id", -1)) < ckpt


# -- the lake's files ---------------------------------------------------------------------------


def is_checkpoint(p: Path, is_dir: bool) -> bool:
    """A checkpoint's folder: Flink makes chk-<n> when it triggers checkpoint n and writes its
    _metadata there when the checkpoint completes."""
    return is_dir and p.name.startswith("chk-")


def table_dir_of(root: Path, f: Path) -> Path:
    return root / f.relative_to(root).parts[0]


def dead(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return True
    return stat[0] == "Z"


# -- the chaos ------------------------------------------------------------------------------------


def kill(st: PrivateStack, name: str) -> Kill:
    pid = st.pid(name)
    k = Kill(name, pid, time.monotonic())
    os.kill(pid, signal.SIGKILL)
    wait_until(f"{name} pid {pid} is gone", lambda: dead(pid), 10)
    return k


def restarted_after(st: PrivateStack, name: str, k: Kill) -> None:
    wait_until(
        f"the supervisor restarts {name}",
        lambda: st.watch(name)["state"] == "up" and st.pid_or_none(name) not in (None, k.pid),
        120,
    )


def kill_loader(
    st: PrivateStack, root: Path, rng: random.Random, stop: threading.Event
) -> list[Kill]:
    """Kill the loader at random moments, each the instant a commit has put a data file in place."""
    kills: list[Kill] = []
    files = Appearing(root, skip=("_delta_log", "audit_loader_batches"))
    try:
        while len(kills) < 4 * LOADER_KILLS and not stop.is_set():
            mid = sum(1 for k in kills if k.landed)
            if len(kills) >= LOADER_KILLS and mid >= LOADER_MID_COMMIT:
                break
            if stop.wait(rng.uniform(1.0, 4.0)):
                break
            files.drain()
            f = files.next(is_data_file, timeout_s=20)
            if f is None:
                continue
            k = kill(st, "loader")
            # The loader is dead. If no commit names the file, the kill landed between writing
            # the commit's files and committing them (the restarted loader writes the batch
            # again, in new files, and this one stays an orphan no reader sees).
            table = table_dir_of(root, f)
            if str(f.relative_to(table)) not in committed_files(table):
                k.landed = f"mid-commit ({table.name})"
            restarted_after(st, "loader", k)
            wait_until("the loader subscribed again", (st.dir / "run" / "loader.ready").exists)
            k.recovery_s = time.monotonic() - k.at
            kills.append(k)
    finally:
        files.close()
    return kills


def kill_flink_and_broker(st: PrivateStack, job_ids: list[str], rng: random.Random) -> list[Kill]:
    """Kill the TaskManager the instant a checkpoint is triggered, and once the broker."""
    kills: list[Kill] = []
    ckpts = Appearing(st.dir / "flink" / "checkpoints", skip=("shared", "taskowned"))
    try:
        attempts = 0
        while sum(1 for k in kills if k.what == "flink-taskmanager" and k.landed) < TM_KILLS:
            attempts += 1
            assert attempts <= 3 * TM_KILLS, [k.landed for k in kills]
            time.sleep(rng.uniform(2.0, 6.0))
            if len([k for k in kills if k.what == "flink-taskmanager"]) == 2 and not any(
                k.what == "kafka" for k in kills
            ):
                past = {jid: latest_completed(st, jid) for jid in job_ids}
                k = kill(st, "kafka")
                restarted_after(st, "kafka", k)
                wait_until(
                    "the jobs recover from the broker's restart", partial(recovered, st, past), 300
                )
                k.recovery_s, k.landed = time.monotonic() - k.at, "broker"
                kills.append(k)
                continue
            past = {jid: latest_completed(st, jid) for jid in job_ids}
            ckpts.drain()
            flight = ckpts.next(is_checkpoint, timeout_s=60)
            assert flight is not None, "no checkpoint triggered within 60 s"
            k = kill(st, "flink-taskmanager")
            jid, ckpt = flight.parent.name, int(flight.name.removeprefix("chk-"))
            past[jid] = max(past[jid], ckpt)
            restarted_after(st, "flink-taskmanager", k)
            wait_until(
                "the jobs recover from the TaskManager's death", partial(recovered, st, past), 300
            )
            k.recovery_s = time.monotonic() - k.at
            if checkpoint_never_completed(st, jid, ckpt):
                k.landed = f"mid-checkpoint ({jid[:8]} #{ckpt})"
            kills.append(k)
    finally:
        ckpts.close()
    return kills


def send_all(
    st: PrivateStack, sc: SilverConf, recs: list[cs.Rec], errors: list[BaseException]
) -> None:
    try:
        ordered = pc.interleaved(recs)
        for i in range(0, len(ordered), CHUNK):
            pc.send(sc, st.platform.kafka.bootstrap, ordered[i : i + CHUNK])
            time.sleep(CHUNK_PAUSE_S)
    except BaseException as e:  # re-raised in the test's thread
        errors.append(e)


# -- the test -------------------------------------------------------------------------------------


def test_every_delta_table_survives_kills_exactly_once(
    chaos: tuple[PrivateStack, SilverConf], stream: dict[str, Any]
) -> None:
    st, sc = chaos
    bootstrap = st.platform.kafka.bootstrap
    jobs = [catalog.get("silver", sc.dir), catalog.get("gold", sc.dir)]
    cfgs = {t: c for j in jobs for t, c in j.topic_configs().items()}
    for t in sorted({t for j in jobs for t in j.topics()}):
        kafka.create_topics(bootstrap, [t], partitions=cs.PARTITIONS, topic_config=cfgs.get(t))
    _lake, sinks = lake.all_sinks(sc.dir)
    root = Path(_lake.root())
    log = st.dir / "logs" / "loader.log"
    wait_until(
        "the loader is assigned every topic",
        lambda: (
            log.exists()
            and all(f"assigned {t}[0]" in log.read_text() for s in sinks for t in s.topics)
        ),
        60,
    )
    job_ids = [
        _submitted(st.jobs("submit", name, "--parallelism", "1"))
        for name in ("silver", "gold", "device_anomaly")
    ]
    wait_until("both jobs checkpoint", lambda: recovered(st, {j: 0 for j in job_ids}), 180)

    recs, flush, want = stream["recs"], stream["flush"], stream["want"]
    rng = random.Random(SEED)
    errors: list[BaseException] = []
    stop = threading.Event()
    loader_kills: list[Kill] = []
    sender = threading.Thread(target=send_all, args=(st, sc, recs, errors), daemon=True)

    def loader_chaos() -> None:
        try:
            loader_kills.extend(kill_loader(st, root, random.Random(SEED + 1), stop))
        except BaseException as e:  # re-raised in the test's thread
            errors.append(e)

    killer = threading.Thread(target=loader_chaos, daemon=True)
    sampler = threading.Thread(target=sample_watermarks, args=(st, job_ids, stop), daemon=True)
    t0 = time.monotonic()
    sender.start()
    killer.start()
    sampler.start()
    try:
        flink_kills = kill_flink_and_broker(st, job_ids, rng)
        sender.join(timeout=600)
        assert not sender.is_alive() and not errors, errors
        t_sent = time.monotonic() - t0
        pc.send(sc, bootstrap, flush[:6])
        wait_until(
            "Silver has read the data", lambda: pc.audit_read(bootstrap, sc) == len(recs) + 6, 400
        )
        pc.send(sc, bootstrap, flush[6:])
        wait_until(
            "Silver has read everything",
            lambda: pc.audit_read(bootstrap, sc) == len(recs) + len(flush),
            400,
        )
        killer.join(timeout=300)
        assert not killer.is_alive(), "the loader kills did not end"
        assert not errors, errors
    except BaseException:
        stop.set()
        raise

    kills = sorted(flink_kills + loader_kills, key=lambda k: k.at)
    print(f"\n{len(recs) + len(flush)} events sent in {t_sent:.0f}s while killing:")
    for k in kills:
        print(
            f"  +{k.at - t0:6.1f}s {k.what:18} pid {k.pid:<7} {k.landed or '-':40} back in {k.recovery_s:.1f}s"
        )
    tm = [k for k in flink_kills if k.what == "flink-taskmanager"]
    assert len([k for k in tm if k.landed]) >= TM_KILLS
    assert [k.what for k in flink_kills].count("kafka") == 1
    assert len(loader_kills) >= LOADER_KILLS
    assert len([k for k in loader_kills if k.landed]) >= LOADER_MID_COMMIT, [
        k.landed for k in loader_kills
    ]
    # The kills overlapped the stream, not a quiet pipeline.
    assert kills[0].at - t0 < t_sent

    by_table = {s.table: s for s in sinks}
    expected = landed_expectations(want, stream, sc)

    def lake_equals() -> bool:
        return all(got == expected[name] for name, got in lake_state(by_table, sc, stream).items())

    try:
        try:
            wait_until("every Delta table equals the oracle", lake_equals, 400)
        except AssertionError:
            got = lake_state(by_table, sc, stream)
            raise AssertionError(
                "Delta tables that differ from the oracle:\n"
                + "\n".join(
                    differences(n, expected[n], g) for n, g in got.items() if g != expected[n]
                )
            ) from None
        check_lake(by_table, sc, stream, recs + flush)
    finally:
        stop.set()


def _submitted(out: str) -> str:
    m = re.search(r"Flink job ([0-9a-f]{32})", out)
    assert m, out
    return m.group(1)


def _rows(sink: DeltaSink, columns: list[str] | None = None) -> list[dict[str, Any]]:
    try:
        rows: list[dict[str, Any]] = read_delta(sink.uri, columns).to_pylist()
        return rows
    except Exception:  # not created yet
        return []


def landed_expectations(
    want: catchup.Expected, stream: dict[str, Any], sc: SilverConf
) -> dict[str, Any]:
    out: dict[str, Any] = {f"silver_{et}": len(want.silver[et]) for et in cs.BOUND_MS} | {
        f"late_{et}": want.late[et] for et in cs.BOUND_MS
    }
    out["dlq_events"] = want.dlq
    for name, rows in pc.gold_expected(sc.dir, stream).items():
        out[f"gold_{name}"] = rows
    out["alert_events"] = pc.alerts_expected(stream)
    out["alert_events (device_anomaly)"] = pc.anomaly_expected(sc.dir, stream)
    return out


def differences(table: str, want: Any, got: Any) -> str:
    """What a table lacks and has too many of, against the oracle, in a line."""
    if isinstance(want, dict) and isinstance(got, dict):
        keys = sorted({*want, *got}, key=repr)
        lacks = [k for k in keys if k not in got]
        extra = [k for k in keys if k not in want]
        changed = [
            (k, want[k], got[k]) for k in keys if k in want and k in got and want[k] != got[k]
        ]
        return f"  {table}: {len(lacks)} missing {lacks[:3]}, {len(extra)} extra {extra[:3]}, {len(changed)} differ {changed[:2]}"
    if not isinstance(want, set | frozenset | list | tuple | Counter):
        return f"  {table}: want {want!r}, got {got!r}"
    w, g = Counter(map(repr, want)), Counter(map(repr, got))
    lacks, extra = sorted((w - g).elements()), sorted((g - w).elements())
    return f"  {table}: {len(lacks)} missing {lacks[:5]}, {len(extra)} extra {extra[:5]}"


def lake_state(
    by_table: dict[str, DeltaSink], sc: SilverConf, stream: dict[str, Any]
) -> dict[str, Any]:
    """What the Delta tables hold, in the shape of landed_expectations."""
    out: dict[str, Any] = {}
    for et in cs.BOUND_MS:
        out[f"silver_{et}"] = len(_rows(by_table[f"silver_{et}"], ["event_id"]))
        out[f"late_{et}"] = pc.ids(_rows(by_table[f"late_{et}"], ["tenant_id", "event_id"]))
    dlq = _rows(by_table["dlq_events"], ["tenant_id", "reason_codes"])
    out["dlq_events"] = Counter((r["tenant_id"], r["reason_codes"][0]) for r in dlq)
    cutoff = stream["end"] + pc.CUTOFF_AFTER_END_MS
    for name, (_et, agg) in pc.aggregates(sc.dir).items():
        out[f"gold_{name}"] = pc.gold_got(_rows(by_table[f"gold_{name}"]), agg, cutoff)
    alerts = _rows(by_table["alert_events"])
    out["alert_events"] = pc.alerts_got(alerts, stream)
    out["alert_events (device_anomaly)"] = pc.anomaly_got(alerts, stream, ANOMALY_RULES)
    return out


def check_lake(
    by_table: dict[str, DeltaSink], sc: SilverConf, stream: dict[str, Any], sent: list[cs.Rec]
) -> None:
    want: catchup.Expected = stream["want"]
    # Bronze: every record sent, once, with its bytes.
    bronze = _rows(
        by_table["bronze_events"],
        ["tenant_id", "raw_value", "kafka_topic", "kafka_partition", "kafka_offset"],
    )
    places = Counter((r["kafka_topic"], r["kafka_partition"], r["kafka_offset"]) for r in bronze)
    assert max(places.values()) == 1, "a Bronze record landed twice"
    assert Counter((r["tenant_id"], r["raw_value"]) for r in bronze) == Counter(
        (r.topic_tenant, r.value) for r in sent
    )
    # Every other table has each Kafka record once.
    for s in by_table.values():
        if s.table == "bronze_events" or s.merge_keys:
            continue
        rows = _rows(s, ["kafka_topic", "kafka_partition", "kafka_offset"])
        dup = Counter((r["kafka_topic"], r["kafka_partition"], r["kafka_offset"]) for r in rows)
        assert not rows or max(dup.values()) == 1, f"{s.table}: a record landed twice"
    silver = {et: _rows(by_table[f"silver_{et}"]) for et in cs.BOUND_MS}
    dlq = _rows(by_table["dlq_events"])
    audit = _rows(by_table["audit_silver_counts"])
    keys = Counter(
        tuple(r[k] for k in s.merge_keys) for s in [by_table["audit_silver_counts"]] for r in audit
    )
    assert max(keys.values()) == 1, "audit_silver_counts: a key twice"
    pc.check_silver(want, silver, dlq, audit)
    sent_per_tenant = Counter(r.topic_tenant for r in sent)
    assert pc.read_counts(audit) == sent_per_tenant
    for et in cs.BOUND_MS:
        assert pc.ids(_rows(by_table[f"late_{et}"])) == want.late[et], et
    cutoff = stream["end"] + pc.CUTOFF_AFTER_END_MS
    expected = pc.gold_expected(sc.dir, stream)
    for name, (_et, agg) in pc.aggregates(sc.dir).items():
        rows = _rows(by_table[f"gold_{name}"])
        windows = Counter(
            (r["tenant_id"], *(r[g] for g in agg.group_by), r["window_start"], r["window_end"])
            for r in rows
        )
        assert max(windows.values()) == 1, f"gold_{name}: a window twice"
        assert pc.gold_got(rows, agg, cutoff) == expected[name], name
    alerts = _rows(by_table["alert_events"])
    assert pc.alerts_got(alerts, stream) == pc.alerts_expected(stream)
    want_anomaly = pc.anomaly_expected(sc.dir, stream)
    assert pc.anomaly_got(alerts, stream, ANOMALY_RULES) == want_anomaly
