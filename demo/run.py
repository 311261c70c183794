"""`make demo`: the pipeline end to end on the local stack, checked against what was produced."""

from __future__ import annotations

import itertools
import json
import math
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from connectors import kafka
from demo.events import expected_counts, norm_ts, placement, sample_events, silver_events
from demo.runners import Bounded, Runner
from jobs import catalog
from streamlake.config import paths
from streamlake.config.settings import PlatformSettings
from streamlake.runtime import submit


def run_silver(platform: PlatformSettings, runner: Runner) -> bool:
    """Bronze -> Silver on the cluster, checked against what the generator says must happen."""
    from streamlake.config import lake as lake_conf
    from streamlake.config import registry
    from streamlake.lake import landing as lake
    from streamlake.lake.sink import DeltaSink, lake_uri

    job = catalog.get("silver")
    reg = registry.load_registry(paths.CONF_DIR)
    lake_settings = lake_conf.load_lake()
    sinks = lake.sinks(reg, lake_settings)
    bootstrap = platform.kafka.bootstrap
    runner.fresh(
        platform,
        job,
        [s.uri for s in sinks] + [lake_uri(lake_settings.root(), "audit_loader_batches")],
    )
    data = silver_events()
    owners = {t.tenant_id: t.topics[0] for t in reg.tenants.values()}
    place = placement(data["fates"], platform.kafka.default_partitions)
    runner.produce(
        platform,
        {owners[tenant]: (records, place[tenant]) for tenant, records in data["records"].items()},
    )
    total = sum(len(r) for r in data["records"].values())
    print(f"\n== Silver: produced {total} raw events to {', '.join(sorted(owners.values()))}")
    runner.silver(platform, job)

    group = f"demo-reader-{uuid.uuid4().hex[:8]}"
    silver_rows = {
        t: kafka.read_committed_json(bootstrap, t, group)
        for t in job.sink_topics()
        if t.startswith("silver_")
    }
    dlq = kafka.read_committed_json(bootstrap, reg.silver.dlq_topic, group)
    audit = kafka.read_committed_latest_json(bootstrap, reg.silver.audit_topic, group)
    got: dict[str, Counter[str]] = {"acme": Counter(), "globex": Counter()}
    for rows in silver_rows.values():
        for row in rows:
            got[row["tenant_id"]]["silver"] += 1
    for row in dlq:
        got[row["tenant_id"]]["dlq"] += 1
        got[row["tenant_id"]][f"dlq:{row['reason_codes'][0].split(':')[0]}"] += 1
    for row in audit:
        got[row["tenant_id"]][f"audit:{row['metric']}"] += row["count_records"]
    ok = True
    print(f"{'tenant':8} {'read':>6} {'silver':>7} {'dlq':>5} {'duplicates':>11}   (expected)")
    for tenant in sorted(got):
        g, w = got[tenant], data["expect"][tenant]
        dups = g["audit:valid"] - g["audit:silver"]
        row_ok = (g["audit:read"], g["silver"], g["dlq"], dups) == (
            w["read"],
            w["silver"],
            w["dlq"],
            w["duplicates"],
        )
        ok &= row_ok and g["silver"] + g["dlq"] + dups == g["audit:read"]
        print(
            f"{tenant:8} {g['audit:read']:6d} {g['silver']:7d} {g['dlq']:5d} {dups:11d}   "
            f"({w['read']}, {w['silver']}, {w['dlq']}, {w['duplicates']}){'' if row_ok else '  <-- MISMATCH'}"
        )
    print("DLQ by reason:")
    for tenant in sorted(got):
        for k in sorted(k for k in got[tenant] if k.startswith("dlq:")):
            mark = "" if got[tenant][k] == data["expect"][tenant][k] else "  <-- MISMATCH"
            ok &= not mark
            print(f"  {tenant:8} {k[4:]:24} {got[tenant][k]:4d}{mark}")
    sample = next(iter(silver_rows.get("silver_orders", [])), None)
    if sample:
        print(f"sample silver_orders row: {json.dumps(sample)}")
    print(f"{'OK' if ok else 'FAILED'}: silver + dlq + duplicates = read, per tenant")
    ok_gold, gold_want = run_gold(platform, data, place, runner)
    ok &= ok_gold

    # The loader lands every topic in Delta, exactly once; wait until the tables hold them all.
    print(f"\n== Delta Lake ({lake_settings.root()})")
    print(runner.loader_up())
    want = {"bronze_events": total, "dlq_events": len(dlq), "audit_silver_counts": len(audit)}
    for topic, rows in silver_rows.items():
        want[topic] = len(rows)
    want.update(gold_want)
    deadline = time.monotonic() + 120
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        counts = {s.table: (lake.table_stats(s) or {"rows": -1})["rows"] for s in sinks}
        if all(counts.get(t) == n for t, n in want.items()):
            break
        time.sleep(0.5)
    for sink in sinks:
        mark = (
            ""
            if counts.get(sink.table) == want.get(sink.table)
            else f"  <-- expected {want.get(sink.table)}"
        )
        ok &= not mark
        print(
            f"{sink.table:26} {counts.get(sink.table, 0):6d} rows  partitioned by "
            f"{', '.join(sink.partition_by)}{mark}"
        )
    audit = lake.read_table(
        DeltaSink(
            "audit_loader_batches",
            (),
            lake_uri(lake_settings.root(), "audit_loader_batches"),
            None,
            (),
        )
    )
    print(
        f"audit_loader_batches       {audit.num_rows:6d} rows  (one per table, tenant and commit)"
    )
    for name in ("silver_orders", "dlq_events"):
        sink = next(s for s in sinks if s.table == name)
        row = lake.read_table(sink).slice(0, 1).to_pylist()
        if row:
            print(
                f"a row of {name}: "
                + json.dumps({k: v for k, v in row[0].items() if k != "raw_value"}, default=str)
            )
    for prefix, n in (("gold_", 2), ("late_", 2), ("alert_", 4)):
        for sink in [s for s in sinks if s.table.startswith(prefix)][:2]:
            rows = lake.read_table(sink).slice(0, n).to_pylist()
            for row in rows:
                shown = {k: v for k, v in row.items() if not k.startswith("kafka_")}
                for k in ("source_topic", "source_partition", "source_offset", "location", "tags"):
                    shown.pop(k, None)
                print(f"{sink.table}: " + json.dumps(shown, default=str))
    oracle = _oracle()
    for name, (_et, agg) in oracle.aggregates(paths.CONF_DIR).items():
        sink = next(s for s in sinks if s.table == f"gold_{name}")
        bad = _gold_mismatch(_windows(lake.read_table(sink).to_pylist(), agg), data["gold"][name])
        if bad:
            ok = False
            print(f"{sink.table} in Delta: {bad}  <-- MISMATCH")
    print(
        f"{'OK' if ok else 'FAILED'}: every Delta table holds exactly the rows of its topic, "
        "Gold windows as computed from the events sent"
    )
    return ok


