"""No poison record: records of any size or shape become bounded DLQ rows, the Silver job finishes
and the other tenant's rows are all there (issue #11).

On the local executor and the real broker: a 0.9 MB malformed record, records just under and
just over max_record_bytes, a huge Kafka key, huge headers (and headers exactly at the limit),
sent to acme's Bronze topic beside normal records of acme and globex. The expected DLQ rows are
computed here in plain Python from the bytes sent: first N bytes, full length, SHA-256, flags.
The DLQ rows then land in Delta through the loader.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from connectors import kafka
from jobs import catalog
from streamlake.config import registry, settings
from streamlake.runtime import flinkenv
from tests.conftest import SilverConf, make_silver_conf

MAX_RECORD_BYTES = 1_048_576
VALUE_LIMIT, KEY_LIMIT, HEADERS_LIMIT = 65_536, 1024, 8192  # conf/silver.yaml's dlq defaults


@dataclass
class Rec:
    name: str
    tenant: str
    value: bytes
    expect: str | list[str]  # "silver" or DLQ reasons
    key: bytes | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    event_id: str | None = None


def enc(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def telemetry(eid: str, now_ms: int, **over: Any) -> dict[str, Any]:
    e = {
        "tenant_id": "acme",
        "event_type": "device_telemetry",
        "schema_version": 1,
        "event_id": eid,
        "event_time": now_ms - 1000,
        "device_id": "dev-1",
        "temperature_c": 20.5,
    }
    e.update(over)
    return e


def order(oid: str) -> dict[str, Any]:
    return {
        "tenant_id": "globex",
        "event_type": "orders",
        "schema_version": 2,
        "order_id": oid,
        "placed_at": "2026-01-01T10:00:00.250Z",
        "customer_id": "cust-1",
        "amount_cents": 1999,
        "currency": "EUR",
        "channel": "web",
    }


def padded(obj: dict[str, Any], size: int) -> bytes:
    """obj with an undeclared padding field, exactly `size` bytes long."""
    base = enc({**obj, "pad": ""})
    return enc({**obj, "pad": "p" * (size - len(base))})


def headers_json_bytes(headers: list[tuple[str, bytes]]) -> int:
    """The headers as the DLQ row carries them: JSON list of {key, value (base64)}."""
    rows = [{"key": k, "value": base64.b64encode(v).decode()} for k, v in headers]
    return len(json.dumps(rows, separators=(",", ":"), ensure_ascii=False).encode())


def at_limit_headers(limit: int) -> list[tuple[str, bytes]]:
    """One header whose JSON is exactly `limit` bytes (value length a multiple of 3)."""
    h = [("trace", b"")]
    pad = limit - headers_json_bytes(h)
    h = [("trace" + "t" * (pad % 4), b"v" * (pad // 4 * 3))]
    assert headers_json_bytes(h) == limit
    return h


def corpus(now_ms: int) -> list[Rec]:
    malformed = b'{"tenant_id":"acme","event_type":"device_telemetry","x":"' + b"a" * 900_000
    big_tags = telemetry("tel-big", now_ms)
    big_tags["tags"] = []
    size = len(enc(big_tags))
    big_tags["tags"] = ["t" * 1000] * ((MAX_RECORD_BYTES - size - 4096) // 1003)
    at_limit = at_limit_headers(HEADERS_LIMIT)
    over_limit = [(at_limit[0][0] + "x", at_limit[0][1])]  # one byte more as JSON
    return [
        Rec(
            "acme ok 1",
            "acme",
            enc(telemetry("tel-1", now_ms)),
            "silver",
            b"dev-1",
            event_id="tel-1",
        ),
        Rec(
            "acme ok, headers exactly at the limit",
            "acme",
            enc(telemetry("tel-2", now_ms)),
            "silver",
            headers=at_limit,
            event_id="tel-2",
        ),
        Rec("0.9 MB malformed JSON", "acme", malformed, ["malformed_json"], b"dev-1"),
        Rec(
            "just under max_record_bytes, a field reject",
            "acme",
            padded(telemetry("tel-3", now_ms, temperature_c="hot"), MAX_RECORD_BYTES),
            ["wrong_type:temperature_c"],
        ),
        Rec(
            "just over max_record_bytes",
            "acme",
            padded(telemetry("tel-4", now_ms), MAX_RECORD_BYTES + 1),
            ["oversized_record"],
        ),
        Rec(
            "a valid record near max_record_bytes (tags)",
            "acme",
            enc(big_tags),
            "silver",
            event_id="tel-big",
        ),
        Rec("huge key", "acme", b"not json", ["malformed_json"], key=b"k" * 300_000),
        Rec(
            "huge headers",
            "acme",
            enc(telemetry("tel-5", now_ms, tenant_id="umbrella")),
            ["unknown_tenant"],
            headers=[(f"h{i}", bytes([i]) * 100_000) for i in range(3)],
        ),
        Rec(
            "headers one byte over the limit",
            "acme",
            b"[1]",
            ["not_an_object"],
            headers=over_limit,
        ),
        Rec(
            "headers exactly at the limit, rejected",
            "acme",
            b"[2]",
            ["not_an_object"],
            headers=at_limit,
        ),
        Rec("small reject, kept whole", "acme", b"{}", ["missing_field:tenant_id"], b"k"),
        *(
            Rec(f"globex order {i}", "globex", enc(order(f"o-{i}")), "silver", event_id=f"o-{i}")
            for i in range(20)
        ),
    ]


def send(sc: SilverConf, bootstrap: str, recs: list[Rec], limit: int) -> dict[Any, Rec]:
    placed: dict[Any, Rec] = {}
    for tenant in ("acme", "globex"):
        group = [r for r in recs if r.tenant == tenant]
        topic = sc.bronze(tenant)
        offsets = kafka.produce(
            bootstrap,
            topic,
            [(r.key, r.value) for r in group],
            headers={i: r.headers for i, r in enumerate(group) if r.headers},
            max_message_bytes=limit,
        )
        for (part, off), r in zip(offsets, group, strict=True):
            placed[(topic, part, off)] = r
    return placed


@pytest.fixture(scope="module")
def poison_run(
    tmp_path_factory: pytest.TempPathFactory, bootstrap: str
) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("poison")
    sc = make_silver_conf(base, uuid.uuid4().hex[:10])
    sc.edit("silver.yaml", max_record_bytes=MAX_RECORD_BYTES)
    job = catalog.get("silver", sc.dir)
    reg = registry.load_registry(sc.dir)
    assert reg.silver.dlq.max_value_bytes == VALUE_LIMIT
    assert reg.silver.dlq.max_key_bytes == KEY_LIMIT
    assert reg.silver.dlq.max_headers_bytes == HEADERS_LIMIT
    for topic, cfg in job.topic_configs().items():
        # Bronze accepts records over max_record_bytes (the job rejects them, never the broker).
        assert int(cfg["max.message.bytes"]) > MAX_RECORD_BYTES + 1
        kafka.create_topics(bootstrap, [topic], partitions=2, topic_config=cfg)
    platform = settings.load_platform(sc.dir / "platform.yaml")
    recs = corpus(int(time.time() * 1000))
    placed = send(sc, bootstrap, recs, platform.kafka.max_message_bytes)
    t_env = flinkenv.table_env(platform, name=f"silver-poison-{sc.uid}", local=True)
    # Finishes: a bounded run on the local executor, which fails at the first failure.
    job.run(t_env, platform, bounded=True).wait()
    group = f"reader-{sc.uid}"
    dlq_raw = [v for _k, v in kafka.read_committed(bootstrap, sc.dlq, f"{group}-dlq", 60)]
    yield {
        "sc": sc,
        "recs": recs,
        "placed": placed,
        "dlq_raw": dlq_raw,
        "dlq": [json.loads(v) for v in dlq_raw if v is not None],
        "silver": {
            et: kafka.read_committed_json(bootstrap, sc.silver(et), f"{group}-{et}", 60)
            for et in ("device_telemetry", "orders")
        },
        "lake": base / "lake",
    }
    kafka.delete_topics(bootstrap, job.topics())


def expected_dlq(r: Rec) -> dict[str, Any]:
    """The DLQ row's bounded columns for a record, from its bytes (the oracle)."""
    kept_headers = headers_json_bytes(r.headers) <= HEADERS_LIMIT
    return {
        "raw_value": base64.b64encode(r.value[:VALUE_LIMIT]).decode(),
        "raw_value_bytes": len(r.value),
        "raw_value_sha256": hashlib.sha256(r.value).hexdigest(),
        "raw_value_truncated": len(r.value) > VALUE_LIMIT,
        "source_key": None if r.key is None else base64.b64encode(r.key[:KEY_LIMIT]).decode(),
        "source_key_bytes": None if r.key is None else len(r.key),
        "source_headers": (
            [{"key": k, "value": base64.b64encode(v).decode()} for k, v in r.headers]
            if kept_headers
            else None
        ),
        "source_headers_dropped": not kept_headers,
    }


