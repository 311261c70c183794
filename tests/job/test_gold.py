"""The Gold job on the local executor and the real broker: every window kind and rule kind on
hand-timed rows (out of order, late, revised, idle partition), and seeded random rows checked
against an independent oracle (tests/oracles/gold.py) at parallelism 1 and 2."""

from __future__ import annotations

import datetime as dt
import json
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors import kafka
from jobs import catalog
from streamlake.config import settings
from streamlake.runtime import flinkenv
from tests.conftest import SilverConf, make_silver_conf
from tests.oracles import gold as oracle
from tests.support.timefmt import duration_ms
from tests.support.timefmt import from_iso as from_iso
from tests.support.timefmt import iso as iso

BOUND_MS = 5_000  # device_telemetry's max_out_of_orderness
T0 = 1_795_000_000_000 - 1_795_000_000_000 % 60_000  # a minute boundary in 2026

AGGREGATES: dict[str, dict[str, Any]] = {
    "t_tumble": {
        "window": {"kind": "tumble", "size": "10s"},
        "group_by": ["device_id"],
        "measures": {
            "readings": {"fn": "count"},
            "avg_t": {"fn": "avg", "field": "temperature_c"},
            "min_t": {"fn": "min", "field": "temperature_c"},
            "max_t": {"fn": "max", "field": "temperature_c"},
            "sum_h": {"fn": "sum", "field": "humidity_pct"},
        },
        "allowed_lateness": "20s",
    },
    "t_hop": {
        "window": {"kind": "hop", "size": "10s", "slide": "5s"},
        "group_by": [],
        "measures": {
            "readings": {"fn": "count"},
            "devices": {"fn": "count_distinct", "field": "device_id"},
            "p90_t": {"fn": "percentile", "field": "temperature_c", "p": 0.9},
        },
    },
    "t_cumulate": {
        "window": {"kind": "cumulate", "size": "20s", "step": "5s"},
        "group_by": [],
        "measures": {"readings": {"fn": "count"}, "max_t": {"fn": "max", "field": "temperature_c"}},
        "allowed_lateness": "8s",
    },
    "t_session": {
        "window": {"kind": "session", "gap": "7s"},
        "group_by": ["device_id"],
        "measures": {"readings": {"fn": "count"}, "sum_t": {"fn": "sum", "field": "temperature_c"}},
    },
}

RULES: dict[str, dict[str, Any]] = {
    "r_hot": {
        "kind": "threshold",
        "key": "device_id",
        "condition": {"field": "temperature_c", "op": ">", "value": 90},
        "times": 3,
        "within": "10s",
    },
    "r_spike": {
        "kind": "spike",
        "key": "device_id",
        "field": "temperature_c",
        "rise": 25,
        "within": "5s",
    },
    "r_seq": {
        "kind": "sequence",
        "key": "device_id",
        "steps": [
            {"field": "status", "op": "=", "value": "degraded"},
            {"field": "status", "op": "=", "value": "failed"},
        ],
        "within": "20s",
    },
    "r_quiet": {"kind": "absence", "key": "device_id", "after": "15s"},
}


def oracle_aggregate(name: str) -> oracle.Aggregate:
    a = AGGREGATES[name]
    w = {k: duration_ms(v) for k, v in a["window"].items() if k != "kind"}
    return oracle.Aggregate(
        kind=a["window"]["kind"],
        window=w,
        group_by=a["group_by"],
        measures={n: (m["fn"], m.get("field"), m.get("p")) for n, m in a["measures"].items()},
        allowed_lateness_ms=duration_ms(a["allowed_lateness"]) if "allowed_lateness" in a else None,
    )


def alert_row(a: dict[str, Any]) -> tuple[Any, ...]:
    """An alert as the oracle gives it, with its rule: (rule, tenant, key, first ms, last ms)."""
    return (
        a["rule_id"],
        a["tenant_id"],
        a["alert_key"],
        from_iso(a["first_event_at"]),
        from_iso(a["last_event_at"]),
    )