def _oracle() -> Any:
    """The plain-Python oracles the tests hold the jobs to (tests/oracles/, in the checkout):
    the demo's expected Gold windows, late rows and alerts come from the events it sent."""
    if str(paths.REPO) not in sys.path:
        sys.path.insert(0, str(paths.REPO))
    from tests.oracles import demo as oracle

    return oracle


def _ms(v: Any) -> int:
    """Epoch ms of a timestamp as Kafka JSON (text, UTC) or Delta (datetime, naive = UTC) has it."""
    d = v if isinstance(v, datetime) else datetime.fromisoformat(str(v).rstrip("Z"))
    return int((d if d.tzinfo else d.replace(tzinfo=UTC)).timestamp() * 1000)


def _windows(rows: Iterable[dict[str, Any]], agg: Any) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The last row per window (an upsert topic read in order, or a MERGEd table), keyed like the
    oracle's: (tenant, keys..., window start ms, window end ms) -> measures and late_rows."""
    out = {}
    for r in rows:
        key = (r["tenant_id"], *(r[g] for g in agg.group_by), _ms(r["window_start"]))
        out[(*key, _ms(r["window_end"]))] = {m: r[m] for m in [*agg.measures, "late_rows"]}
    return out


def _gold_mismatch(got: dict[Any, dict[str, Any]], want: dict[Any, dict[str, Any]]) -> str:
    """'' if every window of `want`, and no other, has every measure equal; else the first
    difference."""
    if set(got) != set(want):
        return (
            f"{len(set(got) - set(want))} windows not expected, {len(set(want) - set(got))} missing"
        )
    for key, w in sorted(want.items()):
        for m, v in w.items():
            g = got[key][m]
            same = (
                g is not None and math.isclose(g, v, rel_tol=1e-9, abs_tol=1e-6)
                if isinstance(v, float)
                else g == v
            )
            if not same:
                return f"window {key}: {m} = {g}, expected {v}"
    return ""


