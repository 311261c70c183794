"""One event stamped hours in the future, end to end (Bronze -> Silver -> Gold): Silver rejects
it (DLQ, event_time_in_future) before any watermark sees it, so no on-time event becomes late.
A duplicate on the way is dropped by Silver and counted once in Gold."""

from __future__ import annotations

import json
import time
from pathlib import Path

from connectors import kafka
from jobs import catalog
from streamlake.config import settings
from streamlake.runtime import flinkenv
from tests.conftest import make_silver_conf
from tests.job.test_gold import AGGREGATES, BOUND_MS, GoldConf, check_all, oracle_aggregate, to_rows
from tests.oracles import gold as oracle


def test_a_future_clock_drops_no_on_time_event_as_late(
    tmp_path: Path, uid: str, bootstrap: str
) -> None:
    gc = GoldConf(make_silver_conf(tmp_path, uid))
    silver_job = catalog.get("silver", gc.dir)
    gold_job = catalog.get("gold", gc.dir)
    topics = sorted(set(silver_job.topics()) | set(gold_job.topics()))
    for t in topics:
        kafka.create_topics(
            bootstrap, [t], partitions=1, topic_config=silver_job.topic_configs().get(t)
        )
    try:
        now = int(time.time() * 1000)
        events = []
        for i in range(240):
            ts = now - 120_000 + i * 500 - (i % 3) * 700  # in order, up to 1.4 s of disorder
            events.append(
                {
                    "tenant_id": "acme",
                    "event_type": "device_telemetry",
                    "schema_version": 1,
                    "event_id": f"ev-{i}",
                    "event_time": ts,
                    "device_id": f"dev-{i % 4}",
                    "temperature_c": 20.0 + i % 7,
                    "humidity_pct": 50,
                }
            )
        future = {**events[0], "event_id": "from-the-future", "event_time": now + 3 * 3_600_000}
        events.insert(100, future)
        events.insert(150, dict(events[60]))  # a producer retry: Silver drops it, Gold counts once
        kafka.produce(
            bootstrap,
            gc.sc.bronze("acme"),
            [(None, json.dumps(e).encode()) for e in events],
        )
        platform = settings.load_platform(gc.dir / "platform.yaml")
        for job in (silver_job, gold_job):
            t_env = flinkenv.table_env(
                platform, name=f"{job.name}-{uid}", local=True, parallelism=1
            )
            job.run(t_env, platform, bounded=True).wait()

        dlq = kafka.read_committed_json(bootstrap, gc.sc.dlq, group_id=f"r-{uid}-dlq")
        assert [
            (
                json.loads(__import__("base64").b64decode(r["raw_value"]))["event_id"],
                r["reason_codes"],
            )
            for r in dlq
        ] == [("from-the-future", ["event_time_in_future"])]
        silver = kafka.read_committed_json(bootstrap, gc.silver, group_id=f"r-{uid}-silver")
        assert len(silver) == 240
        late = kafka.read_committed_json(bootstrap, gc.late, group_id=f"r-{uid}-late")
        assert late == []
        out = check_all(bootstrap, gc, silver)
        assert out["late"] == []
        # Had the future event reached the watermark, every event after it would be late.
        rows = to_rows(silver)
        poisoned = [
            *rows[:100],
            {**rows[0], "t": future["event_time"], "event_id": "x"},
            *rows[100:],
        ]
        assert len(oracle.split_late(poisoned, BOUND_MS)[1]) == 140
        tumble = oracle.gold(rows, BOUND_MS, oracle_aggregate("t_tumble"))
        assert sum(r["readings"] for r in tumble.values()) == 240
        assert set(AGGREGATES) >= {"t_tumble"}
    finally:
        kafka.delete_topics(bootstrap, topics)
