"""The local stack: a real Kafka 4.x broker (KRaft) and a Flink standalone cluster, on loopback.

Each process is started by us in its own session, with its pid and start time in .stack/run/, so
`down` stops exactly the processes `up` started (a recycled pid is never signalled). Each start
waits on a real health check: the broker answers a metadata request; Flink's REST /overview lists
a TaskManager. `up` starts them through the supervisor (streamlake/stack/supervisor.py), which is their parent
and starts one again when it dies.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from connectors import kafka
from streamlake.config import paths
from streamlake.config.settings import PlatformSettings


class StackError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Processes we own


@dataclass(frozen=True)
class Owned:
    name: str
    pid: int
    started: str  # /proc/<pid>/stat start time, to tell our process from a recycled pid

    @property
    def pid_file(self) -> Path:
        return pid_file(self.name)


def pid_file(name: str) -> Path:
    return paths.RUN / f"{name}.pid"


def stopped_file(name: str) -> Path:
    """Present while `name` was stopped on purpose (`stop`): the supervisor leaves it down."""
    return paths.RUN / f"{name}.stopped"


# The processes this process started and has not yet reaped, by name: the supervisor reads their
# exit status (code or signal) from here when one dies.
_children: dict[str, subprocess.Popen[bytes]] = {}


def child(name: str) -> subprocess.Popen[bytes] | None:
    return _children.get(name)


def _start_time(pid: int) -> str | None:
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime); the command name (field 2) may contain spaces, so split after ')'.
    return stat_line.rsplit(")", 1)[1].split()[19]


def owned(name: str) -> Owned | None:
    """The live process we started under `name`, or None (a stale pid file is removed)."""
    f = pid_file(name)
    if not f.exists():
        return None
    try:
        rec = json.loads(f.read_text())
        proc = Owned(name, int(rec["pid"]), str(rec["started"]))
    except (ValueError, KeyError):
        f.unlink()
        return None
    if _start_time(proc.pid) != proc.started or _is_zombie(proc.pid):
        f.unlink()
        return None
    return proc


def uptime_s(pid: int) -> float | None:
    """How long the process has been running (from /proc), or None if it is gone."""
    st = _start_time(pid)
    try:
        boot = next(
            float(ln.split()[1])
            for ln in Path("/proc/stat").read_text().splitlines()
            if ln.startswith("btime ")
        )
    except (OSError, StopIteration):
        return None
    if st is None:
        return None
    return max(0.0, time.time() - boot - int(st) / os.sysconf("SC_CLK_TCK"))


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """SIGTERM/SIGINT wait until the block is done: a process is never started without its pid
    file, so `down` (which SIGTERMs the supervisor, then reads the pid files) misses nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    sigs = (signal.SIGTERM, signal.SIGINT)
    old = {sig: signal.signal(sig, lambda n, _f: got.append(n)) for sig in sigs}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        for n in got:
            os.kill(os.getpid(), n)  # delivered now, to the handler that was in place


def spawn(name: str, argv: list[str], env: dict[str, str], log: Path, cwd: Path) -> Owned:
    log.parent.mkdir(parents=True, exist_ok=True)
    paths.RUN.mkdir(parents=True, exist_ok=True)
    with _signals_deferred():
        with log.open("ab") as out:
            p = subprocess.Popen(
                argv,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: `down` signals the group
            )
        _children[name] = p
        started = None
        for _ in range(50):
            started = _start_time(p.pid)
            if started:
                break
            time.sleep(0.01)
        if started is None:
            raise StackError(f"{name} exited at once; see {log}")
        proc = Owned(name, p.pid, started)
        proc.pid_file.write_text(json.dumps({"pid": p.pid, "started": started, "argv": argv[:3]}))
        stopped_file(name).unlink(missing_ok=True)
    return proc


def stop(name: str, timeout_s: float = 60.0, *, on_purpose: bool = True) -> bool:
    """SIGTERM the process group we started, wait, then SIGKILL. True if something was stopped.

    A stop on purpose is marked, so the supervisor leaves the process down until it is started
    again; the supervisor itself stops a process that will not become healthy with on_purpose=False.
    """
    proc = owned(name)
    if proc is None:
        return False
    if on_purpose:
        stopped_file(name).write_text(str(proc.pid))
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _start_time(proc.pid) != proc.started or _is_zombie(proc.pid):
            break
        time.sleep(0.2)
    else:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _wait_gone(proc, 10)
    proc.pid_file.unlink(missing_ok=True)
    if (p := _children.get(name)) is not None and p.pid == proc.pid:
        p.poll()  # reap it if it is ours
    return True


