"""The device_anomaly DataStream job on the local executor against the real broker.

Hand-timed Silver rows (two tenants, a device id both tenants use, readings out of order within the
watermark bound, a tie on one millisecond, spikes, a silent gap, a gap of exactly silence.after, a
device with too few readings) go to a private 3-partition Silver topic. The job runs bounded at
parallelism 1 and 2; its alerts, read with read_committed, must equal tests/oracles/anomaly.py's.

The late reading is made late for certain, not by luck: the job is bounded one record past the end
of one partition, the test waits until an alert proves the watermark has passed a later reading of
the same device, and only then writes the late reading into that gap. The job can only finish after
reading it, and the oracle leaves it out. The same scenario also runs unbounded, is stopped with a
savepoint and finished from it at another parallelism (uids, rescaled state, drain).

Every alert record is also checked for what its consumers rely on: the Kafka key the SQL alerts
write, the Delta loader's alert_events schema, and detected_at as the Kafka record timestamp.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition

from connectors import kafka
from jobs import device_anomaly
from streamlake.config import loader as config
from streamlake.config import registry, settings
from streamlake.lake import landing as lake
from streamlake.lake.sink import DeltaSink
from tests.conftest import SilverConf
from tests.oracles import gold as gold_oracle
from tests.oracles.anomaly import Reading, expected_alerts, flink_ltz

# A job's end hangs up on the in-process Python harness's gRPC stream; Beam's reader thread may
# report that as an exception after the fact ("Multiplexer hanging up").
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")

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


def silver_row(
    r: Reading, partition: int = 0, marks: tuple[int | None, int | None] = (None, None)
) -> dict[str, Any]:
    """A Silver row as the Silver job writes it, read from Bronze partition `partition`, with
    the watermark columns `marks` (tests/oracles/gold.py, silver_watermarks)."""
    pwm, swm = marks
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
        "source_partition": partition,
        "source_offset": 0,
        "ingest_at": flink_ltz(r.at_ms + 700),
        "partition_watermark_at": None if pwm is None else flink_ltz(pwm),
        "stream_watermark_at": None if swm is None else flink_ltz(swm),
    }


def record(
    r: Reading, partition: int = 0, marks: tuple[int | None, int | None] = (None, None)
) -> tuple[bytes, bytes]:
    key = json.dumps({"tenant_id": r.tenant_id, "event_id": r.event_id}, separators=(",", ":"))
    row = silver_row(r, partition, marks)
    return key.encode(), json.dumps(row, separators=(",", ":")).encode()


def stamped_records(placed: list[tuple[Reading, int]], bound_ms: int) -> list[tuple[bytes, bytes]]:
    """Readings on Silver partitions, each as if read from the Bronze partition of the same
    number, with the watermark columns the Silver job writes for them in this order."""
    marks = gold_oracle.silver_watermarks(
        [r.at_ms for r, _p in placed], [p for _r, p in placed], bound_ms
    )
    return [record(r, p, m) for (r, p), m in zip(placed, marks, strict=True)]


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


def same_measures(got: list[dict[str, Any]], want: dict[str, float]) -> bool:
    """got: the alert's measures as the alert topic carries them, [{"name": .., "value": ..}]."""
    if [set(m) for m in got] != [{"name", "value"}] * len(got):
        return False
    got_by_name = {m["name"]: m["value"] for m in got}
    if len(got_by_name) != len(got) or got_by_name.keys() != want.keys():
        return False
    # Welford's running sums and the oracle's two-pass statistics agree to rounding, not to the bit.
    return all(math.isclose(got_by_name[m], want[m], rel_tol=1e-9, abs_tol=1e-12) for m in want)


def wait_until(what: str, cond: Callable[[], Any], timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.5)
    raise TimeoutError(f"{what}: not within {timeout_s:.0f}s")


def private_conf(sc: SilverConf, **job: Any) -> tuple[settings.PlatformSettings, str]:
    """The job's config in the test's private conf copy, alerting to the test's own topic."""
    alerts_topic = sc.topic("alert_events")
    sc.edit("streams/device_anomaly.yaml", output_topic=alerts_topic, **job)
    # Exactly-once alerts become visible at checkpoints: checkpoint often, so the test sees the
    # first alerts while the job still waits for the late reading.
    plat = yaml.safe_load((sc.dir / "platform.yaml").read_text())
    plat.setdefault("flink", {})["checkpoint_interval_ms"] = 500
    sc.edit("platform.yaml", flink=plat["flink"])
    return settings.load_platform(sc.dir / "platform.yaml"), alerts_topic


