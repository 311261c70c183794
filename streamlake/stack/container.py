"""One process of the compose stack (docker/compose.yaml) in the foreground of its container, and
its health check: the same broker and Flink config as the local stack (broker.py, cluster.py, from
the same conf/platform.yaml), with what differs inside a container on top of it.

Inside a container a server binds every interface of the container (they are on the compose
network only; the host reaches what compose publishes, on 127.0.0.1), the broker and the
JobManager are other hosts (settings.ENV_KAFKA_BOOTSTRAP, settings.ENV_FLINK_HOST), logs go to
stdout, and each process execs the JVM so that `docker kill` kills it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import urllib.error
from typing import Any

from connectors import kafka
from streamlake.config import paths
from streamlake.config.settings import PlatformSettings
from streamlake.stack import broker, cluster
from streamlake.stack.processes import StackError, java_executable

SERVERS = ("broker", "jobmanager", "taskmanager")
CHECKS = ("broker", "jobmanager", "taskmanager", "loader")
# Inside the compose network the broker is `broker:9092`; the host reaches it on 127.0.0.1 at the
# port compose publishes (STREAMLAKE_KAFKA_EXTERNAL, advertised as is).
ENV_ADVERTISED = "STREAMLAKE_KAFKA_ADVERTISED"
ENV_EXTERNAL = "STREAMLAKE_KAFKA_EXTERNAL"
EXTERNAL_PORT = 19092

KAFKA_LOG4J_CONSOLE = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
logger.state.name = state.change.logger
logger.state.level = WARN
"""


def broker_properties(s: PlatformSettings) -> str:
    """server.properties of the local broker with the listeners of a container: PLAINTEXT for the
    compose network, EXTERNAL for the host (through the published 127.0.0.1 port), the KRaft
    controller on the container's loopback."""
    k = s.kafka
    advertised = os.environ.get(ENV_ADVERTISED, f"broker:{k.port}")
    external = os.environ.get(ENV_EXTERNAL, f"127.0.0.1:{EXTERNAL_PORT}")
    mine = {
        "controller.quorum.voters": f"1@127.0.0.1:{k.controller_port}",
        "listeners": (
            f"PLAINTEXT://0.0.0.0:{k.port},EXTERNAL://0.0.0.0:{EXTERNAL_PORT},"
            f"CONTROLLER://127.0.0.1:{k.controller_port}"
        ),
        "advertised.listeners": f"PLAINTEXT://{advertised},EXTERNAL://{external}",
        "listener.security.protocol.map": (
            "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,EXTERNAL:PLAINTEXT"
        ),
    }
    lines = []
    for line in broker.kafka_server_properties(s).splitlines():
        key = line.partition("=")[0]
        lines.append(f"{key}={mine.pop(key)}" if key in mine else line)
    return "\n".join([*lines, *(f"{k}={v}" for k, v in mine.items())]) + "\n"


def serve_broker(s: PlatformSettings) -> None:
    """Format the broker's storage on first start (its volume), then exec the broker."""
    broker.KAFKA_DIR.mkdir(parents=True, exist_ok=True)
    props = broker.KAFKA_DIR / "server.properties"
    props.write_text(broker_properties(s))
    log4j = broker.KAFKA_DIR / "log4j2.properties"
    log4j.write_text(KAFKA_LOG4J_CONSOLE)
    java, cp = java_executable(), str(paths.KAFKA_JARS / "*")
    jvm = [f"-Dlog4j2.configurationFile={log4j}", "-Djava.awt.headless=true"]
    if not (paths.KAFKA_DATA / "meta.properties").exists():
        paths.KAFKA_DATA.mkdir(parents=True, exist_ok=True)
        fmt = ["kafka.tools.StorageTool", "format", "-t", broker._kafka_cluster_id()]
        subprocess.run([java, *jvm, "-cp", cp, *fmt, "-c", str(props)], check=True, timeout=120)
    heap = [f"-Xms{s.kafka.heap}", f"-Xmx{s.kafka.heap}", "-XX:+UseG1GC"]
    os.execv(java, [java, *heap, *jvm, "-cp", cp, "kafka.Kafka", str(props)])  # noqa: S606


def flink_overrides(role: str) -> dict[str, Any]:
    """What differs for a JobManager or TaskManager in a container: it binds every interface of
    the container, and a TaskManager is known by its container's hostname (the container id), so
    the JobManager's REST API names the container that runs a task."""
    out: dict[str, Any] = {
        "jobmanager.bind-host": "0.0.0.0",  # noqa: S104 (the container's interfaces)
        "rest.bind-address": "0.0.0.0",  # noqa: S104
        "taskmanager.bind-host": "0.0.0.0",  # noqa: S104
    }
    if role == "taskmanager":
        host = socket.gethostname()
        out["taskmanager.host"] = host
        out["taskmanager.resource-id"] = host
    return out


def serve_flink(s: PlatformSettings, role: str) -> None:
    env = cluster.prepare_flink(s, flink_overrides(role))
    script = cluster.flink_bin(f"{role}.sh")
    os.execve(script, [script, "start-foreground"], env)  # noqa: S606 (Flink's own script)


def serve(s: PlatformSettings, what: str) -> None:
    if what == "broker":
        serve_broker(s)
    elif what in ("jobmanager", "taskmanager"):
        serve_flink(s, what)
    else:
        raise StackError(f"unknown server {what!r}: one of {', '.join(SERVERS)}")


def healthy(s: PlatformSettings, what: str) -> bool:
    """The compose health checks: the broker answers metadata; the JobManager's REST API answers;
    the JobManager lists this TaskManager with its slots; the loader has subscribed."""
    if what == "broker":
        return kafka.broker_ready(s.kafka.bootstrap)
    if what == "loader":
        from streamlake.stack import control

        return control.loader_ready_file().exists()
    try:
        if what == "jobmanager":
            return "taskmanagers" in cluster.rest_get(s, "/overview", 2.0)
        if what == "taskmanager":
            return socket.gethostname() in cluster.taskmanager_ids(s)
    except (OSError, urllib.error.URLError, ValueError):
        return False
    raise StackError(f"unknown health check {what!r}: one of {', '.join(CHECKS)}")
