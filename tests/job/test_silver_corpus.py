"""The Silver job over a corpus with every bad-input class, on the local executor and the real
broker: each record's destination and reasons, the DLQ's original bytes, Silver's typed and
PII-handled values, and per-tenant conservation (silver + dlq + duplicates = read)."""

from __future__ import annotations

import base64
import hashlib
import re
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import pytest

from connectors import kafka
from jobs import catalog
from streamlake.config import settings
from streamlake.runtime import flinkenv
from tests.conftest import SilverConf, make_silver_conf
from tests.support import silver_corpus

MAX_RECORD_BYTES = 4096


def create_topics(sc: SilverConf, bootstrap: str) -> catalog.SqlJob:
    job = catalog.get("silver", sc.dir)
    for topic, cfg in job.topic_configs().items():
        kafka.create_topics(bootstrap, [topic], partitions=2, topic_config=cfg)
    return job


def run_silver(sc: SilverConf, job: catalog.SqlJob, parallelism: int = 1) -> None:
    platform = settings.load_platform(sc.dir / "platform.yaml")
    t_env = flinkenv.table_env(
        platform, name=f"silver-{sc.uid}", local=True, parallelism=parallelism
    )
    job.run(t_env, platform, bounded=True).wait()


def send(
    sc: SilverConf, bootstrap: str, cases: list[silver_corpus.Case]
) -> dict[Any, silver_corpus.Case]:
    """Produce each case to its tenant's topic; return (topic, partition, offset) -> case."""
    placed: dict[Any, silver_corpus.Case] = {}
    by_tenant: dict[str, list[silver_corpus.Case]] = defaultdict(list)
    for case in cases:
        by_tenant[case.tenant].append(case)
    for tenant, group in by_tenant.items():
        topic = sc.bronze(tenant)
        offsets = kafka.produce(
            bootstrap,
            topic,
            [(c.key, c.value) for c in group],
            headers={i: c.headers for i, c in enumerate(group) if c.headers},
        )
        for (part, off), case in zip(offsets, group, strict=True):
            placed[(topic, part, off)] = case
    return placed


def read(bootstrap: str, topic: str, uid: str) -> list[dict[str, Any]]:
    return kafka.read_committed_json(
        bootstrap, topic, group_id=f"reader-{uid}-{topic}", timeout_s=60
    )


@pytest.fixture(scope="module")
def corpus_run(
    tmp_path_factory: pytest.TempPathFactory, bootstrap: str
) -> Iterator[dict[str, Any]]:
    sc = make_silver_conf(tmp_path_factory.mktemp("corpus"), uuid.uuid4().hex[:10])
    sc.edit("silver.yaml", max_record_bytes=MAX_RECORD_BYTES)
    job = create_topics(sc, bootstrap)
    cases = silver_corpus.build(int(time.time() * 1000), MAX_RECORD_BYTES)
    placed = send(sc, bootstrap, cases)
    run_silver(sc, job)
    yield {
        "sc": sc,
        "cases": cases,
        "placed": placed,
        "dlq": read(bootstrap, sc.dlq, sc.uid),
        # Upserted counts: the last record per key is the count.
        "audit": kafka.read_committed_latest_json(
            bootstrap, sc.audit, group_id=f"reader-{sc.uid}-audit", timeout_s=60
        ),
        "silver": {
            et: read(bootstrap, sc.silver(et), sc.uid) for et in ("device_telemetry", "orders")
        },
    }
    kafka.delete_topics(bootstrap, job.topics())


