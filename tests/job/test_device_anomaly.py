"""The device_anomaly DataStream job on the local executor against the real broker.

Hand-timed Silver rows (two tenants, a device id both tenants use, readings out of order within the
watermark bound, a tie on one millisecond, spikes, a silent gap, a gap of exactly silence.after, a
device with too few readings) go to a private 3-partition Silver topic. The job runs bounded at
parallelism 1 and 2; its alerts, read with read_committed, must equal tests/anomaly_oracle.py's.

The late reading is made late for certain, not by luck: the job is bounded one record past the end
of one partition, the test waits until an alert proves the watermark has passed a later reading of
the same device, and only then writes the late reading into that gap. The job can only finish after
reading it, and the oracle leaves it out.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors import kafka
from jobs import config, device_anomaly, registry, settings
from tests.anomaly_oracle import Reading, expected_alerts, flink_ltz
from tests.conftest import SilverConf

BASE = 1_767_225_600_000  # 2026-01-01T00:00:00Z
STEP = 2_000
PARTITIONS = 3
SPIKE_MS = BASE + 30 * STEP + 30 * 37 % 1000  # acme/dev-1's first spike (see readings())
LATE = Reading("acme", "dev-1", "acme-dev-1-late", SPIKE_MS - 30_000, 100.0)


def readings() -> list[Reading]:
    out: list[Reading] = []

    def series(tenant: str, device: str, times: list[int], spikes: dict[int, float]) -> None:
        for i, at in enumerate(times):
            value = 20.0 + 0.4 * math.sin(i * 0.7) + 0.1 * (i % 3) + spikes.get(i, 0.0)
            out.append(Reading(tenant, device, f"{tenant}-{device}-{i:03d}", at, round(value, 3)))

    # Readings every 2 s, at odd milliseconds so that fractions are rendered too.
    every = [BASE + i * STEP + i * 37 % 1000 for i in range(60)]
    series("acme", "dev-1", every, {30: 8.0, 50: -9.0})
    # Silent for 180 s after reading 14, then back; later a gap of exactly 2 min (no alert).
    gap = [BASE + i * STEP for i in range(15)]
    gap += [gap[-1] + 180_000 + i * STEP for i in range(25)]
    gap += [gap[-1] + 120_000 + i * STEP for i in range(5)]
    series("acme", "dev-2", gap, {37: 6.0})
    # The same device id at another tenant: its own statistics; a tie on one millisecond.
    series("globex", "dev-1", every[:45], {35: -7.5})
    out.append(Reading("globex", "dev-1", "globex-dev-1-tie-b", every[40], 20.2))
    out.append(Reading("globex", "dev-1", "globex-dev-1-tie-a", every[40], 31.0))
    # Fewer readings than min_samples: no z-score alert, however far off.
    series("globex", "dev-9", [BASE + i * 5_000 for i in range(5)], {4: 50.0})
    return out


def silver_row(r: Reading) -> dict[str, Any]:
    return {
        "tenant_id": r.tenant_id,
        "event_type": "device_telemetry",
        "schema_version": 1,
        "event_id": r.event_id,
        "event_at": flink_ltz(r.at_ms),
        "device_id": r.device_id,
        "temperature_c": r.value,
        "humidity_pct": 40,
        "battery_ok": True,
        "status": "ok",
        "location": None,
        "tags": None,
        "technician_email": None,
        "source_topic": f"bronze_{r.tenant_id}_events",
        "source_partition": 0,
        "source_offset": 0,
        "ingest_at": flink_ltz(r.at_ms + 700),
    }


def record(r: Reading) -> tuple[bytes, bytes]:
    key = json.dumps({"tenant_id": r.tenant_id, "event_id": r.event_id}, separators=(",", ":"))
    return key.encode(), json.dumps(silver_row(r), separators=(",", ":")).encode()


def arrival_order(rs: list[Reading], bound_ms: int, seed: int) -> list[tuple[Reading, int]]:
    """Each reading on a random partition, arriving up to bound - 1 ms late relative to the others
    in its partition: out of order, but never behind its partition's watermark."""
    rng = random.Random(seed)
    placed = [
        (r.at_ms + rng.randrange(bound_ms), i, r, rng.randrange(PARTITIONS))
        for i, r in enumerate(rs)
    ]
    return [(r, p) for _t, _i, r, p in sorted(placed, key=lambda x: (x[0], x[1]))]


