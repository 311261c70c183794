"""Every event-time reader of Silver (the Gold job, the DataStream job) takes its watermark from
the rows (stream_watermark_at), one Kafka partition at a time. That needs two promises of the
Silver sinks, at every parallelism: each Silver partition has exactly one writer, so the watermark
a row carries bounds every on-time row after it in its partition; and every partition gets rows,
so no reader waits for an empty partition to be declared idle (Flink counts idleness only while a
source is not back-pressured: a reader catching up would wait on it for as long as it is behind).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from typing import Any

import pytest

from connectors import kafka
from jobs import catalog
from streamlake.config import settings
from streamlake.runtime import flinkenv
from tests.conftest import SilverConf
from tests.support import catchup_stream as cs
from tests.support import pipeline_checks as pc
from tests.support.timefmt import from_iso

SILVER_PARTITIONS = 3
N_EVENTS = 3_000


def _ms(v: str | None) -> int | None:
    return None if v is None else from_iso(v)


@pytest.mark.parametrize("parallelism", [1, 2])
def test_every_silver_partition_has_rows_from_one_writer(
    parallelism: int, silver_conf: SilverConf, bootstrap: str
) -> None:
    sc = silver_conf
    sc.edit("silver.yaml", max_record_bytes=cs.MAX_RECORD_BYTES)
    job = catalog.get("silver", sc.dir)
    cfgs = job.topic_configs()
    for t in job.topics():
        kafka.create_topics(bootstrap, [t], partitions=SILVER_PARTITIONS, topic_config=cfgs.get(t))
    end = (int(time.time() * 1000) - 3 * cs.HOUR) // 60_000 * 60_000
    recs = cs.generate(20261203, N_EVENTS, end)
    pc.send(sc, bootstrap, pc.interleaved(recs))
    platform = settings.load_platform(sc.dir / "platform.yaml")
    t_env = flinkenv.table_env(
        platform, name=f"silver-{sc.uid}", local=True, parallelism=parallelism
    )
    job.run(t_env, platform, bounded=True).wait()

    for et in cs.BOUND_MS:
        by_part: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for part, _off, _k, v in kafka.read_committed_records(
            bootstrap, sc.silver(et), f"r-{sc.uid}-{et}", timeout_s=60
        ):
            assert v is not None
            by_part[part].append(json.loads(v))
        want = sum(1 for r in recs if r.fate == "silver" and r.event_type == et)
        assert sum(len(rows) for rows in by_part.values()) == want, et
        # Every partition has rows: at parallelism 1 too (Flink's 'fixed' partitioner would
        # write partition 0 only).
        assert sorted(by_part) == list(range(SILVER_PARTITIONS)), (et, sorted(by_part))
        for part, rows in by_part.items():
            carried = [_ms(r["stream_watermark_at"]) for r in rows]
            # One writer per partition: the watermark its rows carry never goes back (two
            # writers' watermarks would interleave).
            known = [w for w in carried if w is not None]
            assert known == sorted(known), (et, part)
            # So it bounds what follows: every on-time row is later than every watermark
            # carried before it in its partition.
            highest: int | None = None
            for r, w in zip(rows, carried, strict=True):
                at, pw = from_iso(r["event_at"]), _ms(r["partition_watermark_at"])
                if highest is not None and (pw is None or at > pw):
                    assert at > highest, (et, part, r["event_id"])
                if w is not None:
                    highest = w if highest is None else max(highest, w)
