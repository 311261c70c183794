"""One place that creates a PyFlink TableEnvironment with the platform's settings."""

from __future__ import annotations

from typing import Any

from streamlake.config import paths
from streamlake.config.settings import PlatformSettings


def connector_jars() -> list[str]:
    jars = sorted(paths.FLINK_JARS.glob("*.jar"))
    if not jars:
        raise RuntimeError(f"no jars in {paths.FLINK_JARS}: run `make jars` first")
    return [j.as_uri() for j in jars]


def job_jars() -> list[str]:
    """The project's own jars, shipped with every job (udfs/: the Silver job's silver_validate)."""
    if not paths.UDFS_JAR.exists():
        raise RuntimeError(f"no {paths.UDFS_JAR}: run `make jars` first")
    return [paths.UDFS_JAR.as_uri()]


def job_settings(platform: PlatformSettings, name: str, parallelism: int | None) -> dict[str, str]:
    """What every job, SQL or DataStream, takes from the platform: its name, its parallelism and
    exactly-once checkpoints."""
    return {
        "pipeline.name": name,
        "parallelism.default": str(parallelism or platform.flink.parallelism),
        "execution.checkpointing.interval": f"{platform.flink.checkpoint_interval_ms} ms",
        "execution.checkpointing.mode": "EXACTLY_ONCE",
    }


def run_locally(settings: dict[str, str]) -> None:
    """Settings for the in-process local executor: fail, don't retry forever (a local run is a
    test or a try-out, unless `settings` says otherwise), and the project's own Python."""
    settings.setdefault("restart-strategy.type", "fixed-delay")
    settings.setdefault("restart-strategy.fixed-delay.attempts", "1")
    settings.setdefault("restart-strategy.fixed-delay.delay", "1 s")
    settings["python.executable"] = paths.python_executable()


def table_env(
    platform: PlatformSettings,
    *,
    name: str,
    local: bool,
    parallelism: int | None = None,
    extra: dict[str, str] | None = None,
) -> Any:
    """A streaming TableEnvironment.

    local=True runs on the in-process local executor (tests, `jobs run`), with the connector jars
    added through pipeline.jars; local=False is for `flink run`, where the cluster has them in lib/.
    Either way the project's own jar goes with the job in pipeline.jars (uploaded with the job
    graph by `flink run`), so a running cluster needs no restart for a new function.
    """
    from pyflink.table import EnvironmentSettings, TableEnvironment

    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    conf = t_env.get_config()
    settings = {
        **job_settings(platform, name, parallelism),
        # Window bounds and TIMESTAMP values are rendered in UTC, whatever the machine's zone.
        "table.local-time-zone": "UTC",
        **(extra or {}),
    }
    if local:
        settings["pipeline.jars"] = ";".join(connector_jars() + job_jars())
        run_locally(settings)
    else:
        settings["pipeline.jars"] = ";".join(job_jars())
    for k, v in settings.items():
        conf.set(k, v)
    return t_env
