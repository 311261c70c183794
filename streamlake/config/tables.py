"""Every table of the pipeline, described once.

A table is a list of columns, each with a logical type from one small vocabulary, a nullability,
a comment and where its value comes from, plus its keys and its Delta partitioning. Everything
else is derived from these descriptions:

- the column lists of the SQL DDL (`sql_columns`, rendered into the `sql/**/*.sql` templates; the
  SQL client declares the jobs' own CREATE TABLE statements, so it follows);
- the Arrow schemas the loader lands in Delta (`arrow_schema`, used by streamlake/lake/landing.py);
- the DataStream job's alert record (jobs/device_anomaly/operators.py) and the Kafka key of each sink
  (jobs/catalog.py);
- the README's table list (`markdown`; `python -m streamlake.config.tables --readme` rewrites it).

Adding a column to a table is one edit here (the value it holds is still computed by the job
that writes the table). The vocabulary maps once to Flink SQL types and once to Arrow types.
Tables whose columns come from config (Silver, late, Gold) are functions of that config.
"""

from __future__ import annotations

import re
import sys
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

import pyarrow as pa

if TYPE_CHECKING:
    from streamlake.config.gold import GoldAggregate, Measure
    from streamlake.config.registry import EventType, FieldSpec, Registry

# ---- the type vocabulary ----------------------------------------------------------------------

Kind = Literal[
    "string",
    "int",
    "long",
    "double",
    "boolean",
    "bytes",
    # An instant (TIMESTAMP_LTZ(3)): event, ingest and detection times; UTC in Arrow.
    "timestamp",
    # A wall-clock time without a zone (TIMESTAMP(3)): window bounds of the session time zone (UTC).
    "local_timestamp",
    "date",
    "array",
    "map",
    "row",
]


@dataclass(frozen=True)
class Type:
    kind: Kind
    items: Type | None = None  # array items, map values
    key: Type | None = None  # map keys
    fields: tuple[tuple[str, Type], ...] = ()  # row


STRING = Type("string")
INT = Type("int")
LONG = Type("long")
DOUBLE = Type("double")
BOOLEAN = Type("boolean")
BYTES = Type("bytes")
TIMESTAMP = Type("timestamp")
LOCAL_TIMESTAMP = Type("local_timestamp")
DATE = Type("date")


def array(items: Type) -> Type:
    return Type("array", items=items)


def map_of(key: Type, value: Type) -> Type:
    return Type("map", items=value, key=key)


def row(*fields: tuple[str, Type]) -> Type:
    return Type("row", fields=tuple(fields))


_SQL = {
    "string": "STRING",
    "int": "INT",
    "long": "BIGINT",
    "double": "DOUBLE",
    "boolean": "BOOLEAN",
    "bytes": "BYTES",
    "timestamp": "TIMESTAMP_LTZ(3)",
    "local_timestamp": "TIMESTAMP(3)",
    "date": "DATE",
}


def ident(name: str) -> str:
    """A quoted SQL identifier (`value`, `key` and `measures` are reserved words)."""
    return f"`{name}`"


def sql_type(t: Type) -> str:
    """The Flink SQL type."""
    if t.kind == "array":
        assert t.items is not None
        return f"ARRAY<{sql_type(t.items)}>"
    if t.kind == "map":
        assert t.key is not None and t.items is not None
        return f"MAP<{sql_type(t.key)}, {sql_type(t.items)}>"
    if t.kind == "row":
        return "ROW<" + ", ".join(f"{ident(n)} {sql_type(f)}" for n, f in t.fields) + ">"
    return _SQL[t.kind]


_ARROW: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int": pa.int32(),
    "long": pa.int64(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "timestamp": pa.timestamp("ms", tz="UTC"),
    "local_timestamp": pa.timestamp("ms"),
    "date": pa.date32(),
}


def arrow_type(t: Type, *, raw_bytes: bool = False) -> pa.DataType:
    """The Arrow type the lake keeps. BYTES travel through Kafka JSON as base64 and are kept so,
    losslessly, as strings; a raw-format topic's bytes (Bronze) are binary."""
    if t.kind == "bytes":
        return pa.binary() if raw_bytes else pa.string()
    if t.kind == "array":
        assert t.items is not None
        return pa.list_(arrow_type(t.items, raw_bytes=raw_bytes))
    if t.kind == "map":
        assert t.key is not None and t.items is not None
        return pa.map_(arrow_type(t.key, raw_bytes=raw_bytes), arrow_type(t.items))
    if t.kind == "row":
        return pa.struct([(n, arrow_type(f, raw_bytes=raw_bytes)) for n, f in t.fields])
    return _ARROW[t.kind]


