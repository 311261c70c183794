"""The lake: which topics land in which Delta tables, with which schema and partitions.

Derived from the onboarding registry, so a new event type gets its Silver table with no code.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa

from streamlake.config import gold, paths, registry, tables
from streamlake.config.lake import LakeSettings, load_lake
from streamlake.config.registry import Registry
from streamlake.lake.sink import DeltaSink, lake_uri, read_delta


# The schemas the loader reads each topic's JSON with: derived from the table descriptions.
def silver_schema(et: registry.EventType) -> pa.Schema:
    return tables.arrow_schema(tables.silver(et))


def late_schema(et: registry.EventType) -> pa.Schema:
    return tables.arrow_schema(tables.late(et))


def gold_schema(gc: gold.GoldConfig, agg: gold.GoldAggregate) -> pa.Schema:
    return tables.arrow_schema(tables.gold(gc.registry, agg))


DLQ_SCHEMA = tables.arrow_schema(tables.DLQ)
AUDIT_SCHEMA = tables.arrow_schema(tables.AUDIT_SILVER_COUNTS)
ALERT_SCHEMA = tables.arrow_schema(tables.ALERTS)


def sinks(
    reg: Registry, lake: LakeSettings, storage_options: dict[str, str] | None = None
) -> list[DeltaSink]:
    root = lake.root()

    def sink(
        table: tables.Table,
        topics: tuple[str, ...],
        tenant_of_topic: dict[str, str] | None = None,
        audit_kind: str = "output",
    ) -> DeltaSink:
        return DeltaSink(
            table.name,
            topics,
            lake_uri(root, table.name),
            None if table.raw else tables.arrow_schema(table),
            table.partition_by,
            tenant_of_topic=tenant_of_topic or {},
            storage_options=storage_options or None,
            # Upserted tables (audit counts, Gold): the last record per key is the row.
            merge_keys=table.primary_key,
            audit_kind=audit_kind,
        )

    out = [
        sink(
            tables.BRONZE_LAKE,
            tuple(reg.bronze_topics()),
            tenant_of_topic=reg.topic_owner(),
        ),
        sink(tables.DLQ, (reg.silver.dlq_topic,), audit_kind="dlq"),
        sink(tables.AUDIT_SILVER_COUNTS, (reg.silver.audit_topic,)),
    ]
    for _, et in sorted(reg.event_types.items()):
        out.append(sink(tables.silver(et), (et.topic,)))
    gc = gold.load_gold(reg.conf_dir, reg)
    for name in gc.event_types():
        late = tables.late(reg.event_types[name])
        out.append(sink(late, (gc.runner.late_topic(name),), audit_kind="late"))
    for agg in gc.aggregates.values():
        # Gold by tenant and window date; a late row's revision replaces the window's row.
        out.append(sink(tables.gold(reg, agg), (agg.kafka_topic,)))
    if gc.rules:
        out.append(sink(tables.ALERTS, (gc.runner.alert_topic,)))
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