def test_every_rejected_record_is_in_the_dlq_with_its_bytes_and_reasons(
    corpus_run: dict[str, Any],
) -> None:
    placed, dlq, sc = corpus_run["placed"], corpus_run["dlq"], corpus_run["sc"]
    seen = {}
    for row in dlq:
        where = (row["source_topic"], row["source_partition"], row["source_offset"])
        assert where in placed, f"DLQ row for a record never sent: {where}"
        assert where not in seen, f"record in the DLQ twice: {placed[where].name}"
        seen[where] = row
    expected = {w: c for w, c in placed.items() if isinstance(c.expect, list)}
    missing = sorted(c.name for w, c in expected.items() if w not in seen)
    assert not missing, f"rejected records missing from the DLQ: {missing}"
    wrong = []
    for where, row in seen.items():
        case = placed[where]
        if not isinstance(case.expect, list):
            wrong.append(f"{case.name}: valid record in the DLQ with {row['reason_codes']}")
            continue
        if sorted(row["reason_codes"]) != sorted(case.expect):
            wrong.append(f"{case.name}: reasons {row['reason_codes']}, expected {case.expect}")
        raw = base64.b64decode(row["raw_value"]) if row["raw_value"] is not None else None
        # Every corpus record is under the DLQ's value limit, so its bytes are kept whole.
        if raw != case.value or row["raw_value_truncated"]:
            wrong.append(f"{case.name}: DLQ bytes differ from what was sent")
        size = None if case.value is None else len(case.value)
        digest = None if case.value is None else hashlib.sha256(case.value).hexdigest()
        if (row["raw_value_bytes"], row["raw_value_sha256"]) != (size, digest):
            wrong.append(f"{case.name}: raw_value_bytes/sha256 not those of the bytes sent")
        # The tenant column is the topic's owner, never the (possibly hostile) claimed tenant.
        if row["tenant_id"] != case.tenant:
            wrong.append(f"{case.name}: tenant_id {row['tenant_id']!r}, topic of {case.tenant!r}")
        if case.key is not None and base64.b64decode(row["source_key"]) != case.key:
            wrong.append(f"{case.name}: Kafka key not kept")
        if row["source_headers_dropped"]:
            wrong.append(f"{case.name}: small headers dropped")
        headers = [(h["key"], base64.b64decode(h["value"])) for h in row["source_headers"] or []]
        if sorted(headers) != sorted(case.headers or []):
            wrong.append(f"{case.name}: Kafka headers {headers}, sent {case.headers}")
    assert not wrong, "\n".join(wrong)
    header_case = next(c for c in placed.values() if c.headers)
    assert header_case.expect == "silver"
    assert sc.dlq.startswith("dlq_")


def test_silver_has_each_valid_event_once_typed_and_pii_handled(corpus_run: dict[str, Any]) -> None:
    cases, silver = corpus_run["cases"], corpus_run["silver"]
    want = Counter((c.tenant, c.event_type, str(c.event_id)) for c in cases if c.expect == "silver")
    got = Counter(
        (r["tenant_id"], r["event_type"], r["event_id"]) for rows in silver.values() for r in rows
    )
    assert got == want
    tel = {r["event_id"]: r for r in silver["device_telemetry"]}
    full = tel["tel-1"]
    assert full["location"] == {"lat": 52.1, "lon": 4.3}
    assert full["tags"] == ["roof", "north"]
    assert full["humidity_pct"] == 40 and full["battery_ok"] is True
    assert full["technician_email"] == "***********.com"  # pii: mask keeps the last 4
    assert full["event_at"].startswith("20") and full["schema_version"] == 1
    minimal = tel["tel-2"]
    assert minimal["location"] is None and minimal["humidity_pct"] is None
    assert "debug" not in tel["tel-deep"]  # undeclared fields are not carried into Silver
    orders = {(r["tenant_id"], r["event_id"]): r for r in silver["orders"]}
    v1, v2 = orders[("acme", "ord-1")], orders[("acme", "ord-2")]
    assert v1["schema_version"] == 1 and v1["channel"] is None  # v2-only field is null for v1
    assert v2["channel"] == "web" and v2["coupon_code"] == "SPRING-10"
    assert all("customer_email" not in r for r in silver["orders"])  # pii: drop
    assert re.fullmatch(r"[0-9a-f]{64}", v1["customer_id"])  # pii: keyed hash
    assert v1["customer_id"] == orders[("globex", "ord-1")]["customer_id"]  # same input, same hash
    assert orders[("acme", "ord-3")]["schema_version"] == 2  # version from the Kafka header
    assert v1["event_at"] == "2026-01-01T10:00:00.25Z"


def test_conservation_per_tenant_from_the_audit_counts(corpus_run: dict[str, Any]) -> None:
    cases, audit = corpus_run["cases"], corpus_run["audit"]
    totals: Counter[tuple[str, str]] = Counter()
    for row in audit:
        totals[(row["tenant_id"], row["metric"])] += row["count_records"]
    for tenant in ("acme", "globex"):
        mine = [c for c in cases if c.tenant == tenant]
        read = totals[(tenant, "read")]
        dlq, valid, silver = (totals[(tenant, m)] for m in ("dlq", "valid", "silver"))
        duplicates = valid - silver
        assert read == len(mine)
        assert dlq == sum(isinstance(c.expect, list) for c in mine)
        assert silver == sum(c.expect == "silver" for c in mine)
        assert duplicates == sum(c.expect == "duplicate" for c in mine)
        assert silver + dlq + duplicates == read