def test_every_bad_record_has_one_bounded_dlq_row(poison_run: dict[str, Any]) -> None:
    placed, dlq = poison_run["placed"], poison_run["dlq"]
    rows: dict[Any, dict[str, Any]] = {}
    for row in dlq:
        where = (row["source_topic"], row["source_partition"], row["source_offset"])
        assert where in placed and where not in rows, where
        rows[where] = row
    bad = {w: r for w, r in placed.items() if isinstance(r.expect, list)}
    assert set(rows) == set(bad), sorted(r.name for w, r in bad.items() if w not in rows)
    wrong = []
    for where, r in bad.items():
        row = rows[where]
        assert row["reason_codes"] == r.expect, r.name
        assert row["tenant_id"] == "acme"
        want = expected_dlq(r)
        got = {k: row[k] for k in want}
        if r.headers and got["source_headers"] is not None:
            got["source_headers"] = sorted(got["source_headers"], key=lambda h: h["key"])
        for k in want:
            if got[k] != want[k]:
                wrong.append(
                    f"{r.name}: {k} = {str(got[k])[:80]!r}, expected {str(want[k])[:80]!r}"
                )
    assert not wrong, "\n".join(wrong)
    # Every shape is exercised: truncated and whole values, a cut key, kept and dropped headers.
    flags = [(row["raw_value_truncated"], row["source_headers_dropped"]) for row in rows.values()]
    assert {f[0] for f in flags} == {True, False} and {f[1] for f in flags} == {True, False}