def wait_job(client: Any, what: str, timeout_s: float = 180) -> None:
    done = client.get_job_execution_result()
    try:
        wait_until(what, done.done, timeout_s)
    finally:
        if not done.done():
            client.cancel()
    done.result()  # raises if the job failed


def stop_with_savepoint(client: Any, directory: str, *, drain: bool) -> str:
    """PyFlink 2.2's JobClient.stop_with_savepoint calls a Java method that no longer exists
    (stopWithSavepoint now also takes a SavepointFormatType): call the Java client directly."""
    from pyflink.java_gateway import get_gateway

    fmt = get_gateway().jvm.org.apache.flink.core.execution.SavepointFormatType.DEFAULT
    return str(client._j_job_client.stopWithSavepoint(drain, directory, fmt).get())


@dataclass
class Message:
    """The part of a confluent-kafka Message the Delta loader reads."""

    _value: bytes

    def value(self) -> bytes:
        return self._value

    def key(self) -> None:
        return None

    def topic(self) -> str:
        return "alert_events"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 0

    def timestamp(self) -> tuple[int, int]:
        return (1, BASE)


def read_alerts(bootstrap: str, topic: str, uid: str) -> list[dict[str, Any]]:
    """The committed alerts; each record's Kafka key checked on the way, and the values parsed as
    the Delta loader parses the alert topic into its alert_events table (the SQL alerts' schema)."""
    out = []
    values = []
    for key, value in kafka.read_committed(bootstrap, topic, f"reader-{uid}-{time.monotonic()}"):
        assert value is not None
        values.append(value)
        a = json.loads(value)
        assert set(a) == set(device_anomaly.ALERT_FIELDS)
        # The key is the JSON object the SQL alerts' key format writes for the same fields.
        want_key = {f: a[f] for f in device_anomaly.KEY_FIELDS}
        assert key == json.dumps(want_key, separators=(",", ":")).encode()
        out.append(a)
    if values:
        sink = DeltaSink("alert_events", (topic,), "unused", lake.ALERT_SCHEMA, ())
        table = sink.to_arrow([Message(v) for v in values])
        assert table.num_rows == len(out)
        assert table.column("first_event_at").null_count == 0
        assert table.column("measures").null_count == 0
    return out