def _wait_gone(proc: Owned, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _start_time(proc.pid) != proc.started or _is_zombie(proc.pid):
            return
        time.sleep(0.1)


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def require_ports(ports: dict[int, str], setting_hint: str) -> None:
    for port, what in ports.items():
        if not port_free(port):
            raise StackError(
                f"port {port} ({what}) is already in use by a process this stack did not start. "
                f"Stop that process, or choose another port in {setting_hint}."
            )


def wait_for(check: Callable[[], bool], what: str, timeout_s: float, log: Path, name: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if owned(name) is None:
            raise StackError(f"{what}: the process exited during start-up; see {log}")
        if check():
            return
        time.sleep(0.25)
    raise StackError(f"{what}: not healthy after {timeout_s:.0f}s; see {log}")


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise StackError(
            "java not found: install a JDK 17 (apt-get install openjdk-17-jdk-headless)"
        )
    return found


# ---------------------------------------------------------------------------------------------
# Kafka

KAFKA_DIR = paths.STACK / "kafka"


def kafka_server_properties(s: PlatformSettings) -> str:
    k = s.kafka
    return "\n".join(
        [
            "# Generated by `python -m jobs up` from conf/platform.yaml. Single node, KRaft, loopback.",
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{k.host}:{k.controller_port}",
            f"listeners=PLAINTEXT://{k.host}:{k.port},CONTROLLER://{k.host}:{k.controller_port}",
            f"advertised.listeners=PLAINTEXT://{k.host}:{k.port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={paths.KAFKA_DATA}",
            f"num.partitions={k.default_partitions}",
            "auto.create.topics.enable=false",
            "delete.topic.enable=true",
            # One node: internal topics cannot have more than one replica.
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            # Flink sinks set transaction.timeout.ms (sinks.transaction_timeout_ms) below this.
            f"transaction.max.timeout.ms={k.transaction_max_timeout_ms}",
            # The one record-size limit (kafka.max_message_bytes): sinks' max.request.size and
            # the platform's topics' max.message.bytes are the same number.
            f"message.max.bytes={k.max_message_bytes}",
            "group.initial.rebalance.delay.ms=0",
            "",
        ]
    )


KAFKA_LOG4J = """\
status = warn
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = {log}
appender.file.filePattern = {log}.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 50MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.state.name = state.change.logger
logger.state.level = WARN
"""


def _kafka_classpath() -> str:
    if not any(paths.KAFKA_JARS.glob("kafka_2.13-*.jar")):
        raise StackError(f"Kafka broker jars missing in {paths.KAFKA_JARS}: run `make jars`")
    return str(paths.KAFKA_JARS / "*")


def kafka_up(s: PlatformSettings) -> str:
    if owned("kafka"):
        if kafka.broker_ready(s.kafka.bootstrap):
            return f"kafka: already running on {s.kafka.bootstrap}"
        raise StackError(
            "kafka: our broker process is running but unhealthy; run `make down` first"
        )
    return kafka_start(s)


def kafka_start(s: PlatformSettings) -> str:
    """Start the broker (formatting its storage the first time) and wait until it answers."""
    require_ports(
        {s.kafka.port: "Kafka broker", s.kafka.controller_port: "Kafka controller"},
        "conf/platform.yaml (kafka.port / kafka.controller_port)",
    )
    KAFKA_DIR.mkdir(parents=True, exist_ok=True)
    props = KAFKA_DIR / "server.properties"
    props.write_text(kafka_server_properties(s))
    log = paths.LOGS / "kafka-server.log"
    log4j = KAFKA_DIR / "log4j2.properties"
    log4j.write_text(KAFKA_LOG4J.format(log=log))
    java, cp = _java(), _kafka_classpath()
    jvm = [f"-Dlog4j2.configurationFile={log4j}", "-Djava.awt.headless=true"]
    if not (paths.KAFKA_DATA / "meta.properties").exists():
        paths.KAFKA_DATA.mkdir(parents=True, exist_ok=True)
        cluster_id = _kafka_cluster_id()
        out = subprocess.run(
            [
                java,
                *jvm,
                "-cp",
                cp,
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(props),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if out.returncode != 0:
            raise StackError(f"kafka: formatting storage failed:\n{out.stdout}\n{out.stderr}")
    env = dict(os.environ)
    argv = [
        java,
        f"-Xms{s.kafka.heap}",
        f"-Xmx{s.kafka.heap}",
        "-XX:+UseG1GC",
        *jvm,
        "-cp",
        cp,
        "kafka.Kafka",
        str(props),
    ]
    spawn("kafka", argv, env, paths.LOGS / "kafka.out", paths.STACK)
    wait_for(
        lambda: port_open(s.kafka.port) and kafka.broker_ready(s.kafka.bootstrap),
        "kafka",
        90,
        log,
        "kafka",
    )
    return f"kafka: up on {s.kafka.bootstrap} (KRaft, logs in {log})"


def _kafka_cluster_id() -> str:
    # A Kafka cluster id is a base64url (no padding) encoded 16-byte UUID.
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


# ---------------------------------------------------------------------------------------------
# Flink

FLINK_CONF = paths.FLINK_STATE / "conf"
FLINK_LIB = paths.FLINK_STATE / "lib"
# execution.checkpointing.dir: one folder per Flink job id, chk-<n>/_metadata inside.
CHECKPOINTS = paths.FLINK_STATE / "checkpoints"


def flink_config(s: PlatformSettings) -> dict[str, Any]:
    """Flink's config.yaml: the wheel's defaults with ours on top."""
    base = yaml.safe_load((paths.pyflink_home() / "conf" / "config.yaml").read_text()) or {}
    py = paths.python_executable()
    f = s.flink
    ours: dict[str, Any] = {
        "jobmanager.rpc.address": "127.0.0.1",
        "jobmanager.rpc.port": f.rpc_port,
        "jobmanager.bind-host": "127.0.0.1",
        "jobmanager.memory.process.size": f.jobmanager_memory,
        "taskmanager.bind-host": "127.0.0.1",
        "taskmanager.host": "127.0.0.1",
        "taskmanager.numberOfTaskSlots": f.task_slots,
        "taskmanager.memory.process.size": f.taskmanager_memory,
        "rest.address": "127.0.0.1",
        "rest.bind-address": "127.0.0.1",
        "rest.port": f.rest_port,
        "rest.flamegraph.enabled": True,
        # Metrics in the REST API (Web UI, the benchmark's progress) refresh every second.
        "metrics.fetcher.update-interval": 1000,
        "parallelism.default": f.parallelism,
        "state.backend.type": f.state_backend,
        "execution.checkpointing.dir": CHECKPOINTS.as_uri(),
        "execution.checkpointing.savepoint-dir": (paths.FLINK_STATE / "savepoints").as_uri(),
        "execution.checkpointing.incremental": f.state_backend == "rocksdb",
        "execution.checkpointing.interval": f"{f.checkpoint_interval_ms} ms",
        "execution.checkpointing.mode": "EXACTLY_ONCE",
        "execution.checkpointing.num-retained": 3,
        # A cancelled job keeps its latest checkpoints (a failed or lost one always does), so
        # `jobs resume JOB` can start it again from there, e.g. after a JobManager restart.
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        # Bounded restarts (flink.restart): a job failing on every start ends FAILED.
        **f.restart.flink_options(),
        "python.executable": py,
        "python.client.executable": py,
        # Thread mode (device_anomaly) loads PemJa's native library into the TaskManager JVM once;
        # a JVM binds it to the classloader that loaded it first. From a job's classloader, the
        # next job's fails (on Java 17 PemJa's fallback dies with "NoSuchFieldException:
        # loadedLibraryNames"). So PemJa comes from lib/ (flink-python, see prepare_flink) and is
        # resolved parent-first, also when a job ships flink-python itself (`flink run -py`).
        "classloader.parent-first-patterns.additional": "pemja.",
        "table.local-time-zone": "UTC",
        "env.log.dir": str(paths.LOGS),
        "env.pid.dir": str(paths.RUN),
        # The SQL client submits to this session cluster.
        "execution.target": "remote",
    }
    if f.prometheus_port is not None:
        ours["metrics.reporter.prom.factory.class"] = (
            "org.apache.flink.metrics.prometheus.PrometheusReporterFactory"
        )
        ours["metrics.reporter.prom.port"] = f"{f.prometheus_port}-{f.prometheus_port + 1}"
    flat = _flatten(base)
    flat.update(ours)
    return flat


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def prepare_flink(s: PlatformSettings) -> dict[str, str]:
    """Lay out conf/ and lib/ for the cluster, the CLI and the SQL client; return their env."""
    home = paths.pyflink_home()
    FLINK_CONF.mkdir(parents=True, exist_ok=True)
    for f in (home / "conf").iterdir():
        if f.name != "config.yaml" and f.is_file():
            shutil.copy(f, FLINK_CONF / f.name)
    (FLINK_CONF / "config.yaml").write_text(
        "# Generated by `python -m jobs up` from conf/platform.yaml; edit that instead.\n"
        + yaml.safe_dump(flink_config(s), sort_keys=True)
    )
    extra = sorted(paths.FLINK_JARS.glob("*.jar"))
    if not extra:
        raise StackError(f"Flink connector jars missing in {paths.FLINK_JARS}: run `make jars`")
    if FLINK_LIB.exists():
        shutil.rmtree(FLINK_LIB)
    FLINK_LIB.mkdir(parents=True)
    # flink-python (in the wheel's opt/) on the cluster's classpath: see flink_config, PemJa.
    python_jars = sorted((home / "opt").glob("flink-python-*.jar"))
    for jar in [*sorted((home / "lib").glob("*.jar")), *python_jars, *extra]:
        (FLINK_LIB / jar.name).symlink_to(jar)
    for script in (home / "bin").iterdir():
        if script.suffix in ("", ".sh") and script.is_file():
            mode = script.stat().st_mode
            script.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    CHECKPOINTS.mkdir(parents=True, exist_ok=True)
    (paths.FLINK_STATE / "savepoints").mkdir(parents=True, exist_ok=True)
    paths.LOGS.mkdir(parents=True, exist_ok=True)
    return flink_env()


def flink_env() -> dict[str, str]:
    env = dict(os.environ)
    env["FLINK_HOME"] = str(paths.pyflink_home())
    env["FLINK_CONF_DIR"] = str(FLINK_CONF)
    env["FLINK_LIB_DIR"] = str(FLINK_LIB)
    env["FLINK_LOG_DIR"] = str(paths.LOGS)
    env["PYFLINK_CLIENT_EXECUTABLE"] = paths.python_executable()
    # The venv's bin first, so `python` in Flink's scripts is ours.
    env["PATH"] = f"{Path(paths.python_executable()).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def flink_bin(script: str) -> str:
    return str(paths.pyflink_home() / "bin" / script)


def rest_get(s: PlatformSettings, path: str, timeout_s: float = 5.0) -> Any:
    url = f"{s.flink.rest_url}{path}"
    with urllib.request.urlopen(url, timeout=timeout_s) as r:  # noqa: S310 (loopback URL)
        return json.loads(r.read())


def rest_post(s: PlatformSettings, path: str, body: dict[str, Any], timeout_s: float = 10.0) -> Any:
    req = urllib.request.Request(  # noqa: S310 (loopback URL)
        f"{s.flink.rest_url}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=timeout_s) as r:  # noqa: S310 (loopback URL)
        return json.loads(r.read())


def rest_patch(s: PlatformSettings, path: str, timeout_s: float = 10.0) -> None:
    req = urllib.request.Request(f"{s.flink.rest_url}{path}", method="PATCH")  # noqa: S310
    with urllib.request.urlopen(req, timeout=timeout_s):  # noqa: S310 (loopback URL)
        pass


def flink_healthy(s: PlatformSettings) -> bool:
    try:
        ov = rest_get(s, "/overview", 2.0)
    except (OSError, urllib.error.URLError, ValueError):
        return False
    return int(ov.get("taskmanagers", 0)) >= 1 and int(ov.get("slots-total", 0)) >= 1


def taskmanager_ids(s: PlatformSettings) -> set[str]:
    """Ids of the TaskManagers the JobManager lists (empty if it does not answer)."""
    try:
        return {str(t["id"]) for t in rest_get(s, "/taskmanagers", 2.0).get("taskmanagers", [])}
    except (OSError, urllib.error.URLError, ValueError):
        return set()


def flink_up(s: PlatformSettings) -> str:
    jm, tm = owned("flink-jobmanager"), owned("flink-taskmanager")
    if jm and tm and flink_healthy(s):
        return f"flink: already running, UI at {s.flink.rest_url}"
    if jm or tm:
        raise StackError("flink: partly running; run `make down` first")
    prepare_flink(s)
    jobmanager_start(s)
    taskmanager_start(s)
    return f"flink: up, UI at {s.flink.rest_url} (logs in {paths.LOGS})"


def jobmanager_start(s: PlatformSettings) -> str:
    """Start the JobManager (conf/ and lib/ laid out by prepare_flink) and wait for its REST API.

    Standalone, without HA: a JobManager started again knows no jobs (`jobs resume` them)."""
    require_ports(
        {s.flink.rest_port: "Flink REST/UI", s.flink.rpc_port: "Flink JobManager RPC"},
        "conf/platform.yaml (flink.rest_port / flink.rpc_port)",
    )
    log = LOG_OF["flink-jobmanager"]
    spawn(
        "flink-jobmanager",
        [flink_bin("jobmanager.sh"), "start-foreground"],
        flink_env(),
        log,
        paths.STACK,
    )
    wait_for(lambda: port_open(s.flink.rest_port), "flink jobmanager", 90, log, "flink-jobmanager")
    return f"flink-jobmanager: up, UI at {s.flink.rest_url}"


def taskmanager_start(s: PlatformSettings) -> str:
    """Start a TaskManager and wait until the JobManager lists it with its slots.

    A TaskManager that died stays listed until the JobManager notices (missed heartbeats), so
    healthy here means a TaskManager id that was not listed before this one started."""
    before = taskmanager_ids(s)
    log = LOG_OF["flink-taskmanager"]
    spawn(
        "flink-taskmanager",
        [flink_bin("taskmanager.sh"), "start-foreground"],
        flink_env(),
        log,
        paths.STACK,
    )
    wait_for(
        lambda: bool(taskmanager_ids(s) - before) and flink_healthy(s),
        "flink taskmanager",
        90,
        log,
        "flink-taskmanager",
    )
    return f"flink-taskmanager: up, registered with the JobManager at {s.flink.rest_url}"


# ---------------------------------------------------------------------------------------------
# The Delta loader


def loader_ready_file() -> Path:
    return paths.RUN / "loader.ready"


def loader_up(conf_dir: Path | None = None) -> str:
    if owned("loader"):
        return "loader: already running"
    return loader_start(conf_dir)


def loader_start(conf_dir: Path | None = None) -> str:
    """Start the Delta loader (with the config folder `up` was given) and wait until it has
    subscribed."""
    loader_ready_file().unlink(missing_ok=True)
    conf = ["--conf", str(conf_dir.resolve())] if conf_dir else []
    argv = [paths.python_executable(), "-m", "jobs", *conf, "loader", "--managed"]
    log = LOG_OF["loader"]
    spawn("loader", argv, dict(os.environ), log, paths.REPO)
    wait_for(loader_ready_file().exists, "loader", 60, log, "loader")
    return f"loader: up, landing topics in Delta (logs in {log})"


# ---------------------------------------------------------------------------------------------
# The whole stack

COMPONENTS = ("kafka", "flink-jobmanager", "flink-taskmanager", "loader")
SUPERVISOR = "supervisor"
# Where a component's last lines are read from when it dies.
LOG_OF = {
    "kafka": paths.LOGS / "kafka-server.log",
    "flink-jobmanager": paths.LOGS / "flink-jobmanager.out",
    "flink-taskmanager": paths.LOGS / "flink-taskmanager.out",
    "loader": paths.LOGS / "loader.log",
    SUPERVISOR: paths.LOGS / "supervisor.log",
}


def components(*, flink: bool = True, loader: bool = True) -> list[str]:
    return [
        n for n in COMPONENTS if (flink or not n.startswith("flink-")) and (loader or n != "loader")
    ]


def up(
    s: PlatformSettings, *, flink: bool = True, loader: bool = True, conf_dir: Path | None = None
) -> list[str]:
    """Start the stack under its supervisor and wait until every part is healthy."""
    from streamlake.stack import supervisor

    return supervisor.launch(s, components(flink=flink, loader=loader), conf_dir)


def start_all(s: PlatformSettings, names: list[str], conf_dir: Path | None) -> Iterator[str]:
    """The first start, in order (the supervisor runs this): what is already running is kept."""
    if "kafka" in names:
        yield kafka_up(s)
    if "flink-jobmanager" in names:
        yield flink_up(s)
    if "loader" in names:
        yield loader_up(conf_dir)


def start_again(name: str, s: PlatformSettings, conf_dir: Path | None) -> str:
    """Start one component that died (the supervisor runs this)."""
    if name == "kafka":
        return kafka_start(s)
    if name == "flink-jobmanager":
        return jobmanager_start(s)
    if name == "flink-taskmanager":
        return taskmanager_start(s)
    if name == "loader":
        return loader_start(conf_dir)
    raise ValueError(f"unknown component {name}")


def down() -> list[str]:
    # The supervisor first, so that nothing is started again while the rest stops.
    msgs = [f"{SUPERVISOR}: stopped" if stop(SUPERVISOR) else f"{SUPERVISOR}: not running"]
    for name in ("loader", "flink-taskmanager", "flink-jobmanager", "kafka"):
        msgs.append(f"{name}: stopped" if stop(name) else f"{name}: not running")
    left = leftovers()
    if left:
        raise StackError(
            "processes started from this stack are still running (pid: command): "
            + "; ".join(f"{pid}: {cmd[:120]}" for pid, cmd in left)
        )
    return msgs


def leftovers() -> list[tuple[int, str]]:
    """Live processes whose command line names this checkout's .stack folder."""
    marker = str(paths.STACK)
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmd and not _is_zombie(int(d.name)):
            found.append((int(d.name), cmd.strip()))
    return found


def root_cause(exceptions: dict[str, Any]) -> str:
    """The root cause of a job's latest failure, from Flink REST /jobs/<id>/exceptions."""
    entries = exceptions.get("exceptionHistory", {}).get("entries", [])
    if not entries:
        return "no exception recorded"
    latest = entries[0]
    trace = str(latest.get("stacktrace") or latest.get("exceptionName") or "")
    causes = [ln for ln in trace.splitlines() if ln.startswith("Caused by: ")]
    cause = causes[-1].removeprefix("Caused by: ") if causes else trace.partition("\n")[0]
    tasks = [c.get("taskName") for c in [latest, *latest.get("concurrentExceptions", [])]]
    task = next((t for t in tasks if t), None)
    return cause[:500] + (f" (in {task})" if task else "")


def job_lines(
    overview: dict[str, Any], exceptions_of: Callable[[str], dict[str, Any]]
) -> list[str]:
    """One line per job of /jobs/overview; a FAILED job also gets its root cause."""
    lines = []
    for j in overview.get("jobs", []):
        lines.append(f"  job {j['jid']} {j['state']:10} {j['name']}")
        if j["state"] == "FAILED":
            lines.append(f"      root cause: {root_cause(exceptions_of(j['jid']))}")
    return lines


def failed_jobs(s: PlatformSettings) -> list[str]:
    """Ids of the cluster's jobs that ended FAILED (empty if the cluster does not answer)."""
    try:
        jobs = rest_get(s, "/jobs/overview").get("jobs", [])
    except (OSError, urllib.error.URLError, ValueError):
        return []
    return [j["jid"] for j in jobs if j["state"] == "FAILED"]


def status(s: PlatformSettings) -> list[str]:
    from streamlake.stack import supervisor

    lines = supervisor.process_lines()
    if owned("kafka"):
        ok = kafka.broker_ready(s.kafka.bootstrap)
        lines.append(
            f"kafka broker       {s.kafka.bootstrap} {'healthy' if ok else 'NOT answering'}"
        )
    if owned("flink-jobmanager"):
        try:
            ov = rest_get(s, "/overview")
            lines.append(
                f"flink cluster      {s.flink.rest_url}  taskmanagers={ov['taskmanagers']} "
                f"slots={ov['slots-available']}/{ov['slots-total']} jobs running={ov['jobs-running']} "
                f"finished={ov['jobs-finished']} failed={ov['jobs-failed']}"
            )
            jobs = rest_get(s, "/jobs/overview")
            lines += job_lines(jobs, lambda jid: rest_get(s, f"/jobs/{jid}/exceptions"))
        except (OSError, urllib.error.URLError, ValueError) as exc:
            lines.append(f"flink cluster      {s.flink.rest_url} NOT answering ({exc})")
    if owned("loader") and owned("kafka"):
        from streamlake.lake import tables as lake

        lines.append(
            "delta loader       lag per table (offsets past the Delta log, incl. transaction markers):"
        )
        _settings, sinks = lake.all_sinks()
        for sink in sinks:
            stats = lake.table_stats(sink)
            rows = (
                "no table yet"
                if stats is None
                else f"{stats['rows']} rows, version {stats['version']}"
            )
            lines.append(
                f"  {sink.table:26} behind {lake.offsets_behind(sink, s.kafka.bootstrap):7d}   {rows}"
            )
    return lines
