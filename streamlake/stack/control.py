"""The local stack as a whole: a real Kafka 4.x broker (KRaft, broker.py) and a Flink standalone
cluster (cluster.py) on loopback, and the Delta loader.

`up` starts them through the supervisor (supervisor.py), which is their parent and starts one
again when it dies; each start waits on a real health check: the broker answers a metadata
request, Flink's REST /overview lists a TaskManager, the loader has subscribed. `down` stops
exactly the processes `up` started (processes.py); `status` says what runs.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from connectors import kafka
from streamlake.config import paths
from streamlake.config.settings import PlatformSettings
from streamlake.stack.broker import kafka_start, kafka_up
from streamlake.stack.cluster import (
    flink_up,
    job_lines,
    jobmanager_start,
    rest_get,
    taskmanager_start,
)
from streamlake.stack.processes import (
    COMPONENTS,
    LOG_OF,
    SUPERVISOR,
    StackError,
    leftovers,
    owned,
    spawn,
    stop,
    wait_for,
)

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
        from streamlake.lake import landing as lake

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
