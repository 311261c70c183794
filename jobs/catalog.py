"""The jobs the platform knows, each a SQL file under sql/ plus typed config from conf/.

A job's SQL declares its tables with `WITH (${with_<table>})`; which topic each table reads or
writes, and with which delivery guarantee, is decided here from config (connectors at the edge).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from connectors.kafka import BRONZE_TOPIC_CONFIG, KafkaTable
from streamlake.compile import sqlfile
from streamlake.config import loader as config
from streamlake.config import paths
from streamlake.config import tables as described
from streamlake.config.settings import PlatformSettings


@dataclass(frozen=True)
class TableSpec:
    topics: tuple[str, ...]
    role: Literal["source", "sink"]
    key_fields: tuple[str, ...] = ()
    key_format: Literal["json", "raw"] = "json"
    value_format: Literal["json", "raw"] = "json"
    upsert: bool = False
    # A sink's Kafka partitioner: '' (by key), or 'owned' (each partition has one sink subtask as
    # its writer, and every partition gets rows: connectors/kafka.py PARTITIONERS).
    partitioner: Literal["", "owned"] = ""
    # Topic configs used when the platform creates the topic (e.g. LogAppendTime for Bronze).
    topic_config: Mapping[str, str] = field(default_factory=dict)


# Placeholder values of a job's SQL, computed from the connector WITH bodies (by table name)
# and whether secrets must be redacted (for `plan` and the SQL client).
ParamsFn = Callable[[Mapping[str, str], bool], dict[str, str]]


@dataclass(frozen=True)
class SqlJob:
    name: str
    sql_file: Path
    tables: Mapping[str, TableSpec]
    params: ParamsFn
    # Flink table config for this job (e.g. the source idle timeout, the state TTL).
    table_config: Mapping[str, str] = field(default_factory=dict)
    # Options every Kafka source table of the job gets (e.g. the watermark emit strategy).
    source_options: Mapping[str, str] = field(default_factory=dict)
    # Topic configs every topic of the job gets when the platform creates it (the record-size
    # limit from conf/platform.yaml), under each table's own.
    topic_defaults: Mapping[str, str] = field(default_factory=dict)
    # State TTL (ms) of each deduplicate operator, by the event type whose rows it reads: set in
    # the compiled plan (streamlake/compile/plan_ttl.py); other stateful operators keep table.exec.state.ttl.
    dedup_ttl_ms: Mapping[str, int] = field(default_factory=dict)

    def topics(self) -> list[str]:
        return sorted({t for spec in self.tables.values() for t in spec.topics})

    def source_topics(self) -> list[str]:
        return sorted({t for s in self.tables.values() if s.role == "source" for t in s.topics})

    def sink_topics(self) -> list[str]:
        return sorted({t for s in self.tables.values() if s.role == "sink" for t in s.topics})

    def topic_configs(self) -> dict[str, Mapping[str, str]]:
        return {
            t: {**self.topic_defaults, **spec.topic_config}
            for spec in self.tables.values()
            for t in spec.topics
        }

    def kafka_table(
        self, table: str, platform: PlatformSettings, *, bounded: bool, query: bool
    ) -> KafkaTable:
        spec = self.tables[table]
        ident = f"{platform.pipeline_id}.{self.name}"
        return KafkaTable(
            topic=";".join(spec.topics),
            role="query" if query else spec.role,
            bootstrap=platform.kafka.bootstrap,
            group_id=f"{platform.pipeline_id}.sql-client" if query else ident,
            # Unique per sink: sinks of one job sharing a prefix fence each other's transactions.
            transactional_id_prefix=f"{ident}.{table}",
            transaction_timeout_ms=platform.sinks.transaction_timeout_ms,
            delivery_guarantee=platform.sinks.delivery_guarantee,
            max_request_bytes=platform.kafka.max_message_bytes,
            bounded=bounded,
            key_fields=spec.key_fields,
            key_format=spec.key_format,
            value_format=spec.value_format,
            upsert=spec.upsert,
            partitioner=spec.partitioner,
            source_options=tuple(sorted(self.source_options.items())),
        )

    def render(
        self,
        platform: PlatformSettings,
        *,
        bounded: bool = False,
        query: bool = False,
        redact: bool = False,
    ) -> str:
        """The complete SQL of the job, as it will run (also what `jobs plan` prints)."""
        withs = {
            table: self.kafka_table(table, platform, bounded=bounded, query=query).with_clause()
            for table in self.tables
        }
        return sqlfile.render(self.sql_file, self.params(withs, redact or query))

    def compiled_plan(
        self, t_env: Any, platform: PlatformSettings, *, bounded: bool = False
    ) -> dict[str, Any]:
        """The job's compiled JSON plan, as `run` executes it when it sets per-operator TTLs."""
        from streamlake.compile import plan_ttl

        self._configure(t_env)
        stmt_set = sqlfile.statement_set(t_env, self.render(platform, bounded=bounded))
        return plan_ttl.compiled(stmt_set, self.dedup_ttl_ms)

    def run(self, t_env: Any, platform: PlatformSettings, *, bounded: bool = False) -> Any:
        if self.dedup_ttl_ms:
            from streamlake.compile import plan_ttl

            return plan_ttl.execute(t_env, self.compiled_plan(t_env, platform, bounded=bounded))
        self._configure(t_env)
        return sqlfile.execute(t_env, self.render(platform, bounded=bounded))

    def _configure(self, t_env: Any) -> None:
        conf = t_env.get_config()
        for k, v in self.table_config.items():
            conf.set(k, v)