# The field types of conf/event_types/*.yaml.
_SCALAR = {
    "string": STRING,
    "enum": STRING,
    "int": INT,
    "long": LONG,
    "double": DOUBLE,
    "boolean": BOOLEAN,
    "timestamp": TIMESTAMP,
}


def field_type(spec: FieldSpec) -> Type:
    """The type of a Silver field declared in an event type's YAML (registry.FieldSpec)."""
    if spec.type == "object":
        return row(*((n, field_type(f)) for n, f in (spec.fields or {}).items() if f.pii != "drop"))
    if spec.type == "array":
        return array(_SCALAR[spec.items or "string"])
    if spec.pii == "hash":
        return STRING
    return _SCALAR[spec.type]


# ---- columns and tables -----------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    type: Type
    comment: str = ""
    # Where the value comes from: the job, function or connector that fills it.
    source: str = ""
    nullable: bool = True
    # A Kafka connector metadata key: the column is read from the record's metadata (VIRTUAL).
    metadata: str | None = None


Layer = Literal["bronze", "silver", "dlq", "late", "gold", "alert", "audit"]


@dataclass(frozen=True)
class Table:
    name: str
    layer: Layer
    purpose: str
    columns: tuple[Column, ...]
    # The Flink upsert key (PRIMARY KEY ... NOT ENFORCED); the loader MERGEs on it in Delta.
    primary_key: tuple[str, ...] = ()
    # Fields of the Kafka record key (json key format), for sinks keyed by more than a key.
    kafka_key: tuple[str, ...] = ()
    # Delta partition columns (the loader adds ingest_date and window_date).
    partition_by: tuple[str, ...] = ()
    # Whether the lake lands the topic's raw bytes (Bronze) rather than its JSON.
    raw: bool = False
    # Who writes the topic, and who writes the Delta table.
    written_by: str = ""

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: a column named twice in {names}")
        for k in (*self.primary_key, *self.kafka_key):
            if k not in names:
                raise ValueError(f"{self.name}: key column {k!r} is not a column")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")

    def with_columns(self, *columns: Column) -> Table:
        return replace(self, columns=(*self.columns, *columns))


def _comment_lines(text: str, indent: str) -> list[str]:
    return [f"{indent}-- {ln}" for ln in textwrap.wrap(text, 96 - len(indent) - 3)]


def sql_columns(table: Table | Sequence[Column], indent: str = "    ") -> str:
    """The column list of a CREATE TABLE: one column a line, each column's comment above it."""
    columns = table.columns if isinstance(table, Table) else table
    out = []
    for c in columns:
        line = f"{indent}{ident(c.name)} {sql_type(c.type)}"
        if not c.nullable:
            line += " NOT NULL"
        if c.metadata is not None:
            line += f" METADATA FROM '{c.metadata}' VIRTUAL"
        out.append("\n".join([*_comment_lines(c.comment, indent), line]) if c.comment else line)
    return ",\n".join(out)


def sql_names(table: Table | Sequence[Column]) -> str:
    columns = table.columns if isinstance(table, Table) else table
    return ", ".join(ident(c.name) for c in columns)


def arrow_schema(table: Table) -> pa.Schema:
    """The Arrow schema of the table's topic value, as the loader reads it into Delta."""
    return pa.schema(
        [
            pa.field(c.name, arrow_type(c.type, raw_bytes=table.raw), nullable=c.nullable)
            for c in table.columns
            if c.metadata is None
        ]
    )


# ---- Bronze -----------------------------------------------------------------------------------

_KAFKA = "Kafka record metadata"
# A Bronze record's bytes, as received: in the Silver job's source and in the Bronze Delta table.
_RAW_BYTES = (
    Column("raw_key", BYTES, source="Kafka record key"),
    Column("raw_value", BYTES, source="Kafka record value"),
)

