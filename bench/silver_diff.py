"""A differential check, not a benchmark: the Silver job of another commit against this checkout's,
over the same Bronze records on the local broker; prints every record whose fate differs (its DLQ
reasons, event type, version, claimed tenant, size; or its Silver row).

Written for issue #12 (silver_validate replacing the SQL checks of 77b9fe9): run it whenever the
Silver parsing changes. The other commit is exported with `git archive` into a temporary folder
and run from there with this checkout's virtualenv and jars. Takes a few minutes.

    STREAMLAKE_PII_HASH_KEY=x python -m bench.silver_diff --against 77b9fe9
    STREAMLAKE_PII_HASH_KEY=x python -m bench.silver_diff --against 77b9fe9 --clock

--clock compares the Bronze clock instead (streamlake.compile.silver.event_clock of both commits: the
JSON_VALUE expression then, silver_clock now), record by record in one batch query, over the same
records plus clock cases (epochs as text, fractions, invalid UTF-8 around the length limit).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from connectors import kafka
from jobs import catalog
from streamlake.config import paths, settings
from tests.conftest import SilverConf, make_silver_conf
from tests.support import silver_corpus

MAX = 4096


def enc(o: Any) -> bytes:
    return json.dumps(o, separators=(",", ":")).encode()


def corpus(now: int) -> list[tuple[str, bytes | None, list[tuple[str, bytes]]]]:
    rng = random.Random(7)
    out: list[tuple[str, bytes | None, list[tuple[str, bytes]]]] = []
    for c in silver_corpus.build(now, MAX):
        out.append((c.tenant, c.value, c.headers))

    def tel(**over: Any) -> dict[str, Any]:
        e: dict[str, Any] = {
            "tenant_id": "acme",
            "event_type": "device_telemetry",
            "schema_version": 1,
            "event_id": f"e{rng.randrange(10**9)}",
            "event_time": now - 1000,
            "device_id": "dev-7",
            "temperature_c": 21.5,
            "humidity_pct": 40,
            "battery_ok": True,
            "status": "ok",
            "location": {"lat": 52.1, "lon": 4.3},
            "tags": ["roof"],
            "technician_email": "bob@x.com",
        }
        e.update(over)
        return {k: v for k, v in e.items() if v is not DROP}

    def order(**over: Any) -> dict[str, Any]:
        e: dict[str, Any] = {
            "tenant_id": "acme",
            "event_type": "orders",
            "schema_version": 2,
            "order_id": f"o{rng.randrange(10**9)}",
            "placed_at": "2026-01-01T10:00:00.250Z",
            "customer_id": "c1",
            "amount_cents": 5,
            "currency": "EUR",
            "channel": "web",
            "coupon_code": "A-1",
        }
        e.update(over)
        return {k: v for k, v in e.items() if v is not DROP}

    vals: list[Any] = [
        None,
        DROP,
        True,
        False,
        0,
        -0.0,
        1,
        -1,
        2.0,
        1.5,
        1e300,
        10**20,
        -(10**20),
        "",
        "x",
        "12",
        "dev-1",
        "dev-1\n",
        "2026-01-01T00:00:00Z",
        [],
        [1],
        ["a", 1],
        {},
        {"lat": 1},
        {"lat": 1, "lon": 2},
        "é" * 3,
        "\u0000",
        "ok",
        "failed",
        2147483647,
        2147483648,
        -2147483648,
        -2147483649,
        9223372036854775807,
        9223372036854775808,
        100,
        101,
        -80,
        150.0,
        150.01,
        -80.5,
    ]
    fields_t = [
        "device_id",
        "temperature_c",
        "humidity_pct",
        "battery_ok",
        "status",
        "location",
        "tags",
        "technician_email",
        "event_id",
        "event_time",
        "schema_version",
        "tenant_id",
        "event_type",
    ]
    for f in fields_t:
        for v in vals:
            out.append(("acme", enc(tel(**{f: v})), []))
    fields_o = [
        "placed_at",
        "customer_id",
        "amount_cents",
        "currency",
        "channel",
        "coupon_code",
        "order_id",
        "schema_version",
    ]
    for f in fields_o:
        for v in [
            *vals,
            "2026-02-30T10:00:00Z",
            "2026-02-28T24:00:00Z",
            "0000-01-01T00:00:00Z",
            "2026-01-01T10:00:00.5Z",
            "2026-01-01T10:00:00.50Z",
            "2026-01-01T10:00:00Z\n",
            "2026-01-01 10:00:00Z",
            "2026-01-01T25:00:00Z",
            "2026-01-01T10:60:00Z",
            "X" * 32,
            "X" * 33,
            "abc",
            "ABC-1",
            "USD",
            "usd",
            "0002",
            "02",
            "2 ",
            1,
            3,
        ]:
            out.append(("acme", enc(order(**{f: v})), []))
    # Location nested variants
    for lat in vals:
        for lon in (4.3, DROP, "x"):
            loc = {k: v for k, v in {"lat": lat, "lon": lon}.items() if v is not DROP}
            out.append(("acme", enc(tel(location=loc)), []))
    # Record-level oddities
    base = enc(tel())
    raws = [
        b"",
        b" ",
        b"\xef\xbb\xbf" + base,
        b" \n\t" + base + b" \n",
        base + b" {}",
        base + b"x",
        base[:-1],
        b"null",
        b"1",
        b"true",
        b'"x"',
        b"[]",
        b"{}",
        b'{"tenant_id":"acme"}',
        base.replace(b"21.5", b"NaN"),
        base.replace(b"21.5", b"+Infinity"),
        base.replace(b"21.5", b"-NaN"),
        base.replace(b'"ok"', b'"NaN"'),
        base.replace(b"21.5", b"Infinity").replace(b'"dev-7"', b'"dev-7","device_id":"dev-7"'),
        base.replace(b'"dev-7"', b'"dev-7","device_id":"dev-8"'),
        base.replace(b'"lat":52.1', b'"lat":52.1,"lat":1'),
        base.replace(b'"roof"', b'"roof","x":1'),
        base.replace(b'"dev-7"', b'"dev-\\ud83d\\ude00"'),
        base.replace(b'"dev-7"', b'"dev-\\ud83d"'),
        base.replace(b'"dev-7"', b'"dev-\\ude00"'),
        base.replace(b'"dev-7"', b'"dev-\\\\ud800"'),
        base.replace(b'"roof"', b'"\\ud800"'),
        base.replace(b'"tags"', b'"t\\ud800"'),
        base.replace(b'"dev-7"', b'"dev-\xed\xa0\x80"'),
        base.replace(b'"dev-7"', b'"dev-\xc0\xaf"'),
        base.replace(b'"dev-7"', b'"dev-\xef\xbf\xbd"'),
        base.replace(b'"dev-7"', b'"d\\u0065v-7"'),
        base.replace(b'"acme"', b'"\\u0061cme"'),
        base.replace(b'"device_telemetry"', b'"device\\u005ftelemetry"'),
        base.replace(b"21.5", b"2.15e1"),
        base.replace(b"21.5", b"1E400"),
        base.replace(b"40", b"4e1"),
        base.replace(b"40", b"40.0"),
        base.replace(b"40", b"-0"),
        base.replace(b"21.5", b"0021.5"),
        base.replace(b"21.5", b".5"),
        b'{"tenant_id":"acme","x":' + b"[" * 999 + b"]" * 999 + b"}",
        b'{"tenant_id":"acme","x":' + b"[" * 1000 + b"]" * 1000 + b"}",
        b'{"tenant_id":"acme","x":' + b"[" * 998 + b"]" * 998 + b"}",
        b"// c\n" + base,
        b"{'tenant_id':'acme'}",
        b'{"tenant_id":"acme"}\x00',
    ]
    for r in raws:
        out.append(("acme", r, []))
    # header versions
    for h in (b"2", b"02", b"2\n", b" 2", b"x", b"\xff", b"10000", b"1"):
        out.append(("acme", enc(order(schema_version=DROP)), [("schema_version", h)]))
        out.append(("acme", enc(order(schema_version=None)), [("schema_version", h)]))
        out.append(("acme", enc(order(schema_version="x")), [("schema_version", h)]))
    # random mutations
    keys = fields_t
    for _ in range(400):
        over = {k: rng.choice(vals) for k in rng.sample(keys, rng.randrange(1, 4))}
        out.append(("acme", enc(tel(**over)), []))
    for _ in range(200):
        over = {k: rng.choice(vals) for k in rng.sample(fields_o, rng.randrange(1, 3))}
        out.append((rng.choice(["acme", "globex"]), enc(order(**over)), []))
    return out


class _D:
    pass


DROP: Any = _D()


def run_job(conf: Path, checkout: Path) -> None:
    """A bounded run of the Silver job of `checkout` on the local executor."""
    code = (
        "from jobs import catalog, flinkenv, settings; from pathlib import Path; "
        f"d = Path('{conf}'); p = settings.load_platform(d / 'platform.yaml'); "
        "j = catalog.get('silver', d); t = flinkenv.table_env(p, name='diff', local=True); "
        "j.run(t, p, bounded=True).wait()"
    )
    env = {
        **os.environ,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": str(checkout),
        "STREAMLAKE_STACK_DIR": str(paths.STACK),
    }
    env.setdefault("STREAMLAKE_PII_HASH_KEY", "silver-diff")
    r = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=checkout, capture_output=True, text=True
    )
    if r.returncode:
        print(r.stderr[-5000:])
        raise SystemExit("job failed")


def export(commit: str, into: Path) -> Path:
    """The tree of `commit` (git archive), to run its jobs package beside this one."""
    tar = into / "tree.tar"
    subprocess.run(
        ["git", "archive", "-o", str(tar), commit],
        cwd=paths.REPO,
        check=True,
    )
    tree = into / "tree"
    with tarfile.open(tar) as t:
        t.extractall(tree, filter="data")
    return tree


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--against", default="77b9fe9", help="the commit to compare with")
    ap.add_argument("--clock", action="store_true", help="compare the Bronze clock instead")
    args = ap.parse_args()
    boot = settings.load_platform().kafka.bootstrap
    with tempfile.TemporaryDirectory() as tmp:
        tree = export(args.against, Path(tmp))
        return compare_clock(tree) if args.clock else compare(tree, Path(tmp), boot)


def clock_cases(now: int) -> list[bytes | None]:
    """The Bronze clock's edge cases, beside the corpus (max_record_bytes is 400 here)."""

    def rec(event_type: str, field: str, value: Any) -> bytes:
        return enc({"tenant_id": "acme", "event_type": event_type, field: value})

    times: list[Any] = [
        " 1767225600000 ",
        "+1767225600000",
        "1767225600000.9",
        "-1",
        ".5",
        "5.",
        1.7672256e12,
        1767225600000.7,
        "1e12",
        "",
        "\t1767225600000",
        10**20,
        True,
        None,
        [1],
        {"a": 1},
        now + 10**9,
        now + 299_000,
        now + 301_000,
    ]
    out: list[bytes | None] = [rec("device_telemetry", "event_time", v) for v in times]
    for v in ["2026-02-30T10:00:00Z", "2026-01-01T10:00:00Z\n", "2026-01-01T10:00:00.5Z", 5]:
        out.append(rec("orders", "placed_at", v))
    head = b'{"event_type":"device_telemetry","event_time":1767225600000'
    out += [
        b'{"event_type":"orders","event_type":"device_telemetry","event_time":1767225600000}',
        b'{"event_time":1767225600000,"event_type":"device_telemetry"}',
        head + b"} garbage",
        head + b',"x":NaN}',
        b"\xef\xbb\xbf" + head + b"}",
        b"[" + head + b"}]",
        head + b',"x":' + b"[" * 1001 + b"]" * 1001 + b"}",
        None,
        b"",
    ]
    for lead in (0xC0, 0xC2, 0xDF, 0xE0, 0xEF, 0xF0, 0xF4, 0xF8, 0xFF, 0x80):
        for k in (130, 390):
            out.append(head + b',"pad":"' + bytes([lead]) * k + b'"}')
    out.append(head + b',"pad":"' + "\u00e9".encode() * 190 + b'"}')
    return out