def _with_params(static: Mapping[str, str]) -> ParamsFn:
    def params(withs: Mapping[str, str], _redact: bool) -> dict[str, str]:
        return {**static, **{f"with_{t}": w for t, w in withs.items()}}

    return params


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
            "bronze_demo_events": TableSpec((cfg.input_topic,), "source"),
            "gold_demo_event_counts": TableSpec(
                (cfg.output_topic,), "sink", key_fields=("event_key",)
            ),
        },
        params=_with_params(
            {
                "window_size_s": str(cfg.window_size_s),
                "max_out_of_orderness_s": str(cfg.watermark.max_out_of_orderness_s),
                "watermark_reason": " ".join(cfg.watermark.reason.split()),
            }
        ),
        table_config={"table.exec.source.idle-timeout": f"{cfg.idle_timeout_s} s"},
    )


def silver(conf_dir: Path) -> SqlJob:
    """Bronze -> Silver + DLQ + audit, compiled from the onboarding registry."""
    from streamlake.compile import limits
    from streamlake.compile import silver as compiler
    from streamlake.config import registry, settings

    reg = registry.load_registry(conf_dir)
    platform_file = conf_dir / "platform.yaml"
    limits.check(reg, settings.load_platform(platform_file), platform_file)
    tables: dict[str, TableSpec] = {
        "bronze_events": TableSpec(
            tuple(reg.bronze_topics()),
            "source",
            key_fields=("raw_key",),
            key_format="raw",
            value_format="raw",
            topic_config=BRONZE_TOPIC_CONFIG,
        ),
        "dlq_events": TableSpec((reg.silver.dlq_topic,), "sink"),
        "audit_silver_counts": TableSpec((reg.silver.audit_topic,), "sink", upsert=True),
    }
    for name, et in sorted(reg.event_types.items()):
        # One writer per Silver partition, so that the stream watermark each row carries is a
        # bound for every row after it in that partition (sql/gold/event_type.sql), and rows in
        # every partition, so that no reader waits for an empty one to be declared idle.
        tables[f"silver_{name}"] = TableSpec(
            (et.topic,), "sink", key_fields=described.silver(et).kafka_key, partitioner="owned"
        )
    secret_ref = reg.silver.pii_hash_key
    silver_file = conf_dir / "silver.yaml"

    def params(withs: Mapping[str, str], redact: bool) -> dict[str, str]:
        key = (
            f"<redacted {secret_ref}>"
            if redact
            else config.resolve_secret(secret_ref, silver_file, "pii_hash_key")
        )
        return compiler.silver_params(reg, with_clauses=withs, hash_key=key)

    return SqlJob(
        name="silver",
        sql_file=compiler.SILVER_SQL,
        tables=tables,
        params=params,
        # Each event type's dedup horizon on its own deduplicate operator; the job's TTL (the
        # audit counts') is the longest.
        dedup_ttl_ms=compiler.dedup_ttls_ms(reg),
        table_config={
            "table.exec.state.ttl": f"{compiler.dedup_ttl_ms(reg)} ms",
            "table.exec.source.idle-timeout": f"{registry.duration_ms(reg.silver.idle_timeout)} ms",
            # Never on here: with no event-time window downstream, Flink's mini-batch assigner
            # runs in processing-time mode and replaces the event-time watermarks with wall-clock
            # ones (measured: CURRENT_WATERMARK became the wall clock), and the watermark every
            # Silver row carries would be wrong.
            "table.exec.mini-batch.enabled": "false",
            **(
                {"state.backend.type": reg.silver.state_backend} if reg.silver.state_backend else {}
            ),
        },
        # Fair reading of a backlog: Kafka's consumer hands out one partition's fetched bytes
        # before the next partition's, so at 1 MiB (its default) a catching-up job reads thousands
        # of records of one Bronze partition while the others send nothing, long enough on a busy
        # machine for them to count as idle (processing time) and the stream watermark to skip
        # past them. 64 KiB is a few hundred records per partition in turn.
        source_options={"properties.max.partition.fetch.bytes": str(64 * 1024)},
    )