def inversions(order: list[tuple[Reading, int]]) -> int:
    """Pairs of one device's readings that share a partition and arrive in reverse event order."""
    last: dict[tuple[int, str, str], int] = {}
    n = 0
    for r, p in order:
        k = (p, r.tenant_id, r.device_id)
        n += k in last and r.at_ms < last[k]
        last[k] = max(last.get(k, r.at_ms), r.at_ms)
    return n


def job_config(conf_dir: Path) -> dict[str, Any]:
    return dict(yaml.safe_load((conf_dir / "streams" / "device_anomaly.yaml").read_text()))


def oracle(conf_dir: Path, rs: list[Reading]) -> list[dict[str, Any]]:
    cfg = job_config(conf_dir)
    return expected_alerts(
        rs,
        event_type=cfg["event_type"],
        zscore_rule_id=cfg["zscore"]["rule_id"],
        k=float(cfg["zscore"]["k"]),
        min_samples=int(cfg["zscore"]["min_samples"]),
        silence_rule_id=cfg["silence"]["rule_id"],
        silence_ms=registry.duration_ms(cfg["silence"]["after"]),
    )


def identity(a: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(a[f] for f in device_anomaly.ALERT_FIELDS if f not in ("measures", "detected_at"))


def same_measures(got: dict[str, float], want: dict[str, float]) -> bool:
    if got.keys() != want.keys():
        return False
    # Welford's running sums and the oracle's two-pass statistics agree to rounding, not to the bit.
    return all(math.isclose(got[m], want[m], rel_tol=1e-9, abs_tol=1e-12) for m in want)


def wait_until(what: str, cond: Callable[[], Any], timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.5)
    raise TimeoutError(f"{what}: not within {timeout_s:.0f}s")


@pytest.mark.parametrize("parallelism", [1, 2])
def test_alerts_match_oracle_whatever_the_order_and_parallelism(
    parallelism: int, bootstrap: str, silver_conf: SilverConf, uid: str
) -> None:
    sc = silver_conf
    alerts_topic = sc.topic("alert_events")
    sc.edit("streams/device_anomaly.yaml", output_topic=alerts_topic)
    # Exactly-once alerts become visible at checkpoints: checkpoint often, so the test sees the
    # first alerts while the job still waits for the late reading.
    plat = yaml.safe_load((sc.dir / "platform.yaml").read_text())
    plat.setdefault("flink", {})["checkpoint_interval_ms"] = 500
    sc.edit("platform.yaml", flink=plat["flink"])
    platform = settings.load_platform(sc.dir / "platform.yaml")
    spec = device_anomaly.load(sc.dir)
    silver = sc.silver("device_telemetry")
    assert spec.silver_topic == silver and spec.watermark_ms == 5_000
    kafka.create_topics(bootstrap, [silver, alerts_topic], partitions=PARTITIONS)
    try:
        rs = readings()
        order = arrival_order(rs, spec.watermark_ms, seed=parallelism)
        assert inversions(order) > 0, "the data must arrive out of order within partitions"
        placed = kafka.produce(
            bootstrap,
            silver,
            [record(r) for r, _p in order],
            partition_of={i: p for i, (_r, p) in enumerate(order)},
        )
        ends = {p: 0 for p in range(PARTITIONS)}
        for part, offset in placed:
            ends[part] = max(ends[part], offset + 1)
        late_partition = 1
        stop = {**ends, late_partition: ends[late_partition] + 1}

        want = oracle(sc.dir, rs)
        kinds = {(a["tenant_id"], a["alert_key"], a["rule_kind"]) for a in want}
        assert ("acme", "dev-1", "zscore") in kinds and ("globex", "dev-1", "zscore") in kinds
        assert ("globex", "dev-9", "zscore") not in kinds
        assert sum(a["alert_key"] == "dev-2" and a["rule_kind"] == "silence" for a in want) == 2
        # Had the late reading been used, the oracle would say something else.
        assert oracle(sc.dir, [*rs, LATE]) != want

        started = datetime.now(UTC)
        client = device_anomaly.run(
            platform, sc.dir, local=True, bounded=True, parallelism=parallelism, stop_offsets=stop
        )
        done = client.get_job_execution_result()
        try:
            spike_at = flink_ltz(SPIKE_MS)

            def spike_alert() -> bool:
                if done.done():
                    done.result()  # raises the job's failure
                    raise AssertionError("the job finished before the late reading was written")
                rows = kafka.read_committed_json(
                    bootstrap, alerts_topic, f"probe-{uid}-{time.monotonic()}"
                )
                return any(
                    a["tenant_id"] == "acme"
                    and a["alert_key"] == "dev-1"
                    and a["first_event_at"] == spike_at
                    for a in rows
                )

            # The spike alert is emitted when the watermark passes the spike; a reading of the
            # same device 30 s earlier is from then on behind the watermark.
            wait_until("the spike alert", spike_alert, timeout_s=180)
            kafka.produce(bootstrap, silver, [record(LATE)], partition_of={0: late_partition})
            wait_until("the bounded job to finish", done.done, timeout_s=180)
            done.result()  # raises if the job failed
        finally:
            if not done.done():
                client.cancel()
        finished = datetime.now(UTC)

        got_records = list(kafka.read_committed(bootstrap, alerts_topic, f"reader-{uid}"))
        got = [json.loads(v or b"null") for _k, v in got_records]
        for key, value in got_records:
            a = json.loads(value or b"null")
            # The Kafka key is the JSON object the SQL alerts' key format writes.
            assert (
                key
                == json.dumps(
                    {f: a[f] for f in device_anomaly.KEY_FIELDS}, separators=(",", ":")
                ).encode()
            )
            assert set(a) == set(device_anomaly.ALERT_FIELDS)
            detected = datetime.fromisoformat(a["detected_at"])
            assert started <= detected <= finished

        assert sorted(map(identity, got)) == sorted(map(identity, want))
        by_identity = {identity(a): a["measures"] for a in want}
        assert len(by_identity) == len(want)
        wrong = [
            (identity(a), a["measures"], by_identity[identity(a)])
            for a in got
            if not same_measures(a["measures"], by_identity[identity(a)])
        ]
        assert not wrong
    finally:
        kafka.delete_topics(bootstrap, [silver, alerts_topic])


def test_alert_timestamps_are_written_as_flinks_json_format_writes_them(
    bootstrap: str, platform: settings.PlatformSettings, topic_factory: Callable[..., str], uid: str
) -> None:
    """The alert topic is shared with SQL alerts: a TIMESTAMP_LTZ(3) column written by the
    platform's Kafka/json table must read the same as the job's Python rendering, and back."""
    from connectors.kafka import KafkaTable
    from jobs import flinkenv

    topic = topic_factory("alert_format_check", partitions=1)
    table = KafkaTable(
        topic=topic,
        role="sink",
        bootstrap=bootstrap,
        transactional_id_prefix=f"t{uid}.format_check",
        transaction_timeout_ms=platform.sinks.transaction_timeout_ms,
    )
    values = [0, BASE, BASE + 1, BASE + 10, BASE + 100, BASE + 120, BASE + 123, BASE + 999, -1]
    t_env = flinkenv.table_env(platform, name=f"format-{uid}", local=True)
    t_env.execute_sql(
        f"CREATE TEMPORARY TABLE t (ms BIGINT, event_at TIMESTAMP_LTZ(3)) WITH ({table.with_clause()})"
    )
    rows = ", ".join(f"({v}, TO_TIMESTAMP_LTZ({v}, 3))" for v in values)
    t_env.execute_sql(f"INSERT INTO t VALUES {rows}").wait()
    written = kafka.read_committed_json(bootstrap, topic, f"reader-{uid}")
    assert len(written) == len(values)
    for row in written:
        assert device_anomaly.format_ltz(row["ms"]) == row["event_at"]
        assert device_anomaly.parse_event_at(row["event_at"]) == row["ms"]


def test_a_config_error_names_the_file_and_the_key(silver_conf: SilverConf) -> None:
    path = silver_conf.dir / "streams" / "device_anomaly.yaml"
    good = path.read_text()
    cases = {
        "zscore:\n  rule_id: z\n  k: -1\n  min_samples: 20\n": ("zscore.k", "greater than 0"),
        "zscore:\n  rule_id: z\n  k: 3\n  min_samples: 20\n  kk: 1\n": ("zscore.kk", "unknown key"),
        "value_field: status\n": ("value_field", "int/long/double field of device_telemetry"),
        "event_type: parcels\n": ("event_type", "a known event type"),
        "silence:\n  rule_id: s\n  after: 2 minutes\n": ("silence.after", "a duration"),
    }
    for override, (key_path, expected) in cases.items():
        data = {**yaml.safe_load(good), **yaml.safe_load(override)}
        path.write_text(yaml.safe_dump(data))
        with pytest.raises(config.ConfigError) as e:
            device_anomaly.load(silver_conf.dir)
        assert e.value.file == str(path)
        assert e.value.key_path == key_path
        assert expected in e.value.expected, e.value.expected
        assert str(e.value).startswith(f"{path}: {key_path}: ")
    path.write_text(good)
    assert device_anomaly.load(silver_conf.dir).output_topic == "alert_events"