def test_every_dlq_message_fits_far_below_the_sink_limit(poison_run: dict[str, Any]) -> None:
    sizes = [len(v) for v in poison_run["dlq_raw"]]
    platform = settings.load_platform(poison_run["sc"].dir / "platform.yaml")
    from streamlake.compile import limits

    bound = limits.dlq_row_max_bytes(registry.load_registry(poison_run["sc"].dir))
    assert max(sizes) < bound < platform.kafka.max_message_bytes
    # The 0.9 MB record's DLQ message (1,200,675 bytes before: all of it, base64, in JSON).
    big = next(
        len(v)
        for v, row in zip(poison_run["dlq_raw"], poison_run["dlq"], strict=True)
        if row["raw_value_bytes"] and 800_000 < row["raw_value_bytes"] < 1_000_000
    )
    print(f"\nDLQ message of the 0.9 MB record: {big:,} bytes; largest DLQ message {max(sizes):,}")
    assert big < 4 * VALUE_LIMIT // 3 + 4096


def test_the_other_tenants_rows_and_the_valid_big_record_are_in_silver(
    poison_run: dict[str, Any],
) -> None:
    recs, silver = poison_run["recs"], poison_run["silver"]
    orders = sorted(r["event_id"] for r in silver["orders"] if r["tenant_id"] == "globex")
    assert orders == sorted(r.event_id for r in recs if r.tenant == "globex")
    tel = {r["event_id"]: r for r in silver["device_telemetry"]}
    assert set(tel) == {r.event_id for r in recs if r.tenant == "acme" and r.expect == "silver"}
    big = next(r for r in recs if r.event_id == "tel-big")
    assert tel["tel-big"]["tags"] == json.loads(big.value)["tags"]  # a ~1 MB Silver row


def test_dlq_rows_land_in_delta_through_the_loader(
    poison_run: dict[str, Any], bootstrap: str
) -> None:
    from streamlake.config import lake as lake_conf
    from streamlake.lake import landing as lake
    from streamlake.lake.loader import Loader
    from streamlake.lake.sink import read_delta

    sc: SilverConf = poison_run["sc"]
    root: Path = poison_run["lake"]
    reg = registry.load_registry(sc.dir)
    sinks = [
        s
        for s in lake.sinks(reg, lake_conf.LakeSettings(lake_root=str(root)))
        if s.table == "dlq_events"
    ]
    Loader(
        bootstrap,
        f"loader-{sc.uid}",
        sinks,
        flush_ms=200,
        instance_id=f"l-{sc.uid}",
        audit_uri=str(root / "audit_loader_batches"),
    ).run(idle_exit_s=3)
    table = read_delta(sinks[0].uri)
    assert set(lake.DLQ_SCHEMA.names) <= set(table.column_names)
    by_offset = {
        (r["source_topic"], r["source_partition"], r["source_offset"]): r for r in table.to_pylist()
    }
    assert len(by_offset) == table.num_rows == len(poison_run["dlq"])
    for row in poison_run["dlq"]:
        got = by_offset[(row["source_topic"], row["source_partition"], row["source_offset"])]
        for col in (
            "raw_value",
            "raw_value_bytes",
            "raw_value_sha256",
            "raw_value_truncated",
            "source_key",
            "source_key_bytes",
            "source_headers_dropped",
            "reason_codes",
        ):
            assert got[col] == row[col], col
        assert (got["source_headers"] is None) == (row["source_headers"] is None)
