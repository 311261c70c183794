"""The jobs the platform knows, each a SQL file under sql/ plus typed config from conf/.

A job's SQL declares its tables with `WITH (${with_<table>})`; which topic each table reads or
writes, and with which delivery guarantee, is decided here from config (connectors at the edge).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from connectors.kafka import KafkaTable
from jobs import config, paths, sqlfile
from jobs.settings import PlatformSettings


@dataclass(frozen=True)
class TableSpec:
    topic: str
    role: Literal["source", "sink"]
    key_fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class SqlJob:
    name: str
    sql_file: Path
    tables: Mapping[str, TableSpec]
    params: Mapping[str, str]
    # Flink table config for this job (e.g. the source idle timeout).
    table_config: Mapping[str, str] = field(default_factory=dict)

    def topics(self) -> list[str]:
        return sorted({t.topic for t in self.tables.values()})

    def source_topics(self) -> list[str]:
        return sorted({t.topic for t in self.tables.values() if t.role == "source"})

    def sink_topics(self) -> list[str]:
        return sorted({t.topic for t in self.tables.values() if t.role == "sink"})

    def kafka_table(
        self, table: str, platform: PlatformSettings, *, bounded: bool, query: bool
    ) -> KafkaTable:
        spec = self.tables[table]
        ident = f"{platform.pipeline_id}.{self.name}"
        return KafkaTable(
            topic=spec.topic,
            role="query" if query else spec.role,
            bootstrap=platform.kafka.bootstrap,
            group_id=f"{platform.pipeline_id}.sql-client" if query else ident,
            transactional_id_prefix=ident,
            transaction_timeout_ms=platform.sinks.transaction_timeout_ms,
            bounded=bounded,
            key_fields=spec.key_fields,
        )

    def render(
        self, platform: PlatformSettings, *, bounded: bool = False, query: bool = False
    ) -> str:
        """The complete SQL of the job, as it will run (also what `jobs plan` prints)."""
        params = dict(self.params)
        for table in self.tables:
            kt = self.kafka_table(table, platform, bounded=bounded, query=query)
            params[f"with_{table}"] = kt.with_clause()
        return sqlfile.render(self.sql_file, params)

    def run(self, t_env: Any, platform: PlatformSettings, *, bounded: bool = False) -> Any:
        conf = t_env.get_config()
        for k, v in self.table_config.items():
            conf.set(k, v)
        return sqlfile.execute(t_env, self.render(platform, bounded=bounded))


class WatermarkConfig(config.Strict):
    max_out_of_orderness_s: int = Field(ge=0, le=3600)
    reason: str = Field(min_length=10)


class DemoEventCountsConfig(config.Strict):
    input_topic: str = Field(pattern=r"^bronze_[a-z0-9_]+$")
    output_topic: str = Field(pattern=r"^gold_[a-z0-9_]+$")
    window_size_s: int = Field(ge=1, le=86_400)
    watermark: WatermarkConfig
    idle_timeout_s: int = Field(ge=1, le=3600)


def demo_event_counts(conf_dir: Path) -> SqlJob:
    cfg = config.load(DemoEventCountsConfig, conf_dir / "jobs" / "demo_event_counts.yaml")
    return SqlJob(
        name="demo_event_counts",
        sql_file=paths.SQL_DIR / "demo" / "gold_demo_event_counts.sql",
        tables={
            "bronze_demo_events": TableSpec(cfg.input_topic, "source"),
            "gold_demo_event_counts": TableSpec(
                cfg.output_topic, "sink", key_fields=("event_key",)
            ),
        },
        params={
            "window_size_s": str(cfg.window_size_s),
            "max_out_of_orderness_s": str(cfg.watermark.max_out_of_orderness_s),
            "watermark_reason": " ".join(cfg.watermark.reason.split()),
        },
        table_config={"table.exec.source.idle-timeout": f"{cfg.idle_timeout_s} s"},
    )


def jobs(conf_dir: Path | None = None) -> dict[str, SqlJob]:
    conf_dir = conf_dir or paths.CONF_DIR
    found = [demo_event_counts(conf_dir)]
    return {j.name: j for j in found}


def get(name: str, conf_dir: Path | None = None) -> SqlJob:
    known = jobs(conf_dir)
    if name not in known:
        raise KeyError(f"unknown job {name!r}; known jobs: {', '.join(sorted(known))}")
    return known[name]
