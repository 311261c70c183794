"""The Silver job submitted to the standalone cluster with `flink run`, on the real broker."""

from __future__ import annotations

import base64
import hashlib
import time
from collections import Counter
from pathlib import Path

import polars as pl

from connectors import kafka
from streamlake.config import registry, settings
from streamlake.lake import landing as lake
from streamlake.lake.loader import Loader
from streamlake.runtime import submit
from streamlake.stack import cluster
from tests.conftest import SilverConf
from tests.job.test_silver_corpus import create_topics, read, send
from tests.support import silver_corpus


def test_silver_on_the_cluster_then_into_delta(
    silver_conf: SilverConf, bootstrap: str, tmp_path: Path
) -> None:
    sc = silver_conf
    platform = settings.load_platform(sc.dir / "platform.yaml")
    # A DLQ value limit some rejected records of the corpus exceed (their bytes are cut).
    dlq_limits = registry.load_registry(sc.dir).silver.dlq.model_dump()
    sc.edit("silver.yaml", dlq={**dlq_limits, "max_value_bytes": 256})
    assert cluster.flink_healthy(platform), "run `make up` (make test does)"
    job = create_topics(sc, bootstrap)
    cases = [
        c for c in silver_corpus.build(int(time.time() * 1000), 1_048_576) if c.name != "oversized"
    ]
    placed = send(sc, bootstrap, cases)

    job_id = submit.submit("silver", platform, bounded=True, conf_dir=sc.dir)
    assert submit.wait_job(platform, job_id, {"FINISHED"}, timeout_s=240) == "FINISHED"

    silver = sum(
        len(read(bootstrap, sc.silver(et), sc.uid)) for et in ("device_telemetry", "orders")
    )
    dlq = read(bootstrap, sc.dlq, sc.uid)
    assert silver == sum(c.expect == "silver" for c in cases)
    assert len(dlq) == sum(isinstance(c.expect, list) for c in cases)

    # Land every layer in Delta (private lake root, own consumer group) and check the lake.
    sc.edit(
        "lake.yaml",
        lake_root=str(tmp_path / "lake"),
        consumer_group=f"loader-{sc.uid}",
        instance_id=f"loader-{sc.uid}",
    )
    lake_settings, sinks = lake.all_sinks(sc.dir)
    # The layers the Silver job writes (the Gold job's tables are tested in tests/job/test_gold.py).
    sinks = [s for s in sinks if not s.table.startswith(("late_", "gold_", "alert_"))]
    Loader(
        bootstrap,
        lake_settings.consumer_group,
        sinks,
        flush_rows=1000,
        flush_ms=200,
        instance_id=lake_settings.instance_id,
    ).run(idle_exit_s=3)
    tables = {s.table: lake.read_table(s) for s in sinks}
    assert tables["bronze_events"].num_rows == len(cases)
    assert tables["dlq_events"].num_rows == len(dlq)
    bronze = Counter(tables["bronze_events"].column("tenant_id").to_pylist())
    audit: Counter[tuple[str, str]] = Counter()
    for row in tables["audit_silver_counts"].to_pylist():
        audit[(row["tenant_id"], row["metric"])] += row["count_records"]
    for tenant in ("acme", "globex"):
        silver_rows = sum(
            tables[f"silver_{et}"].column("tenant_id").to_pylist().count(tenant)
            for et in ("device_telemetry", "orders")
        )
        dlq_rows = tables["dlq_events"].column("tenant_id").to_pylist().count(tenant)
        duplicates = audit[(tenant, "valid")] - audit[(tenant, "silver")]
        assert silver_rows + dlq_rows + duplicates == bronze[tenant], tenant
    # A second reader (polars, its own Parquet reader) agrees with deltalake, table by table.
    for sink in sinks:
        by_polars = pl.read_delta(sink.uri).group_by("tenant_id").len()
        assert dict(by_polars.iter_rows()) == dict(
            Counter(tables[sink.table].column("tenant_id").to_pylist())
        )
    # The DLQ's original bytes survive the trip to Delta (kept as base64): each rejected record's
    # row holds the bytes, key and headers sent, its size and digest (cut only past the limit).
    limit = 256
    by_place = {
        (r["source_topic"], r["source_partition"], r["source_offset"]): r
        for r in tables["dlq_events"].to_pylist()
    }
    rejected = {w: c for w, c in placed.items() if isinstance(c.expect, list)}
    assert set(by_place) == set(rejected)
    for where, case in rejected.items():
        row = by_place[where]
        value = case.value
        raw = None if row["raw_value"] is None else base64.b64decode(row["raw_value"])
        assert raw == (None if value is None else value[:limit]), case.name
        assert row["raw_value_truncated"] == (value is not None and len(value) > limit), case.name
        assert (row["raw_value_bytes"], row["raw_value_sha256"]) == (
            None if value is None else len(value),
            None if value is None else hashlib.sha256(value).hexdigest(),
        ), case.name
        key = None if row["source_key"] is None else base64.b64decode(row["source_key"])
        assert key == case.key, case.name
        headers = [(h["key"], base64.b64decode(h["value"])) for h in row["source_headers"] or []]
        assert sorted(headers) == sorted(case.headers), case.name
    # Not vacuous: whole, cut and keyed records are among them.
    sent = [c.value for c in rejected.values() if c.value is not None]
    assert any(len(v) > limit for v in sent) and any(len(v) <= limit for v in sent)
    assert any(c.key is not None for c in rejected.values())
    kafka.delete_topics(bootstrap, job.topics())