class GoldConf:
    def __init__(self, sc: SilverConf) -> None:
        self.sc = sc
        self.dir = sc.dir
        shutil.rmtree(self.dir / "gold")
        shutil.rmtree(self.dir / "alerts")
        (self.dir / "gold").mkdir()
        (self.dir / "alerts").mkdir()
        for name, a in AGGREGATES.items():
            body = {"name": name, "event_type": "device_telemetry", "topic": self.gold(name), **a}
            (self.dir / "gold" / f"{name}.yaml").write_text(yaml.safe_dump(body, sort_keys=False))
        for rid, r in RULES.items():
            body = {"rule_id": rid, "event_type": "device_telemetry", **r}
            (self.dir / "alerts" / f"{rid}.yaml").write_text(yaml.safe_dump(body, sort_keys=False))
        sc.edit(
            "gold.yaml",
            alert_topic=self.alerts,
            late_topics={"device_telemetry": self.late},
        )

    def gold(self, name: str) -> str:
        return self.sc.topic(f"gold_{name}")

    @property
    def alerts(self) -> str:
        return self.sc.topic("alert_events")

    @property
    def late(self) -> str:
        return self.sc.topic("late_device_telemetry")

    @property
    def silver(self) -> str:
        return self.sc.silver("device_telemetry")


@pytest.fixture
def gold_conf(tmp_path: Path, uid: str, bootstrap: str) -> Iterator[GoldConf]:
    gc = GoldConf(make_silver_conf(tmp_path, uid))
    topics = [gc.silver, gc.late, gc.alerts, *(gc.gold(n) for n in AGGREGATES)]
    kafka.create_topics(bootstrap, topics[:1], partitions=1)
    kafka.create_topics(bootstrap, topics[1:], partitions=2)
    yield gc
    kafka.delete_topics(bootstrap, topics)


def silver_row(
    i: int, tenant: str, device: str, t: int, temp: float, status: str = "ok", hum: int | None = 40
) -> dict[str, Any]:
    return {
        "tenant_id": tenant,
        "event_type": "device_telemetry",
        "schema_version": 1,
        "event_id": f"e{i}",
        "event_at": iso(t),
        "device_id": device,
        "temperature_c": temp,
        "humidity_pct": hum,
        "battery_ok": True,
        "status": status,
        "location": None,
        "tags": None,
        "technician_email": None,
        "source_topic": "bronze",
        "source_partition": 0,
        "source_offset": i,
        "ingest_at": iso(t),
    }


def stamped(rows: list[dict[str, Any]], bound_ms: int = BOUND_MS) -> list[dict[str, Any]]:
    """The rows with the watermark columns the Silver job would write, read in this order."""
    marks = oracle.silver_watermarks(
        [from_iso(r["event_at"]) for r in rows], [oracle.partition(r) for r in rows], bound_ms
    )
    return [
        {
            **r,
            "partition_watermark_at": iso(pwm) if pwm is not None else None,
            "stream_watermark_at": iso(swm) if swm is not None else None,
        }
        for r, (pwm, swm) in zip(rows, marks, strict=True)
    ]


def produce(bootstrap: str, topic: str, rows: list[dict[str, Any]]) -> None:
    rows = stamped(rows)
    kafka.produce(
        bootstrap,
        topic,
        [
            (
                json.dumps({"tenant_id": r["tenant_id"], "event_id": r["event_id"]}).encode(),
                json.dumps(r).encode(),
            )
            for r in rows
        ],
        partition_of=dict.fromkeys(range(len(rows)), 0),
    )


def run_gold(gc: GoldConf, parallelism: int) -> None:
    platform = settings.load_platform(gc.dir / "platform.yaml")
    job = catalog.get("gold", gc.dir)
    t_env = flinkenv.table_env(
        platform, name=f"gold-{gc.sc.uid}", local=True, parallelism=parallelism
    )
    job.run(t_env, platform, bounded=True).wait()