# The tenant topics as the Silver job reads them: the record's bytes and its Kafka metadata.
BRONZE_SOURCE = Table(
    "bronze_events",
    "bronze",
    "every tenant topic, read once as received (the Silver job's source)",
    (
        *_RAW_BYTES,
        Column("source_topic", STRING, source=_KAFKA, metadata="topic"),
        Column("source_partition", INT, source=_KAFKA, metadata="partition"),
        Column("source_offset", LONG, source=_KAFKA, metadata="offset"),
        Column(
            "ingest_at",
            TIMESTAMP,
            "Broker time: Bronze topics are LogAppendTime.",
            _KAFKA,
            metadata="timestamp",
        ),
        Column("source_headers", map_of(STRING, BYTES), source=_KAFKA, metadata="headers"),
    ),
    raw=True,
    written_by="tenants' producers",
)

# Columns the loader adds to every Delta table: where the row is in Kafka, and the partition date
# (streamlake/lake/sink.py LOADER_COLUMNS; tests/unit/test_tables.py holds them equal).
LOADER_COLUMNS = (
    Column("kafka_topic", STRING, source="loader"),
    Column("kafka_partition", INT, source="loader"),
    Column("kafka_offset", LONG, source="loader"),
    Column("kafka_timestamp", TIMESTAMP, source="loader"),
    Column("ingest_date", DATE, source="loader"),
)

# The Bronze Delta table: every record's key and value bytes, by the tenant owning its topic (the
# same table as the Silver job reads it, less the Kafka metadata the loader adds its own way).
BRONZE_LAKE = replace(
    BRONZE_SOURCE,
    purpose="every tenant record's key and value bytes, by the tenant that owns the topic",
    columns=(
        Column("tenant_id", STRING, source="loader: the topic's owner (conf/tenants)"),
        *_RAW_BYTES,
    ),
    partition_by=("tenant_id", "ingest_date"),
    written_by="loader",
)

# ---- Silver -----------------------------------------------------------------------------------

_VALIDATE = "silver_validate (udfs/)"

SILVER_HEAD = (
    Column("tenant_id", STRING, source="the topic's owner (conf/tenants)"),
    Column("event_type", STRING, source=_VALIDATE),
    Column("schema_version", INT, source=_VALIDATE),
    Column("event_id", STRING, source=_VALIDATE),
    Column("event_at", TIMESTAMP, source=_VALIDATE),
)
# Where a record was read: its Bronze topic, partition, offset and broker time.
SOURCE_POSITION = (
    Column("source_topic", STRING, source=_KAFKA),
    Column("source_partition", INT, source=_KAFKA),
    Column("source_offset", LONG, source=_KAFKA),
    Column("ingest_at", TIMESTAMP, source=_KAFKA),
)
SILVER_TAIL = (
    *SOURCE_POSITION,
    Column(
        "partition_watermark_at",
        TIMESTAMP,
        "The watermark of the row's Bronze partition when the row was read: the row is late "
        "when event_at is at or behind it. Depends only on the partition's contents, not on "
        "read speed.",
        "Silver job",
    ),
    Column(
        "stream_watermark_at",
        TIMESTAMP,
        "The Silver job's watermark when the row was written (the smallest of every Bronze "
        "partition's): every on-time row after this one in its Silver partition has a later "
        "event time. Each Silver partition has one writer, and every partition gets rows "
        "('owned' partitioner, udfs/ OwnedPartitions), so readers can use it as their watermark.",
        "Silver job",
    ),
)
SILVER_ENVELOPE = (*SILVER_HEAD, *SILVER_TAIL)


def silver_field_columns(et: EventType) -> tuple[Column, ...]:
    """The event type's declared fields (the union of all versions; dropped PII left out)."""
    return tuple(
        Column(n, field_type(f), source=f"conf/event_types/{et.event_type}.yaml")
        for n, f in et.silver_fields().items()
        if f.pii != "drop"
    )


def silver(et: EventType) -> Table:
    return Table(
        f"silver_{et.event_type}",
        "silver",
        f"valid, deduplicated {et.event_type} events, typed and PII-handled",
        (*SILVER_HEAD, *silver_field_columns(et), *SILVER_TAIL),
        kafka_key=("tenant_id", "event_id"),
        partition_by=("tenant_id", "event_type", "ingest_date"),
        written_by="Silver job",
    )


# ---- DLQ --------------------------------------------------------------------------------------