def compare_clock(old_tree: Path) -> int:
    """event_clock of the other commit against this one's, record by record."""
    import importlib.util

    from pyflink.table import DataTypes, EnvironmentSettings, TableEnvironment

    from streamlake.compile import silver as compiler
    from streamlake.config import registry
    from streamlake.runtime import flinkenv

    spec = importlib.util.spec_from_file_location("old_compiler", old_tree / "jobs" / "compiler.py")
    assert spec is not None and spec.loader is not None
    old = importlib.util.module_from_spec(spec)
    sys.modules["old_compiler"] = old
    spec.loader.exec_module(old)
    reg = registry.load_registry(paths.CONF_DIR)
    reg.silver = reg.silver.model_copy(update={"max_record_bytes": 400})
    now = int(time.time() * 1000)
    recs = [r[1] for r in corpus(now)] + clock_cases(now)
    t = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    conf = t.get_config()
    conf.set("table.local-time-zone", "UTC")
    conf.set("parallelism.default", "1")
    conf.set("pipeline.jars", ";".join(flinkenv.job_jars()))
    t.execute_sql(
        "CREATE TEMPORARY FUNCTION silver_clock AS 'io.streamlake.udfs.SilverClock' LANGUAGE JAVA"
    )
    rows = [(i, None if r is None else bytearray(r)) for i, r in enumerate(recs)]
    schema = DataTypes.ROW(
        [DataTypes.FIELD("i", DataTypes.INT()), DataTypes.FIELD("raw_value", DataTypes.BYTES())]
    )
    t.create_temporary_view("src", t.from_elements(rows, schema))
    query = (
        f"SELECT i, CAST(({old.event_clock(reg)}) AS STRING), "
        f"CAST(({compiler.event_clock(reg)}) AS STRING) FROM "
        f"(SELECT i, raw_value, TO_TIMESTAMP_LTZ({now}, 3) AS ingest_at FROM src)"
    )
    diffs = 0
    with t.execute_sql(query).collect() as results:
        for i, a, b in results:
            if a != b:
                diffs += 1
                print("DIFF", i, repr(recs[i])[:160], "old:", a, "new:", b)
    print(f"{len(recs)} records, {diffs} clocks differ")
    return 1 if diffs else 0