def gold(conf_dir: Path) -> SqlJob:
    """Silver -> Gold windows, late rows and CEP alerts, compiled from conf/gold*, conf/alerts."""
    from streamlake.compile import gold as gold_sql
    from streamlake.config import gold as gold_conf
    from streamlake.config import registry

    gc = gold_conf.load_gold(conf_dir)
    tables: dict[str, TableSpec] = {}
    for name in gc.event_types():
        et = gc.registry.event_types[name]
        tables[f"silver_{name}"] = TableSpec((et.topic,), "source")
        tables[f"late_{name}"] = TableSpec(
            (gc.runner.late_topic(name),), "sink", key_fields=described.late(et).kafka_key
        )
    for agg in gc.aggregates.values():
        tables[agg.table] = TableSpec((agg.kafka_topic,), "sink", upsert=True)
    if gc.rules:
        tables["alert_events"] = TableSpec(
            (gc.runner.alert_topic,), "sink", key_fields=described.ALERTS.kafka_key
        )

    def params(withs: Mapping[str, str], _redact: bool) -> dict[str, str]:
        return gold_sql.gold_params(gc, withs)

    return SqlJob(
        name="gold",
        sql_file=gold_sql.GOLD_SQL,
        tables=tables,
        params=params,
        table_config={
            "table.exec.source.idle-timeout": f"{registry.duration_ms(gc.runner.idle_timeout)} ms",
            "table.exec.state.ttl": f"{gold_sql.state_ttl_ms(gc)} ms",
            # Every operator gets a uid from the plan, so a savepoint of this SQL restores into
            # the same SQL at another parallelism.
            "table.exec.uid.generation": "ALWAYS",
            **({"state.backend.type": gc.runner.state_backend} if gc.runner.state_backend else {}),
        },
        source_options={"scan.watermark.emit.strategy": gc.runner.watermark_emit},
    )


def passthrough(conf_dir: Path) -> SqlJob:
    """The benchmark's baseline: Bronze copied to one topic, no logic (bench/, not the pipeline)."""
    from streamlake.config import registry

    reg = registry.load_registry(conf_dir)
    return SqlJob(
        name="passthrough",
        sql_file=paths.SQL_DIR / "bench" / "passthrough.sql",
        tables={
            "bronze_events": TableSpec(
                tuple(reg.bronze_topics()),
                "source",
                value_format="raw",
                topic_config=BRONZE_TOPIC_CONFIG,
            ),
            "bench_passthrough": TableSpec(("bench_passthrough",), "sink", value_format="raw"),
        },
        params=_with_params({}),
    )


# Python DataStream jobs (not SQL files): submitted the same way, `flink run -py` on
# streamlake/runtime/flink_entry.py, which dispatches on the name.
STREAM_JOBS = ("device_anomaly",)


def jobs(conf_dir: Path | None = None) -> dict[str, SqlJob]:
    from streamlake.config import settings

    conf_dir = conf_dir or paths.CONF_DIR
    topic_defaults = settings.load_platform(conf_dir / "platform.yaml").kafka.topic_config()
    found = [demo_event_counts(conf_dir), silver(conf_dir), gold(conf_dir), passthrough(conf_dir)]
    return {j.name: dataclasses.replace(j, topic_defaults=topic_defaults) for j in found}


def get(name: str, conf_dir: Path | None = None) -> SqlJob:
    known = jobs(conf_dir)
    if name not in known:
        raise KeyError(f"unknown job {name!r}; known jobs: {', '.join(sorted(known))}")
    return known[name]
