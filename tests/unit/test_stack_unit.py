"""The stack's process handling and rendered configs, without starting Kafka or Flink."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from jobs import paths, settings, stack


def test_kafka_properties_are_single_node_loopback_and_transaction_ready() -> None:
    s = settings.load_platform()
    props = dict(
        line.split("=", 1)
        for line in stack.kafka_server_properties(s).splitlines()
        if line and not line.startswith("#")
    )
    assert props["listeners"].count("127.0.0.1") == 2
    assert props["transaction.state.log.replication.factor"] == "1"
    assert int(props["transaction.max.timeout.ms"]) >= s.sinks.transaction_timeout_ms
    assert props["auto.create.topics.enable"] == "false"


def test_flink_config_binds_loopback_and_uses_our_python() -> None:
    s = settings.load_platform()
    c = stack.flink_config(s)
    for key in ("rest.bind-address", "jobmanager.bind-host", "taskmanager.bind-host"):
        assert c[key] == "127.0.0.1"
    assert c["python.executable"] == paths.python_executable()
    assert c["execution.checkpointing.dir"].startswith("file://")
    assert "metrics.reporter.prom.factory.class" not in c  # off: it would bind every interface


def test_taken_port_is_refused_with_a_clear_message() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(stack.StackError, match=rf"port {port} \(thing\) is already in use"):
            stack.require_ports({port: "thing"}, "conf/platform.yaml")


def test_stop_kills_exactly_the_group_it_started(tmp_path: Path) -> None:
    name = f"unit-{time.monotonic_ns()}"
    # A shell with a child: both are in the group we started and both must go.
    proc = stack.spawn(
        name,
        ["bash", "-c", "sleep 300 & wait"],
        {"PATH": "/usr/bin:/bin"},
        tmp_path / "p.log",
        tmp_path,
    )
    assert stack.owned(name) == proc
    assert stack.stop(name, timeout_s=10)
    assert stack.owned(name) is None
    assert not stack.pid_file(name).exists()


def test_recycled_pid_is_never_signalled(tmp_path: Path) -> None:
    # A pid file whose start time does not match the live process is stale: not ours.
    name = f"unit-stale-{time.monotonic_ns()}"
    paths.RUN.mkdir(parents=True, exist_ok=True)
    import os

    stack.pid_file(name).write_text(json.dumps({"pid": os.getpid(), "started": "1"}))
    assert stack.owned(name) is None
    assert stack.stop(name) is False
    assert not stack.pid_file(name).exists()