DLQ = Table(
    "dlq_events",
    "dlq",
    "every rejected record: where it came from, why, and its bytes (bounded)",
    (
        Column("tenant_id", STRING, "The tenant that owns the topic, never the claimed one."),
        Column("event_type", STRING),
        Column("schema_version", INT),
        Column("reason_codes", array(STRING), source=_VALIDATE),
        Column("claimed_tenant", STRING, "The record's own tenant_id, cut to 256 characters."),
        *SOURCE_POSITION,
        Column(
            "source_key",
            BYTES,
            "The Kafka key's first dlq.max_key_bytes bytes (conf/silver.yaml), and its full "
            "length.",
        ),
        Column("source_key_bytes", LONG),
        Column(
            "source_headers",
            array(row(("key", STRING), ("value", BYTES))),
            "The record's Kafka headers as (key, value) pairs (a list, so any reader can load "
            "it); null and flagged when, as JSON, they are over dlq.max_headers_bytes.",
        ),
        Column("source_headers_dropped", BOOLEAN),
        Column(
            "raw_value",
            BYTES,
            "The value's first dlq.max_value_bytes bytes; the length and SHA-256 (hex) of all "
            "of it. The whole record is in bronze_events at (source_topic, source_partition, "
            "source_offset).",
        ),
        Column("raw_value_bytes", LONG),
        Column("raw_value_sha256", STRING),
        Column("raw_value_truncated", BOOLEAN),
        Column("detected_at", TIMESTAMP, source="Silver job (processing time)"),
    ),
    partition_by=("tenant_id", "ingest_date"),
    written_by="Silver job",
)

# ---- audit ------------------------------------------------------------------------------------

AUDIT_SILVER_COUNTS = Table(
    "audit_silver_counts",
    "audit",
    "per tenant, event type and minute of ingest time: records read, dlq, valid, silver",
    (
        Column("window_start", LOCAL_TIMESTAMP),
        Column("window_end", LOCAL_TIMESTAMP),
        Column("tenant_id", STRING),
        Column("event_type", STRING),
        Column("metric", STRING, "read, dlq, valid or silver."),
        Column("count_records", LONG),
    ),
    primary_key=("window_start", "window_end", "tenant_id", "event_type", "metric"),
    partition_by=("tenant_id",),
    written_by="Silver job",
)

# The loader's own audit, one row per table, tenant and commit (streamlake/lake/loader.py
# DeltaLoader._audit writes it; tests/unit/test_tables.py holds the two equal).
AUDIT_LOADER_BATCHES = Table(
    "audit_loader_batches",
    "audit",
    "one row per Delta commit of the loader, per table and tenant",
    (
        Column("committed_at", TIMESTAMP),
        Column("table_name", STRING),
        Column("tenant_id", STRING),
        Column("input_rows", LONG),
        Column("duplicates", LONG, "Records of the batch already in the table, skipped."),
        Column("output_rows", LONG),
        Column("dlq_rows", LONG),
        Column("late_rows", LONG),
        Column("first_offset", LONG),
        Column("last_offset", LONG),
        Column("min_ingest_at", TIMESTAMP),
        Column("max_ingest_at", TIMESTAMP),
        Column("min_event_at", TIMESTAMP),
        Column("max_event_at", TIMESTAMP),
        Column("commit_latency_ms", DOUBLE),
        Column("status", STRING),
    ),
    partition_by=("table_name",),
    written_by="loader",
)

# ---- late -------------------------------------------------------------------------------------

LATE_TAIL = (
    Column("watermark_at", TIMESTAMP, "The watermark the row met.", "Gold job"),
    Column("late_by_ms", LONG, "How far behind that watermark event_at was.", "Gold job"),
)


def late(et: EventType) -> Table:
    """A Silver row that met the watermark, with the watermark and how late it was."""
    rows = silver(et)
    return replace(
        rows,
        name=f"late_{et.event_type}",
        layer="late",
        purpose=f"{et.event_type} rows that arrived behind the watermark, with how late",
        columns=(*rows.columns, *LATE_TAIL),
        written_by="Gold job",
    )


# ---- Gold -------------------------------------------------------------------------------------

WINDOW_COLUMNS = (
    Column("window_start", LOCAL_TIMESTAMP, source="window TVF"),
    Column("window_end", LOCAL_TIMESTAMP, source="window TVF"),
)
LATE_ROWS = Column(
    "late_rows",
    LONG,
    "How many late rows were merged into the window (0 without allowed_lateness).",
    "Gold job",
)
# Names a measure may not take.
GOLD_RESERVED = ("tenant_id", *(c.name for c in WINDOW_COLUMNS), LATE_ROWS.name)


def measure_type(et: EventType, m: Measure) -> Type:
    if m.fn in ("count", "count_distinct"):
        return LONG
    if m.fn in ("avg", "percentile"):
        return DOUBLE
    assert m.field is not None
    spec = et.silver_fields()[m.field]
    if m.fn == "sum":
        return DOUBLE if spec.type == "double" else LONG
    return field_type(spec)  # min, max


