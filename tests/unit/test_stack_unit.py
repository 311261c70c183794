"""The stack's process handling and rendered configs, without starting Kafka or Flink."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from streamlake.config import paths, settings
from streamlake.stack import broker, cluster, processes


def test_kafka_properties_are_single_node_loopback_and_transaction_ready() -> None:
    s = settings.load_platform()
    props = dict(
        line.split("=", 1)
        for line in broker.kafka_server_properties(s).splitlines()
        if line and not line.startswith("#")
    )
    assert props["listeners"].count("127.0.0.1") == 2
    assert props["transaction.state.log.replication.factor"] == "1"
    assert int(props["transaction.max.timeout.ms"]) >= s.sinks.transaction_timeout_ms
    assert props["auto.create.topics.enable"] == "false"


def test_flink_config_binds_loopback_and_uses_our_python() -> None:
    s = settings.load_platform()
    c = cluster.flink_config(s)
    for key in ("rest.bind-address", "jobmanager.bind-host", "taskmanager.bind-host"):
        assert c[key] == "127.0.0.1"
    assert c["python.executable"] == paths.python_executable()
    assert c["execution.checkpointing.dir"].startswith("file://")
    assert "metrics.reporter.prom.factory.class" not in c  # off: it would bind every interface


def test_the_cluster_resolves_pemja_from_its_lib_parent_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thread-mode Python (device_anomaly) loads PemJa's native library once per TaskManager:
    PemJa must come from lib/ and parent-first, or the second such job on a TaskManager fails."""
    jars = tmp_path / "jars"
    jars.mkdir()
    (jars / "connector.jar").write_bytes(b"")
    state = tmp_path / "flink"
    monkeypatch.setattr(paths, "FLINK_JARS", jars)
    monkeypatch.setattr(paths, "FLINK_STATE", state)
    monkeypatch.setattr(paths, "LOGS", tmp_path / "logs")
    monkeypatch.setattr(cluster, "FLINK_CONF", state / "conf")
    monkeypatch.setattr(cluster, "FLINK_LIB", state / "lib")
    monkeypatch.setattr(cluster, "CHECKPOINTS", state / "checkpoints")
    s = settings.load_platform()
    cluster.prepare_flink(s)
    assert [j.name for j in (state / "lib").glob("flink-python-*.jar")]
    c = cluster.flink_config(s)
    assert "pemja." in str(c["classloader.parent-first-patterns.additional"]).split(";")


def test_taken_port_is_refused_with_a_clear_message() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(processes.StackError, match=rf"port {port} \(thing\) is already in use"):
            processes.require_ports({port: "thing"}, "conf/platform.yaml")


def test_stop_kills_exactly_the_group_it_started(tmp_path: Path) -> None:
    name = f"unit-{time.monotonic_ns()}"
    # A shell with a child: both are in the group we started and both must go.
    proc = processes.spawn(
        name,
        ["bash", "-c", "sleep 300 & wait"],
        {"PATH": "/usr/bin:/bin"},
        tmp_path / "p.log",
        tmp_path,
    )
    assert processes.owned(name) == proc
    assert processes.stop(name, timeout_s=10)
    assert processes.owned(name) is None
    assert not processes.pid_file(name).exists()


def test_recycled_pid_is_never_signalled(tmp_path: Path) -> None:
    # A pid file whose start time does not match the live process is stale: not ours.
    name = f"unit-stale-{time.monotonic_ns()}"
    paths.RUN.mkdir(parents=True, exist_ok=True)
    import os

    processes.pid_file(name).write_text(json.dumps({"pid": os.getpid(), "started": "1"}))
    assert processes.owned(name) is None
    assert processes.stop(name) is False
    assert not processes.pid_file(name).exists()


def test_broker_limit_is_the_platform_record_size_limit() -> None:
    s = settings.load_platform()
    props = dict(
        line.split("=", 1)
        for line in broker.kafka_server_properties(s).splitlines()
        if line and not line.startswith("#")
    )
    assert props["message.max.bytes"] == str(s.kafka.max_message_bytes)
    assert s.kafka.topic_config() == {"max.message.bytes": str(s.kafka.max_message_bytes)}


def test_cluster_restarts_are_failure_rate_bounded(tmp_path: Path) -> None:
    p = tmp_path / "platform.yaml"
    p.write_text("flink:\n  restart: {max_failures_per_interval: 4, interval: 2min, delay: 5s}\n")
    c = cluster.flink_config(settings.load_platform(p))
    assert c["restart-strategy.type"] == "failure-rate"
    assert c["restart-strategy.failure-rate.max-failures-per-interval"] == "4"
    assert c["restart-strategy.failure-rate.failure-rate-interval"] == "120000 ms"
    assert c["restart-strategy.failure-rate.delay"] == "5000 ms"
    # The repo's own config: bounded too (never the unbounded exponential-delay default).
    assert cluster.flink_config(settings.load_platform())["restart-strategy.type"] == "failure-rate"


def test_a_restart_rate_that_can_never_be_exceeded_is_refused(tmp_path: Path) -> None:
    from streamlake.config import loader as config

    p = tmp_path / "platform.yaml"
    # 3 failures at least 2 min apart never make 4 within 5 min: the job would restart forever.
    p.write_text("flink:\n  restart: {max_failures_per_interval: 3, interval: 5min, delay: 2min}\n")
    with pytest.raises(config.ConfigError) as e:
        settings.load_platform(p)
    assert e.value.key_path == "flink.restart"
    assert "restarts forever" in e.value.expected


DATA = Path(__file__).parent / "data"


def test_status_shows_a_failed_job_with_its_root_cause() -> None:
    # Recorded from the local cluster: a job failing on every record (CAST of a non-number)
    # under failure-rate restarts (2 per minute), which ended FAILED after its third failure.
    overview = json.loads((DATA / "flink_failed_jobs_overview.json").read_text())
    exceptions = json.loads((DATA / "flink_failed_job_exceptions.json").read_text())
    failed = overview["jobs"][0]
    running = {"jid": "0" * 32, "name": "silver", "state": "RUNNING"}
    overview["jobs"].append(running)
    asked: list[str] = []

    def exceptions_of(jid: str) -> dict[str, object]:
        asked.append(jid)
        return dict(exceptions)

    lines = cluster.job_lines(overview, exceptions_of)
    assert asked == [failed["jid"]]  # only failed jobs cost a REST call
    assert lines[0].split()[:3] == ["job", failed["jid"], "FAILED"]
    assert lines[1].strip() == (
        "root cause: java.lang.NumberFormatException: For input string: 'b1596'. Invalid "
        "character found. (in Source: src[1] -> Calc[2] (1/1) - execution #2)"
    )
    assert lines[2].split()[:3] == ["job", "0" * 32, "RUNNING"] and len(lines) == 3
    assert cluster.root_cause({"exceptionHistory": {"entries": []}}) == "no exception recorded"