def read_gold(
    bootstrap: str, topic: str, group_by: list[str], measures: list[str]
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Upsert topic -> final row per key (the last record per key wins)."""
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for _k, v in kafka.read_committed(bootstrap, topic, group_id=f"r-{topic}", timeout_s=60):
        assert v is not None, f"{topic}: unexpected tombstone"
        r = json.loads(v)
        key = (
            r["tenant_id"],
            *(r[k] for k in group_by),
            from_iso(r["window_start"]),
            from_iso(r["window_end"]),
        )
        out[key] = {m: r[m] for m in [*measures, "late_rows"]}
    return out


def to_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "t": from_iso(r["event_at"]), "_seq": i} for i, r in enumerate(rows)]


def alerts_expected(on_time: list[dict[str, Any]]) -> dict[str, list[tuple[Any, ...]]]:
    """Per rule of RULES, the oracle's alerts: (tenant, key, first ms, last ms), sorted."""
    return {
        "r_hot": oracle.threshold(on_time, "device_id", ("temperature_c", ">", 90), 3, 10_000),
        "r_spike": oracle.spike(on_time, "device_id", "temperature_c", 25, 5_000),
        "r_seq": oracle.sequence(
            on_time, "device_id", [("status", "=", "degraded"), ("status", "=", "failed")], 20_000
        ),
        "r_quiet": oracle.absence(on_time, "device_id", 15_000),
    }


def assert_measures(name: str, got: dict[tuple[Any, ...], Any], want: dict[Any, Any]) -> None:
    """Every window of the oracle, and no other, with every measure and late_rows equal."""
    assert set(got) == set(want), (
        f"{name}: windows differ: extra {sorted(set(got) - set(want))[:5]}, missing {sorted(set(want) - set(got))[:5]}"
    )
    for key, w in want.items():
        for m, v in w.items():
            if isinstance(v, float):
                assert got[key][m] == pytest.approx(v), (name, key, m)
            else:
                assert got[key][m] == v, (name, key, m, got[key], w)


def check_all(bootstrap: str, gc: GoldConf, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Compare every Gold topic, the late topic and the alert topic with the oracle."""
    orows = to_rows(rows)
    for name, a in AGGREGATES.items():
        got = read_gold(bootstrap, gc.gold(name), a["group_by"], list(a["measures"]))
        assert_measures(name, got, oracle.gold(orows, BOUND_MS, oracle_aggregate(name)))
    on_time, late = oracle.split_late(orows, BOUND_MS)
    got_late = kafka.read_committed_json(bootstrap, gc.late, group_id=f"r-{gc.late}", timeout_s=60)
    assert sorted((r["event_id"], r["late_by_ms"]) for r in got_late) == sorted(
        (r["event_id"], wm - r["t"]) for r, wm in late
    )
    alerts = kafka.read_committed_json(
        bootstrap, gc.alerts, group_id=f"r-{gc.alerts}", timeout_s=60
    )
    got_alerts: dict[str, list[tuple[Any, ...]]] = {rid: [] for rid in RULES}
    for a in alerts:
        got_alerts[a["rule_id"]].append(
            (
                a["tenant_id"],
                a["alert_key"],
                from_iso(a["first_event_at"]),
                from_iso(a["last_event_at"]),
            )
        )
    want_alerts = alerts_expected(on_time)
    for rid in RULES:
        assert sorted(got_alerts[rid]) == want_alerts[rid], rid
    return {"late": late, "alerts": got_alerts}


def hand_timed() -> list[dict[str, Any]]:
    """Rows in the order they reach the topic. Comments give the watermark each row meets."""
    s = 1000
    spec = [
        # (device, offset s, temperature, status)
        ("dev-1", 1.0, 20.0, "ok"),
        ("dev-1", 3.0, 21.0, "ok"),
        ("dev-2", 2.0, 30.0, "ok"),  # out of order, within the bound
        ("dev-1", 12.0, 95.0, "degraded"),  # wm 7s
        ("dev-1", 4.0, 22.0, "ok"),  # out of order, wm 7 s: on time (4 <= 7? late!)
        ("dev-1", 13.0, 96.0, "degraded"),
        ("dev-1", 14.0, 97.0, "failed"),  # 3 hot in a row; degraded -> failed
        ("dev-2", 15.0, 60.0, "ok"),  # spike +30 from 30 (13 s apart: too slow)
        ("dev-2", 17.0, 90.5, "ok"),  # spike +30.5 within 2 s
        ("dev-1", 26.0, 20.0, "ok"),  # wm 21 s: windows up to [10, 20) fire
        ("dev-2", 9.0, 31.0, "ok"),  # late by 12 s: revises tumble [0,10) (closed 11 s ago < 20 s)
        ("dev-1", 1.5, 19.0, "ok"),  # late by 19.5 s: tumble [0,10) closed 11 s ago -> revised
        ("dev-1", 48.0, 21.0, "ok"),  # wm 43 s
        ("dev-2", 11.0, 40.0, "ok"),  # late by 32 s: beyond 20 s -> late topic only
        ("dev-3", 50.0, 25.0, "ok"),  # a new device
    ]
    return [
        silver_row(i, "acme", d, T0 + int(off * s), temp, status)
        for i, (d, off, temp, status) in enumerate(spec)
    ]


@pytest.mark.parametrize("parallelism", [1, 2])
def test_gold_hand_timed(gold_conf: GoldConf, bootstrap: str, parallelism: int) -> None:
    rows = hand_timed()
    produce(bootstrap, gold_conf.silver, rows)
    run_gold(gold_conf, parallelism)
    out = check_all(bootstrap, gold_conf, rows)
    assert {r["event_id"] for r, _ in out["late"]} == {"e4", "e10", "e11", "e13"}
    assert len(out["alerts"]["r_hot"]) == 1 and len(out["alerts"]["r_spike"]) == 1
    assert len(out["alerts"]["r_seq"]) == 1
    if parallelism == 1:
        check_delta(gold_conf, bootstrap, rows, tmp_lake=gold_conf.dir.parent / "lake")


def load_lake(gc: GoldConf, bootstrap: str, root: Path) -> list[Any]:
    from streamlake.config import lake as lake_conf
    from streamlake.config import registry
    from streamlake.lake import landing as lake
    from streamlake.lake.loader import Loader

    reg = registry.load_registry(gc.dir)
    sinks = [
        s
        for s in lake.sinks(reg, lake_conf.LakeSettings(lake_root=str(root)))
        if s.table.startswith(("gold_", "late_", "alert_"))
    ]
    # Small batches: a window's revision lands in a later commit than its first result (MERGE).
    loader = Loader(
        bootstrap,
        f"loader-{gc.sc.uid}",
        sinks,
        flush_rows=3,
        flush_ms=200,
        instance_id=f"l-{gc.sc.uid}",
        audit_uri=str(root / "audit_loader_batches"),
    )
    loader.run(idle_exit_s=3)
    return sinks


def _ms_of(v: dt.datetime) -> int:
    return (
        int(v.replace(tzinfo=dt.UTC).timestamp() * 1000)
        if v.tzinfo is None
        else int(v.timestamp() * 1000)
    )


def merged_updates(uri: str) -> int:
    """Rows the MERGE commits of a Delta table updated in place (a window revised by a later
    batch), from the table's history."""
    from deltalake import DeltaTable

    return sum(
        int(h.get("operationMetrics", {}).get("num_target_rows_updated", 0))
        for h in DeltaTable(uri).history()
        if h.get("operation") == "MERGE"
    )


def check_delta(gc: GoldConf, bootstrap: str, rows: list[dict[str, Any]], tmp_lake: Path) -> None:
    """Gold lands in Delta through the loader: one row per window holding every measure's final
    value (revisions MERGEd in, not one row per revision), late rows and alerts appended, each
    equal to the oracle; a replay adds nothing."""
    from deltalake import DeltaTable

    from streamlake.lake.sink import read_delta

    sinks = load_lake(gc, bootstrap, tmp_lake)
    by_table = {s.table: s for s in sinks}
    orows = to_rows(rows)
    for name, a in AGGREGATES.items():
        t = read_delta(by_table[f"gold_{name}"].uri).to_pylist()
        got = {
            (
                r["tenant_id"],
                *(r[k] for k in a["group_by"]),
                _ms_of(r["window_start"]),
                _ms_of(r["window_end"]),
            ): r
            for r in t
        }
        assert len(t) == len(got), f"{name}: a window has more than one row"
        assert_measures(name, got, oracle.gold(orows, BOUND_MS, oracle_aggregate(name)))
    # The MERGE path ran: a revision of a window landed in a later commit than the window's
    # first result and updated its row (the loader commits every 3 records).
    revised = oracle.gold(orows, BOUND_MS, oracle_aggregate("t_tumble"))
    assert any(w["late_rows"] > 0 for w in revised.values())
    assert merged_updates(by_table["gold_t_tumble"].uri) > 0, "no window was MERGEd in place"
    on_time, late = oracle.split_late(orows, BOUND_MS)
    got_late = read_delta(by_table["late_device_telemetry"].uri).to_pylist()
    assert sorted((r["event_id"], r["late_by_ms"]) for r in got_late) == sorted(
        (r["event_id"], wm - r["t"]) for r, wm in late
    )
    # The loader's batch audit counts late rows per commit.
    audit = read_delta(str(tmp_lake / "audit_loader_batches")).to_pylist()
    late_audit = [r for r in audit if r["table_name"] == "late_device_telemetry"]
    assert sum(r["late_rows"] for r in late_audit) == len(late)
    assert all(r["output_rows"] == r["late_rows"] and r["duplicates"] == 0 for r in late_audit)
    got_alerts: dict[str, list[tuple[Any, ...]]] = {rid: [] for rid in RULES}
    for r in read_delta(by_table["alert_events"].uri).to_pylist():
        got_alerts[r["rule_id"]].append(
            (
                r["tenant_id"],
                r["alert_key"],
                _ms_of(r["first_event_at"]),
                _ms_of(r["last_event_at"]),
            )
        )
    assert {rid: sorted(v) for rid, v in got_alerts.items()} == alerts_expected(on_time)
    versions = {s.table: DeltaTable(s.uri).version() for s in sinks}
    # Replaying the same offsets (a fresh consumer group) adds no rows and no versions.
    from streamlake.lake.loader import Loader

    Loader(bootstrap, f"replay-{gc.sc.uid}", sinks, flush_ms=200, instance_id=f"r-{gc.sc.uid}").run(
        idle_exit_s=3
    )
    assert {s.table: DeltaTable(s.uri).version() for s in sinks} == versions


def random_rows(seed: int, n: int = 1500) -> list[dict[str, Any]]:
    """Seeded rows: 2 tenants, 6 devices, disorder within and beyond the bound, hot runs,
    spikes, degraded -> failed sequences, pauses (sessions and absence)."""
    rng = random.Random(seed)
    rows = []
    clock = T0
    temps = {d: 40.0 for d in range(6)}
    for i in range(n):
        clock += rng.randint(1, 400) + (rng.random() < 0.01) * rng.randint(15_000, 40_000)
        d = rng.randrange(6)
        tenant = "acme" if d < 4 else "globex"
        t = clock - rng.randint(0, 4_000)  # disorder within the bound
        if rng.random() < 0.04:
            t = clock - rng.randint(5_000, 60_000)  # late, some within allowed lateness
        temps[d] = max(
            -20.0, min(140.0, temps[d] + rng.uniform(-6, 6) + (rng.random() < 0.03) * 30)
        )
        status = rng.choices(["ok", "degraded", "failed"], [0.8, 0.12, 0.08])[0]
        rows.append(
            silver_row(
                i,
                tenant,
                f"dev-{d}",
                t,
                round(temps[d], 2),
                status,
                rng.choice([None, rng.randint(0, 100)]),
            )
        )
    return rows


@pytest.mark.parametrize("parallelism", [1, 2])
def test_gold_matches_oracle_on_random_rows(
    gold_conf: GoldConf, bootstrap: str, parallelism: int
) -> None:
    rows = random_rows(seed=20261124)
    produce(bootstrap, gold_conf.silver, rows)
    run_gold(gold_conf, parallelism)
    out = check_all(bootstrap, gold_conf, rows)
    # The seed exercises every path (so the comparison above is not vacuous).
    assert len(out["late"]) > 20
    revised = oracle.gold(to_rows(rows), BOUND_MS, oracle_aggregate("t_tumble"))
    assert sum(1 for r in revised.values() if r["late_rows"] > 0) > 5
    assert all(len(v) > 0 for v in out["alerts"].values()), {
        k: len(v) for k, v in out["alerts"].items()
    }
