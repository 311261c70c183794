"""Exactly-once into Delta, proven by killing the loader.

While a generator sends 200,000 events, the loader process is SIGKILLed (at least 10 times) and
restarted: every other kill at a seeded random moment (start-up, reading, writing, committing),
the others the instant the loader has put a commit's first Parquet file in place (inotify). A
kill counts as landing between writing a commit's files and committing them only if it left a
data file that no commit of the Delta log names; at least 3 must. Afterwards the Delta table
holds exactly the topic's records: every (partition, offset) once, none missing, the files of
the interrupted commits ignored. Replaying the same offsets from scratch adds no rows and no
table versions.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from deltalake import DeltaTable

from connectors import kafka
from streamlake.lake.sink import read_delta
from tests.support.lake_files import Appearing, is_data_file, uncommitted_files

EVENTS = 200_000
KILLS = 10
MID_COMMIT = 3  # kills that must land between writing a commit's files and committing them
COLUMNS = "tenant_id:string,event_type:string,event_id:string,n:int64"


def loader_cmd(bootstrap: str, topic: str, uri: str, group: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "streamlake.lake.loader",
        "--bootstrap",
        bootstrap,
        "--group",
        group,
        "--table",
        "silver_kill_test",
        "--topic",
        topic,
        "--uri",
        uri,
        "--columns",
        COLUMNS,
        "--partition-by",
        "tenant_id,ingest_date",
        "--flush-rows",
        "7000",
        "--flush-ms",
        "150",
        *extra,
    ]


def produce_all(bootstrap: str, topic: str, rng: random.Random, done: threading.Event) -> None:
    for start in range(0, EVENTS, 10_000):
        batch = [
            (
                None,
                json.dumps(
                    {
                        "tenant_id": rng.choice(["acme", "globex"]),
                        "event_type": "orders",
                        "event_id": f"e{i}",
                        "n": i,
                    }
                ).encode(),
            )
            for i in range(start, start + 10_000)
        ]
        kafka.produce(bootstrap, topic, batch)
        time.sleep(0.6)  # spread the load over the kill period (a rate, not a wait)
    done.set()


def table_rows(uri: str) -> list[dict[str, Any]]:
    t = read_delta(uri, ["kafka_partition", "kafka_offset", "event_id", "n"])
    rows: list[dict[str, Any]] = t.to_pylist()
    return rows


def test_sigkilled_loader_loses_nothing_and_duplicates_nothing(
    bootstrap: str, topic_factory: object, tmp_path: Path
) -> None:
    topic = topic_factory("silver_kill_test", partitions=3)  # type: ignore[operator]
    uri = str(tmp_path / "lake" / "silver_kill_test")
    group = f"loader-{uuid.uuid4().hex[:8]}"
    rng = random.Random(20261124)
    produced = threading.Event()
    gen = threading.Thread(target=produce_all, args=(bootstrap, topic, random.Random(7), produced))
    gen.start()
    env = dict(os.environ)
    log = (tmp_path / "loader.log").open("ab")
    table = Path(uri)
    files = Appearing(table, skip=("_delta_log",))
    landed: list[str] = []  # per kill: "mid-commit" if it left a file no commit names, else "-"
    try:
        while (
            len(landed) < KILLS or landed.count("mid-commit") < MID_COMMIT or not produced.is_set()
        ):
            assert len(landed) < 4 * KILLS, f"too few kills landed mid-commit: {landed}"
            orphans_before = uncommitted_files(table)
            files.drain()
            p = subprocess.Popen(
                loader_cmd(bootstrap, topic, uri, group), stdout=log, stderr=log, env=env
            )
            if len(landed) % 2 == 0:
                time.sleep(rng.uniform(1.0, 3.0))  # a random moment
            else:
                files.next(is_data_file, timeout_s=20)  # the instant a commit wrote a file
            p.send_signal(signal.SIGKILL)
            p.wait()
            landed.append("mid-commit" if uncommitted_files(table) - orphans_before else "-")
    finally:
        files.close()
    gen.join()
    assert landed.count("mid-commit") >= MID_COMMIT, landed
    orphans = uncommitted_files(table)
    assert orphans, "a kill between writing files and committing leaves files no commit names"

    # Drain: one clean run that exits once it has seen no new data for 3 s.
    subprocess.run(
        loader_cmd(bootstrap, topic, uri, group, "--idle-exit", "3"),
        stdout=log,
        stderr=log,
        env=env,
        check=True,
        timeout=300,
    )
    rows = table_rows(uri)
    where = [(r["kafka_partition"], r["kafka_offset"]) for r in rows]
    assert len(where) == len(set(where)), f"{len(where) - len(set(where))} duplicated rows"
    assert sorted(r["n"] for r in rows) == list(range(EVENTS)), "rows lost"
    version = DeltaTable(uri).version()

    # Replaying from scratch (a new group, so Kafka offsets say "from the beginning"): the loader
    # seeks to the Delta log's versions and adds nothing.
    subprocess.run(
        loader_cmd(bootstrap, topic, uri, f"replay-{group}", "--idle-exit", "3"),
        stdout=log,
        stderr=log,
        env=env,
        check=True,
        timeout=300,
    )
    assert DeltaTable(uri).version() == version
    assert len(table_rows(uri)) == EVENTS
    assert uncommitted_files(table) >= orphans, "the interrupted commits' files stay unread"
    print(
        f"{len(landed)} kills ({landed.count('mid-commit')} between writing files and committing), "
        f"{version + 1} table versions, {len(orphans)} files written but never committed"
    )


def test_two_loaders_in_one_group_share_the_partitions(
    bootstrap: str, topic_factory: object, tmp_path: Path
) -> None:
    """Scale-out: loaders with distinct instance ids split the partitions; still exactly once."""
    topic = topic_factory("silver_scale_test", partitions=4)  # type: ignore[operator]
    uri = str(tmp_path / "lake" / "silver_scale_test")
    group = f"scale-{uuid.uuid4().hex[:8]}"
    logs = [tmp_path / f"loader-{i}.log" for i in range(2)]
    procs = [
        subprocess.Popen(
            loader_cmd(
                bootstrap, topic, uri, group, "--idle-exit", "8", "--instance-id", f"loader-{i}"
            ),
            stdout=logs[i].open("wb"),
            stderr=subprocess.STDOUT,
        )
        for i in range(2)
    ]
    # Both must own partitions before the data arrives, or the first could take it all.
    deadline = time.monotonic() + 60
    while not all("assigned" in log.read_text() for log in logs):
        assert time.monotonic() < deadline, "the loaders did not both get partitions"
        assert all(p.poll() is None for p in procs), "a loader exited early"
        time.sleep(0.1)
    n = 40_000
    kafka.produce(
        bootstrap,
        topic,
        [
            (
                None,
                json.dumps(
                    {"tenant_id": "acme", "event_type": "orders", "event_id": f"e{i}", "n": i}
                ).encode(),
            )
            for i in range(n)
        ],
    )
    for p in procs:
        assert p.wait(timeout=300) == 0
    rows = table_rows(uri)
    assert sorted(r["n"] for r in rows) == list(range(n))
    committed_by = [log.read_text().count("rows committed") for log in logs]
    assert all(c > 0 for c in committed_by), f"one loader did all the work: {committed_by}"