def gold(reg: Registry, agg: GoldAggregate) -> Table:
    et = reg.event_types[agg.event_type]
    fields = et.silver_fields()
    keys = tuple(Column(k, field_type(fields[k]), source="group by") for k in agg.group_by)
    measures = tuple(
        Column(n, measure_type(et, m), source=f"{m.fn}({m.field or '*'})")
        for n, m in agg.measures.items()
    )
    return Table(
        agg.table,
        "gold",
        agg.description.strip() or f"{agg.window.describe()} windows of {agg.event_type}",
        (Column("tenant_id", STRING), *keys, *WINDOW_COLUMNS, *measures, LATE_ROWS),
        primary_key=("tenant_id", *agg.group_by, "window_start", "window_end"),
        partition_by=("tenant_id", "window_date"),
        written_by="Gold job",
    )


# ---- alerts -----------------------------------------------------------------------------------

ALERTS = Table(
    "alert_events",
    "alert",
    "one row per alert of a CEP rule (Gold job) or of the device_anomaly DataStream job",
    (
        Column("rule_id", STRING),
        Column("rule_kind", STRING),
        Column("tenant_id", STRING),
        Column("event_type", STRING),
        Column("alert_key", STRING, "The value of the rule's key field, as a string."),
        Column("first_event_at", TIMESTAMP),
        Column("last_event_at", TIMESTAMP),
        Column(
            "measures",
            array(row(("name", STRING), ("value", DOUBLE))),
            "What triggered the alert, as (name, value) pairs.",
        ),
        Column("detected_at", TIMESTAMP, source="processing time"),
    ),
    kafka_key=("tenant_id", "rule_id", "alert_key"),
    partition_by=("tenant_id", "event_type", "ingest_date"),
    written_by="Gold job, device_anomaly",
)


# ---- all of them, and the README's list -------------------------------------------------------


def lake_tables(reg: Registry) -> list[Table]:
    """Every Delta table the loader lands for this config, in the order streamlake/lake/landing.py lists them."""
    from streamlake.config import gold as gold_conf

    gc = gold_conf.load_gold(reg.conf_dir, reg)
    out = [BRONZE_LAKE, DLQ, AUDIT_SILVER_COUNTS]
    out += [silver(reg.event_types[n]) for n in sorted(reg.event_types)]
    out += [late(reg.event_types[n]) for n in gc.event_types()]
    out += [gold(reg, a) for a in gc.aggregates.values()]
    if gc.rules:
        out.append(ALERTS)
    out.append(AUDIT_LOADER_BATCHES)
    return out


def _type_doc(t: Type) -> str:
    return sql_type(t).replace("`", "")


def markdown(tables: Iterable[Table]) -> str:
    """The README's table list: each table, its purpose, partitioning and columns."""
    lines = [
        "| table | what | keys, partitions | columns |",
        "| --- | --- | --- | --- |",
    ]
    for t in tables:
        keys = []
        if t.primary_key:
            keys.append("upsert on " + ", ".join(t.primary_key))
        if t.partition_by:
            keys.append("by " + ", ".join(t.partition_by))
        cols = ", ".join(f"`{c.name}` {_type_doc(c.type)}" for c in t.columns)
        lines.append(f"| `{t.name}` | {t.purpose} | {'; '.join(keys)} | {cols} |")
    return "\n".join(lines)


_BEGIN = "<!-- tables: generated by `python -m streamlake.config.tables --readme` from streamlake/config/tables.py -->"
_END = "<!-- /tables -->"


def readme_block(reg: Registry) -> str:
    return f"{_BEGIN}\n{markdown(lake_tables(reg))}\n{_END}"


def with_readme_block(text: str, block: str) -> str:
    pattern = re.compile(re.escape(_BEGIN) + r".*?" + re.escape(_END), re.DOTALL)
    if not pattern.search(text):
        raise ValueError("README.md has no generated tables block")
    return pattern.sub(lambda _: block, text)


def main(argv: Sequence[str]) -> int:
    from streamlake.config import paths, registry

    block = readme_block(registry.load_registry(paths.CONF_DIR))
    if list(argv) == ["--readme"]:
        readme = paths.REPO / "README.md"
        readme.write_text(with_readme_block(readme.read_text(encoding="utf-8"), block))
        return 0
    print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