def compare(old_tree: Path, base: Path, boot: str) -> int:
    uid = uuid.uuid4().hex[:8]
    confs: dict[str, SilverConf] = {}
    for side in ("old", "new"):
        sc = make_silver_conf(base / side, uid)
        sc.edit("silver.yaml", max_record_bytes=MAX)
        suffix = f"_{side}"
        sc.edit("platform.yaml", pipeline_id=f"t{uid}{side}")
        sc.edit("silver.yaml", dlq_topic=sc.dlq + suffix, audit_topic=sc.audit + suffix)
        for yml in sorted((sc.dir / "event_types").glob("*.yaml")):
            sc.edit(f"event_types/{yml.name}", silver_topic=sc.silver(yml.stem) + suffix)
        confs[side] = sc
    topics: set[str] = set()
    for side in ("old", "new"):
        for topic, cfg in catalog.get("silver", confs[side].dir).topic_configs().items():
            if topic not in topics:
                kafka.create_topics(boot, [topic], partitions=1, topic_config=cfg)
                topics.add(topic)
    recs = corpus(int(time.time() * 1000))
    print(len(recs), "records")
    placed: dict[Any, Any] = {}
    for tenant in ("acme", "globex"):
        group = [r for r in recs if r[0] == tenant]
        offs = kafka.produce(
            boot,
            confs["new"].bronze(tenant),
            [(None, r[1]) for r in group],
            headers={i: r[2] for i, r in enumerate(group) if r[2]},
        )
        for (p, o), r in zip(offs, group, strict=True):
            placed[(confs["new"].bronze(tenant), p, o)] = r
    run_job(confs["old"].dir, old_tree)
    run_job(confs["new"].dir, paths.REPO)
    fate: dict[str, dict[Any, Any]] = {}
    for side in ("old", "new"):
        sc = confs[side]
        f: dict[Any, Any] = {}  # (topic, partition, offset) -> the record's fate
        for row in kafka.read_committed_json(boot, sc.dlq + f"_{side}", f"r{uid}{side}d", 60):
            f[(row["source_topic"], row["source_partition"], row["source_offset"])] = (
                "dlq",
                sorted(row["reason_codes"]),
                row["event_type"],
                row["schema_version"],
                row["claimed_tenant"],
                row["raw_value_bytes"],
            )
        for et in ("device_telemetry", "orders"):
            for row in kafka.read_committed_json(
                boot, sc.silver(et) + f"_{side}", f"r{uid}{side}{et}", 60
            ):
                key = (row["source_topic"], row["source_partition"], row["source_offset"])
                row = {k: v for k, v in row.items() if k not in ("stream_watermark_at",)}
                f[key] = ("silver", row)
        fate[side] = f
    diffs = 0
    for key, rec in sorted(placed.items(), key=lambda kv: kv[0]):
        a, b = fate["old"].get(key), fate["new"].get(key)
        if a != b:
            diffs += 1
            print("DIFF", key[2], repr(rec[1])[:160], rec[2])
            print("   old:", str(a)[:400])
            print("   new:", str(b)[:400])
    print(f"{len(placed)} records, {diffs} differ")
    kafka.delete_topics(boot, sorted(topics))
    return 1 if diffs else 0


if __name__ == "__main__":
    raise SystemExit(main())