def assert_stamped_with_detection_time(bootstrap: str, topic: str, n: int, uid: str) -> None:
    """Each alert record's Kafka timestamp is its detected_at: the broker's time retention must not
    see alerts about old readings as old."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"stamps-{uid}",
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        c.subscribe([topic])
        seen: list[tuple[int, str]] = []
        deadline = time.monotonic() + 60
        while len(seen) < n and time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is not None and not msg.error():
                seen.append((msg.timestamp()[1], json.loads(msg.value() or b"null")["detected_at"]))
    finally:
        c.close()
    assert len(seen) == n
    for stamp, detected_at in seen:
        assert stamp == device_anomaly.parse_event_at(detected_at)


def assert_same_alerts(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert sorted(map(identity, got)) == sorted(map(identity, want))
    by_identity = {identity(a): a["measures"] for a in want}
    assert len(by_identity) == len(want)
    wrong = [
        (identity(a), a["measures"], by_identity[identity(a)])
        for a in got
        if not same_measures(a["measures"], by_identity[identity(a)])
    ]
    assert not wrong


@dataclass
class Scenario:
    sc: SilverConf
    platform: settings.PlatformSettings
    silver: str
    alerts: str
    ends: dict[int, int]  # per partition, the offset after the last reading
    want: list[dict[str, Any]]
    # The late reading, stamped as the Silver job would stamp it after all the others.
    late_record: tuple[bytes, bytes]

    late_partition = 1

    def spike_alert_out(self, client: Any, uid: str) -> Callable[[], bool]:
        """A condition: the alert on acme/dev-1's first spike is committed. It is emitted when the
        watermark passes the spike; a reading of that device 30 s earlier is then late."""
        done = client.get_job_execution_result()
        spike_at = flink_ltz(SPIKE_MS)

        def check() -> bool:
            if done.done():
                done.result()  # raises the job's failure
                raise AssertionError("the job finished before the late reading was written")
            return any(
                a["alert_key"] == "dev-1" and a["first_event_at"] == spike_at
                for a in read_alerts(self.platform.kafka.bootstrap, self.alerts, uid)
                if a["tenant_id"] == "acme"
            )

        return check

    def send_late_reading(self) -> None:
        kafka.produce(
            self.platform.kafka.bootstrap,
            self.silver,
            [self.late_record],
            partition_of={0: self.late_partition},
        )


@pytest.fixture
def scenario(
    request: pytest.FixtureRequest, bootstrap: str, silver_conf: SilverConf
) -> Iterator[Scenario]:
    """The hand-timed readings on the test's own 3-partition Silver topic, and the oracle's
    alerts for them. The late reading is not written yet: the test writes it when it is late."""
    sc = silver_conf
    platform, alerts = private_conf(sc, **getattr(request, "param", {}))
    spec = device_anomaly.load(sc.dir)
    silver = sc.silver("device_telemetry")
    assert spec.silver_topic == silver and spec.watermark_ms == 5_000
    kafka.create_topics(bootstrap, [silver, alerts], partitions=PARTITIONS)
    try:
        rs = readings()
        order = arrival_order(rs, spec.watermark_ms, seed=7)
        assert inversions(order) > 0, "the data must arrive out of order within partitions"
        placed = kafka.produce(
            bootstrap,
            silver,
            stamped_records(order, spec.watermark_ms),
            partition_of={i: p for i, (_r, p) in enumerate(order)},
        )
        ends = {p: 0 for p in range(PARTITIONS)}
        for part, offset in placed:
            ends[part] = max(ends[part], offset + 1)
        assert all(ends.values()), "every partition holds readings"
        want = oracle(sc.dir, rs)
        kinds = {(a["tenant_id"], a["alert_key"], a["rule_kind"]) for a in want}
        assert ("acme", "dev-1", "zscore") in kinds and ("globex", "dev-1", "zscore") in kinds
        assert ("globex", "dev-9", "zscore") not in kinds
        assert sum(a["alert_key"] == "dev-2" and a["rule_kind"] == "silence" for a in want) == 2
        # Had the late reading been used, the oracle would say something else.
        assert oracle(sc.dir, [*rs, LATE]) != want
        late = stamped_records([*order, (LATE, Scenario.late_partition)], spec.watermark_ms)[-1]
        yield Scenario(sc, platform, silver, alerts, ends, want, late)
    finally:
        kafka.delete_topics(bootstrap, [silver, alerts])


@pytest.mark.parametrize("parallelism", [1, 2])
def test_alerts_match_oracle_whatever_the_order_and_parallelism(
    parallelism: int, scenario: Scenario, uid: str
) -> None:
    """Bounded one record past the end of one partition: the job waits there for the late
    reading, which the test writes once the watermark is past it; the job can only finish after
    reading it."""
    s = scenario
    stop = {**s.ends, s.late_partition: s.ends[s.late_partition] + 1}
    started = datetime.now(UTC)
    client = device_anomaly.run(
        s.platform, s.sc.dir, local=True, bounded=True, parallelism=parallelism, stop_offsets=stop
    )
    try:
        wait_until("the spike alert", s.spike_alert_out(client, uid), timeout_s=180)
    except BaseException:
        client.cancel()
        raise
    s.send_late_reading()
    wait_job(client, "the bounded job to finish")
    finished = datetime.now(UTC)
    got = read_alerts(s.platform.kafka.bootstrap, s.alerts, uid)
    for a in got:
        assert started <= datetime.fromisoformat(a["detected_at"]) <= finished
    assert_same_alerts(got, s.want)
    assert_stamped_with_detection_time(s.platform.kafka.bootstrap, s.alerts, len(got), uid)


def committed_offset(bootstrap: str, group: str, topic: str, partition: int) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        (tp,) = c.committed([TopicPartition(topic, partition)], timeout=10)
        return int(tp.offset)
    finally:
        c.close()


# Unbounded, partitions are never idle here: with readings this few, an idle timeout could let a
# partition whose Python worker starts late fall behind the others' watermark.
@pytest.mark.parametrize("scenario", [{"idle_timeout": "1h"}], indirect=True)
def test_a_savepoint_survives_a_redeploy_at_another_parallelism(
    scenario: Scenario, uid: str, tmp_path: Path
) -> None:
    """Unbounded at parallelism 2, stopped with a savepoint once the spike alert is out; the late
    reading is written; the job is redeployed from the savepoint at parallelism 1 (every uid must
    match; keyed state and timers are rescaled), reads it, and is stopped with --drain (the end of
    event time). Alerts from both runs together are the oracle's, each once. After a restore the
    watermark starts from nothing: the reading is late because its device is past it."""
    s = scenario
    bootstrap = s.platform.kafka.bootstrap
    first = device_anomaly.run(s.platform, s.sc.dir, local=True, bounded=False, parallelism=2)
    try:
        wait_until("the spike alert", s.spike_alert_out(first, uid), timeout_s=180)
        savepoint = stop_with_savepoint(first, (tmp_path / "sp1").as_uri(), drain=False)
    except BaseException:
        first.cancel()
        raise
    wait_job(first, "the stop with a savepoint")
    s.send_late_reading()
    second = device_anomaly.run(
        s.platform,
        s.sc.dir,
        local=True,
        bounded=False,
        parallelism=1,
        extra={"execution.state-recovery.path": savepoint},
    )
    group = f"{s.platform.pipeline_id}.{device_anomaly.JOB_NAME}"
    want_offset = s.ends[s.late_partition] + 1
    try:
        # The source commits its offsets at checkpoints: past the late reading means it was read.
        wait_until(
            "the late reading to be read",
            lambda: committed_offset(bootstrap, group, s.silver, s.late_partition) >= want_offset,
            timeout_s=180,
        )
        stop_with_savepoint(second, (tmp_path / "sp2").as_uri(), drain=True)
    except BaseException:
        second.cancel()
        raise
    wait_job(second, "the drain")
    assert_same_alerts(read_alerts(bootstrap, s.alerts, uid), s.want)


def test_every_device_of_many_gets_its_silence_alert_at_the_end_of_input(
    bootstrap: str, silver_conf: SilverConf, uid: str
) -> None:
    """200 devices with 5 readings each, all still pending when the input ends: the end of input
    fires 1,000 reading timers at once, a whole number of PyFlink bundles (size 1,000 here), the
    case in which PyFlink stops draining timers set meanwhile."""
    platform, alerts_topic = private_conf(silver_conf)
    silver = silver_conf.silver("device_telemetry")
    kafka.create_topics(bootstrap, [silver, alerts_topic], partitions=PARTITIONS)
    try:
        rs = [
            Reading("acme", f"dev-{d}", f"e-{d}-{i}", BASE + i * 1_000 + d, 20.0 + i)
            for d in range(200)
            for i in range(5)
        ]
        kafka.produce(
            bootstrap,
            silver,
            stamped_records([(r, i % 3) for i, r in enumerate(rs)], 5_000),
            partition_of={i: i % 3 for i in range(1000)},
        )
        client = device_anomaly.run(
            platform,
            silver_conf.dir,
            local=True,
            bounded=True,
            parallelism=1,
            extra={"python.fn-execution.bundle.size": "1000"},
        )
        wait_job(client, "the bounded job to finish")
        want = oracle(silver_conf.dir, rs)
        assert len(want) == 200
        assert_same_alerts(read_alerts(bootstrap, alerts_topic, uid), want)
    finally:
        kafka.delete_topics(bootstrap, [silver, alerts_topic])


def test_the_python_operators_run_in_thread_mode(bootstrap: str, silver_conf: SilverConf) -> None:
    """The job is built with PyFlink's thread-mode operators (Python in the TaskManager's JVM), not
    process mode, which PyFlink would fall back to without a word for an unsupported operator."""
    platform, alerts_topic = private_conf(silver_conf)
    silver = silver_conf.silver("device_telemetry")
    kafka.create_topics(bootstrap, [silver, alerts_topic], partitions=PARTITIONS)
    try:
        env = device_anomaly.stream_env(platform, name="thread-mode-check", local=True)
        device_anomaly.build(env, device_anomaly.load(silver_conf.dir), platform, bounded=True)
        python_ops = []
        for t in env._j_stream_execution_environment.getTransformations():
            if t.getClass().getSimpleName() != "OneInputTransformation":
                continue
            factory = t.getOperatorFactory()
            if factory.getClass().getSimpleName() == "SimpleOperatorFactory":
                name = factory.getOperator().getClass().getSimpleName()
                if "Python" in name:
                    python_ops.append((t.getName(), name))
        assert sorted(python_ops) == sorted(
            [(f"parse readings p{p}", "EmbeddedPythonProcessOperator") for p in range(PARTITIONS)]
            + [("detect anomalies", "EmbeddedPythonKeyedProcessOperator")]
        )
    finally:
        kafka.delete_topics(bootstrap, [silver, alerts_topic])


def test_alert_timestamps_are_written_as_flinks_json_format_writes_them(
    bootstrap: str, platform: settings.PlatformSettings, topic_factory: Callable[..., str], uid: str
) -> None:
    """The alert topic is shared with SQL alerts: a TIMESTAMP_LTZ(3) column written by the
    platform's Kafka/json table must read the same as the job's Python rendering, and back."""
    from connectors.kafka import KafkaTable
    from streamlake.runtime import flinkenv

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
        "silence:\n  rule_id: device_temperature_zscore\n  after: 2min\n": (
            "silence.rule_id",
            "other than zscore.rule_id",
        ),
        "state_ttl: 1min\n": ("state_ttl", "longer than silence.after"),
        "output_topic: gold_alerts\n": ("output_topic", "starting with alert_"),
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