def run_gold(
    platform: PlatformSettings, data: dict[str, Any], place: dict[str, list[int]], runner: Runner
) -> tuple[bool, dict[str, int]]:
    """Silver -> Gold windows, late rows and alerts on the cluster, each checked against what the
    oracle computes from the events sent; returns whether all match, and the rows each Gold, late
    and alert table must get."""
    from streamlake.config import loader as config
    from streamlake.config import registry

    oracle = _oracle()
    reg = registry.load_registry(paths.CONF_DIR)
    hash_key = config.resolve_secret(
        reg.silver.pii_hash_key, paths.CONF_DIR / "silver.yaml", "pii_hash_key"
    )
    rows = oracle.silver_rows(data["fates"], place, paths.CONF_DIR, hash_key)
    aggs = {f"gold_{n}": agg for n, (_et, agg) in oracle.aggregates(paths.CONF_DIR).items()}
    want_gold = oracle.gold(rows, paths.CONF_DIR)
    data["gold"] = {t.removeprefix("gold_"): w for t, w in want_gold.items()}
    want_late = oracle.late(rows)
    want_alerts = oracle.alerts(rows, paths.CONF_DIR)

    job = catalog.get("gold")
    bootstrap = platform.kafka.bootstrap
    print("\n== Gold")
    runner.gold(platform, job)
    group = f"demo-reader-{uuid.uuid4().hex[:8]}"
    ok = True
    want: dict[str, int] = {}
    print(f"{'':34} {'got':>5}   (expected, from the events sent)")
    for table, spec in job.tables.items():
        if spec.role != "sink":
            continue
        records = list(kafka.read_committed(bootstrap, spec.topics[0], group))
        values = [json.loads(v) for _k, v in records if v is not None]
        if table in aggs:
            got = _windows(values, aggs[table])
            bad = _gold_mismatch(got, want_gold[table])
            want[table] = len(want_gold[table])
            print(
                f"{table:34} {len(records):5d} upserts -> {len(got)} windows ({want[table]})"
                + (f"  <-- MISMATCH: {bad}" if bad else "")
            )
        elif table in want_late:
            got_ids = {(r["tenant_id"], r["event_id"]) for r in values}
            bad = "" if got_ids == want_late[table] and len(values) == len(got_ids) else "rows"
            want[table] = len(want_late[table])
            print(
                f"{table:34} {len(values):5d} rows ({want[table]})"
                + ("  <-- MISMATCH" if bad else "")
            )
        else:  # the alert topic (Gold's rules and device_anomaly)
            got_alerts = sorted(
                (
                    a["rule_id"],
                    a["tenant_id"],
                    a["alert_key"],
                    _ms(a["first_event_at"]),
                    _ms(a["last_event_at"]),
                )
                for a in values
            )
            bad = "" if got_alerts == want_alerts else "alerts"
            want[table] = len(want_alerts)
            print(
                f"{table:34} {len(values):5d} rows ({want[table]})"
                + ("  <-- MISMATCH" if bad else "")
            )
            got_rules, want_rules = (
                Counter(a[0] for a in got_alerts),
                Counter(a[0] for a in want_alerts),
            )
            for rule in sorted(set(got_rules) | set(want_rules)):
                print(f"  {rule:32} {got_rules[rule]:5d} ({want_rules[rule]})")
        ok &= not bad
    print(f"{'OK' if ok else 'FAILED'}: Gold windows, late rows and alerts = the oracle's")
    return ok, want


def run(platform: PlatformSettings, runner: Runner | None = None) -> int:
    t0 = time.monotonic()
    runner = runner or Bounded()
    for line in runner.start(platform):
        print(line)
    ok_counts = run_counts(platform)
    ok_silver = run_silver(platform, runner)
    print(
        f"\n{'OK' if ok_counts and ok_silver else 'FAILED'}: demo finished in {time.monotonic() - t0:.1f}s"
    )
    print(runner.where(platform))
    return 0 if ok_counts and ok_silver else 1


def run_counts(platform: PlatformSettings) -> bool:
    """The first job: 10-second tumbling counts, checked against the produced events."""
    job = catalog.get("demo_event_counts")
    src, dst = job.source_topics()[0], job.sink_topics()[0]
    bootstrap = platform.kafka.bootstrap
    # Safe to run twice: the demo's topics start empty each time.
    kafka.delete_topics(bootstrap, [src, dst])
    kafka.create_topics(bootstrap, [src, dst], partitions=platform.kafka.default_partitions)
    events = sample_events()
    kafka.produce_json(bootstrap, src, events, key="event_key")
    late_order = sum(
        1 for a, b in itertools.pairwise(events) if b["event_time_ms"] < a["event_time_ms"]
    )
    print(f"produced {len(events)} events to {src} ({late_order} arrive after a later event)")
    print(f"sample event: {events[0]}")

    job_id = submit.submit(job.name, platform, bounded=True)
    print(
        f"submitted {job.name} as Flink job {job_id}: {platform.flink.rest_url}/#/job/running/{job_id}/overview"
    )
    state = submit.wait_job(platform, job_id, {"FINISHED"}, timeout_s=300)
    print(f"job {job_id} {state}")

    rows = kafka.read_committed_json(bootstrap, dst, group_id=f"demo-reader-{uuid.uuid4().hex[:8]}")
    got = Counter(
        {(norm_ts(r["window_start"]), r["event_key"]): int(r["count_events"]) for r in rows}
    )
    window_ms = int(job.params({}, True)["window_size_s"]) * 1000
    want = expected_counts(events, window_ms)
    print(f"\n{dst} (read_committed), {len(rows)} rows:")
    print(f"{'window_start (UTC)':20} {'event_key':10} {'count':>6} {'expected':>9}")
    for ws, key in sorted(set(got) | set(want)):
        mark = "" if got[(ws, key)] == want[(ws, key)] else "  <-- MISMATCH"
        print(f"{ws:20} {key:10} {got[(ws, key)]:6d} {want[(ws, key)]:9d}{mark}")
    ok = got == want and len(rows) == len(want)
    print(
        f"{'OK' if ok else 'FAILED'}: {sum(got.values())} events counted in {len(rows)} windows, "
        f"{sum(want.values())} expected"
    )
    return ok
