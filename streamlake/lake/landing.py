"""The lake: which topics land in which Delta tables, with which schema and partitions.

Derived from the onboarding registry, so a new event type gets its Silver table with no code.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
from pydantic import Field

from streamlake.compile import gold
from streamlake.config import loader as config
from streamlake.config import paths, registry
from streamlake.config.registry import Duration, FieldSpec, Registry
from streamlake.lake.sink import DeltaSink, lake_uri, read_delta

_SECRET_KEY = ("key", "secret", "token", "password", "sas", "connection_string")


class LakeSettings(config.Strict):
    lake_root: str = "lake"
    # object_store options for a remote lake (abfss://...). Anything secret is an ${env:NAME}
    # reference, resolved at start; plain values are for non-secrets such as
    # azure_storage_use_emulator.
    storage_options: dict[str, str] = Field(default_factory=dict)
    consumer_group: str = "streamlake.loader"
    instance_id: str = "loader-0"
    flush_rows: int = Field(50_000, ge=1, le=1_000_000)
    flush_ms: int = Field(1000, ge=10, le=600_000)
    maintenance_every: Duration = "10min"
    vacuum_retention: Duration = "7d"

    def resolved_storage_options(self, file: Path) -> dict[str, str]:
        out = {}
        for k, v in self.storage_options.items():
            if v.startswith("${env:"):
                out[k] = config.resolve_secret(v, file, f"storage_options.{k}")
            elif any(word in k.lower() for word in _SECRET_KEY):
                raise config.ConfigError(
                    file,
                    f"storage_options.{k}",
                    "a reference like ${env:NAME}; secrets are never values in YAML",
                )
            else:
                out[k] = v
        return out

    def root(self) -> str:
        if "://" in self.lake_root:
            return self.lake_root
        return str((paths.REPO / self.lake_root).resolve())


def load_lake(conf_dir: Path | None = None) -> LakeSettings:
    return config.load(LakeSettings, (conf_dir or paths.CONF_DIR) / "lake.yaml")


TS = pa.timestamp("ms", tz="UTC")
_SCALAR = {
    "string": pa.string(),
    "enum": pa.string(),
    "int": pa.int32(),
    "long": pa.int64(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "timestamp": TS,
}


def arrow_type(spec: FieldSpec) -> pa.DataType:
    if spec.type == "object":
        kids = [(n, arrow_type(f)) for n, f in (spec.fields or {}).items() if f.pii != "drop"]
        return pa.struct(kids)
    if spec.type == "array":
        return pa.list_(_SCALAR[spec.items or "string"])
    if spec.pii == "hash":
        return pa.string()
    return _SCALAR[spec.type]


def silver_schema(et: registry.EventType) -> pa.Schema:
    head = [
        ("tenant_id", pa.string()),
        ("event_type", pa.string()),
        ("schema_version", pa.int32()),
        ("event_id", pa.string()),
        ("event_at", TS),
    ]
    fields = [(n, arrow_type(f)) for n, f in et.silver_fields().items() if f.pii != "drop"]
    tail = [
        ("source_topic", pa.string()),
        ("source_partition", pa.int32()),
        ("source_offset", pa.int64()),
        ("ingest_at", TS),
        ("partition_watermark_at", TS),
        ("stream_watermark_at", TS),
    ]
    return pa.schema(head + fields + tail)


DLQ_SCHEMA = pa.schema(
    [
        ("tenant_id", pa.string()),
        ("event_type", pa.string()),
        ("schema_version", pa.int32()),
        ("reason_codes", pa.list_(pa.string())),
        ("claimed_tenant", pa.string()),
        ("source_topic", pa.string()),
        ("source_partition", pa.int32()),
        ("source_offset", pa.int64()),
        ("ingest_at", TS),
        # BYTES travel through Kafka JSON as base64; they are kept so, losslessly. The key and
        # value are their first bytes (silver.yaml dlq limits); the whole record is in
        # bronze_events at (source_topic, source_partition, source_offset).
        ("source_key", pa.string()),
        ("source_key_bytes", pa.int64()),
        ("source_headers", pa.list_(pa.struct([("key", pa.string()), ("value", pa.string())]))),
        ("source_headers_dropped", pa.bool_()),
        ("raw_value", pa.string()),
        ("raw_value_bytes", pa.int64()),
        ("raw_value_sha256", pa.string()),
        ("raw_value_truncated", pa.bool_()),
        ("detected_at", TS),
    ]
)

AUDIT_KEY = ("window_start", "window_end", "tenant_id", "event_type", "metric")
AUDIT_SCHEMA = pa.schema(
    [
        ("window_start", pa.timestamp("ms")),
        ("window_end", pa.timestamp("ms")),
        ("tenant_id", pa.string()),
        ("event_type", pa.string()),
        ("metric", pa.string()),
        ("count_records", pa.int64()),
    ]
)


_SQL_ARROW = {
    "STRING": pa.string(),
    "INT": pa.int32(),
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "TIMESTAMP_LTZ(3)": TS,
}


def late_schema(et: registry.EventType) -> pa.Schema:
    return (
        silver_schema(et)
        .append(pa.field("watermark_at", TS))
        .append(pa.field("late_by_ms", pa.int64()))
    )


def gold_schema(gc: gold.GoldConfig, agg: gold.GoldAggregate) -> pa.Schema:
    et = gc.registry.event_types[agg.event_type]
    fields = et.silver_fields()
    cols = [("tenant_id", pa.string())]
    cols += [(k, arrow_type(fields[k])) for k in agg.group_by]
    cols += [("window_start", pa.timestamp("ms")), ("window_end", pa.timestamp("ms"))]
    cols += [(n, _SQL_ARROW[gold.measure_type(et, m)]) for n, m in agg.measures.items()]
    cols.append(("late_rows", pa.int64()))
    return pa.schema(cols)


ALERT_SCHEMA = pa.schema(
    [
        ("rule_id", pa.string()),
        ("rule_kind", pa.string()),
        ("tenant_id", pa.string()),
        ("event_type", pa.string()),
        ("alert_key", pa.string()),
        ("first_event_at", TS),
        ("last_event_at", TS),
        ("measures", pa.list_(pa.struct([("name", pa.string()), ("value", pa.float64())]))),
        ("detected_at", TS),
    ]
)


def sinks(
    reg: Registry, lake: LakeSettings, storage_options: dict[str, str] | None = None
) -> list[DeltaSink]:
    root = lake.root()

    def sink(
        table: str,
        topics: tuple[str, ...],
        schema: pa.Schema | None,
        partition_by: tuple[str, ...],
        tenant_of_topic: dict[str, str] | None = None,
        merge_keys: tuple[str, ...] = (),
        audit_kind: str = "output",
    ) -> DeltaSink:
        return DeltaSink(
            table,
            topics,
            lake_uri(root, table),
            schema,
            partition_by,
            tenant_of_topic=tenant_of_topic or {},
            storage_options=storage_options or None,
            merge_keys=merge_keys,
            audit_kind=audit_kind,
        )

    out = [
        sink(
            "bronze_events",
            tuple(reg.bronze_topics()),
            None,
            ("tenant_id", "ingest_date"),
            tenant_of_topic=reg.topic_owner(),
        ),
        sink(
            "dlq_events",
            (reg.silver.dlq_topic,),
            DLQ_SCHEMA,
            ("tenant_id", "ingest_date"),
            audit_kind="dlq",
        ),
        # Counts are upserted as they grow: the last record per key is the count.
        sink(
            "audit_silver_counts",
            (reg.silver.audit_topic,),
            AUDIT_SCHEMA,
            ("tenant_id",),
            merge_keys=AUDIT_KEY,
        ),
    ]
    for name, et in sorted(reg.event_types.items()):
        out.append(
            sink(
                f"silver_{name}",
                (et.topic,),
                silver_schema(et),
                ("tenant_id", "event_type", "ingest_date"),
            )
        )
    gc = gold.load_gold(reg.conf_dir, reg)
    for name in gc.event_types():
        out.append(
            sink(
                f"late_{name}",
                (gc.runner.late_topic(name),),
                late_schema(reg.event_types[name]),
                ("tenant_id", "event_type", "ingest_date"),
                audit_kind="late",
            )
        )
    for agg in gc.aggregates.values():
        # Gold by tenant and window date; a late row's revision replaces the window's row.
        out.append(
            sink(
                agg.table,
                (agg.kafka_topic,),
                gold_schema(gc, agg),
                ("tenant_id", "window_date"),
                merge_keys=("tenant_id", *agg.group_by, "window_start", "window_end"),
            )
        )
    if gc.rules:
        out.append(
            sink(
                "alert_events",
                (gc.runner.alert_topic,),
                ALERT_SCHEMA,
                ("tenant_id", "event_type", "ingest_date"),
            )
        )
    return out


def all_sinks(conf_dir: Path | None = None) -> tuple[LakeSettings, list[DeltaSink]]:
    conf_dir = conf_dir or paths.CONF_DIR
    lake = load_lake(conf_dir)
    options = lake.resolved_storage_options(conf_dir / "lake.yaml")
    out = sinks(registry.load_registry(conf_dir), lake, options)
    if lake.root().startswith("abfss://"):
        ensure_adls(lake.root(), options, [s.table for s in out])
    return lake, out


def ensure_adls(root: str, options: dict[str, str], tables: list[str]) -> None:
    """Create the ADLS Gen2 filesystem (and the table directories where the endpoint has them).

    Credentials come from the environment through storage_options, never from YAML.
    """
    from azure.core.exceptions import HttpResponseError, ResourceExistsError
    from azure.storage.filedatalake import DataLakeServiceClient

    rest = root.removeprefix("abfss://")
    filesystem, _, host_path = rest.partition("@")
    account_host, _, base = host_path.partition("/")
    account = options.get("azure_storage_account_name", account_host.split(".")[0])
    if options.get("azure_storage_use_emulator") == "true":
        # The same variable object_store's emulator mode reads (default: Azurite's port 10000).
        endpoint = (
            os.environ.get("AZURITE_BLOB_STORAGE_URL", "http://127.0.0.1:10000") + f"/{account}"
        )
        conn = (
            f"DefaultEndpointsProtocol=http;AccountName={account};"
            f"AccountKey={options['azure_storage_account_key']};BlobEndpoint={endpoint};"
        )
        svc = DataLakeServiceClient.from_connection_string(conn)
    else:
        svc = DataLakeServiceClient(
            f"https://{account_host}", credential=options.get("azure_storage_account_key")
        )
    fs = svc.get_file_system_client(filesystem)
    try:
        fs.create_file_system()
    except ResourceExistsError:
        pass
    for table in tables:
        try:
            fs.create_directory("/".join(p for p in (base, table) if p))
        except ResourceExistsError:
            pass
        except HttpResponseError:
            # The emulator serves the blob endpoint only; directories are implicit there.
            if options.get("azure_storage_use_emulator") != "true":
                raise


def table_stats(sink: DeltaSink) -> dict[str, int] | None:
    """Version, rows and files of a sink's table, or None if it does not exist yet."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        dt = DeltaTable(sink.uri, storage_options=dict(sink.storage_options or {}))
    except TableNotFoundError:
        return None
    adds = pa.table(dt.get_add_actions(flatten=True))
    rows = int(sum(v or 0 for v in adds.column("num_records").to_pylist())) if adds.num_rows else 0
    return {"version": dt.version(), "rows": rows, "files": adds.num_rows}


def offsets_behind(sink: DeltaSink, bootstrap: str) -> int:
    """Offsets in the sink's topics past what the Delta log records (transaction markers count)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "streamlake.lag", "log_level": 3})
    try:
        md = c.list_topics(timeout=10)
        keys = [(t, p) for t in sink.topics if t in md.topics for p in md.topics[t].partitions]
        recorded = sink.recorded_offsets(keys)
        behind = 0
        for topic, p in keys:
            low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            last = recorded[(topic, p)]
            behind += high - (last + 1 if last >= 0 else low)
        return behind
    finally:
        c.close()


def read_table(sink: DeltaSink, columns: list[str] | None = None) -> pa.Table:

    return read_delta(sink.uri, columns, sink.storage_options)
