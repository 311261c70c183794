"""One description per table (streamlake/config/tables.py): every derived form agrees with it.

The SQL DDL of every job as it runs, the Arrow schemas the loader lands in Delta, the DataStream
job's alert record, the Kafka keys and the README's table list are each compared with the
description; and adding a column to a description adds it to the DDL and the Arrow schema alike.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pytest
import yaml

from jobs import catalog, device_anomaly
from jobs.device_anomaly import operators
from streamlake.compile import sqlfile
from streamlake.config import gold, paths, registry, settings, tables
from streamlake.config import lake as lake_conf
from streamlake.lake import landing as lake
from streamlake.lake.loader import Loader
from streamlake.lake.sink import LOADER_COLUMNS, DeltaSink, read_delta

_CREATE = re.compile(r"CREATE\s+(?:TEMPORARY\s+)?TABLE\s+`?(\w+)`?\s*\(", re.IGNORECASE)


def _split_top(text: str, sep: str = ",") -> list[str]:
    out, depth, buf = [], 0, ""
    for ch in text:
        if ch in "(<":
            depth += 1
        elif ch in ")>":
            depth -= 1
        if ch == sep and depth == 0:
            out.append(buf)
            buf = ""
        else:
            buf += ch
    return [*out, buf]


def ddl_columns(stmt: str) -> dict[str, str]:
    """Physical and metadata columns of a CREATE TABLE as written: name -> SQL type."""
    code = "\n".join(ln.split("--")[0] for ln in stmt.splitlines())
    m = _CREATE.search(code)
    assert m is not None, stmt
    body = code[m.end() : code.index(") WITH (")]
    out = {}
    for part in _split_top(body):
        words = part.split()
        if not words or words[0].upper() in ("WATERMARK", "PRIMARY") or words[1].upper() == "AS":
            continue
        rest = part.strip()[len(words[0]) :].strip()
        rest = re.sub(r"\s+METADATA FROM '\w+' VIRTUAL$", "", rest)
        out[words[0].strip("`")] = rest
    return out


def created_tables(sql: str) -> dict[str, dict[str, str]]:
    out = {}
    for stmt in sqlfile.split(sql):
        if sqlfile.is_create_table(stmt):
            m = _CREATE.search(stmt)
            assert m is not None
            out[m.group(1)] = ddl_columns(stmt)
    return out


# An oracle of its own for the SQL -> Arrow mapping the lake uses (BYTES are base64 in JSON).
_ARROW = {
    "STRING": pa.string(),
    "BYTES": pa.string(),
    "INT": pa.int32(),
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "TIMESTAMP_LTZ(3)": pa.timestamp("ms", tz="UTC"),
    "TIMESTAMP(3)": pa.timestamp("ms"),
}


def arrow_of_sql(t: str) -> pa.DataType:
    t = t.strip()
    if t.startswith("ARRAY<"):
        return pa.list_(arrow_of_sql(t[len("ARRAY<") : -1]))
    if t.startswith("ROW<"):
        fields = []
        for f in _split_top(t[len("ROW<") : -1]):
            name, typ = f.strip().split(" ", 1)
            fields.append((name.strip("`"), arrow_of_sql(typ)))
        return pa.struct(fields)
    return _ARROW[t]


def _sql_jobs(conf: Path) -> dict[str, str]:
    platform = settings.load_platform(conf / "platform.yaml")
    return {
        name: job.render(platform, redact=True)
        for name, job in catalog.jobs(conf).items()
        if name in ("silver", "gold")
    }


def _description(reg: registry.Registry, name: str) -> tables.Table:
    """The description a table of the Silver or Gold job is made from."""
    gc = gold.load_gold(reg.conf_dir, reg)
    fixed = {
        t.name: t
        for t in (tables.BRONZE_SOURCE, tables.DLQ, tables.AUDIT_SILVER_COUNTS, tables.ALERTS)
    }
    for et in reg.event_types.values():
        fixed[tables.silver(et).name] = tables.silver(et)
        fixed[tables.late(et).name] = tables.late(et)
    for agg in gc.aggregates.values():
        fixed[agg.table] = tables.gold(reg, agg)
    return fixed[name]


def check_config(conf: Path) -> None:
    """Every derived form of every table of this config agrees with the description."""
    reg = registry.load_registry(conf)
    ddl: dict[str, dict[str, str]] = {}
    # The jobs as they run, and as the SQL client declares their tables (query mode).
    platform = settings.load_platform(conf / "platform.yaml")
    queried = [
        job.render(platform, query=True)
        for name, job in catalog.jobs(conf).items()
        if name in ("silver", "gold")
    ]
    for sql in [*_sql_jobs(conf).values(), *queried]:
        for name, cols in created_tables(sql).items():
            # A table two jobs declare (silver_<type>: written by one, read by the other) is
            # declared the same by both.
            assert ddl.setdefault(name, cols) == cols, name
    for name, cols in ddl.items():
        d = _description(reg, name)
        assert list(cols) == list(d.names), name
        assert cols == {c.name: tables.sql_type(c.type) for c in d.columns}, name

    # Arrow/Delta: every table the loader reads as JSON, column for column the DDL's types.
    sinks = {s.table: s for s in lake.sinks(reg, lake_conf.load_lake(conf))}
    for name, s in sinks.items():
        if s.value_schema is None:
            assert name == "bronze_events"
            continue
        want = pa.schema([(n, arrow_of_sql(t)) for n, t in ddl[name].items()])
        assert s.value_schema == want, name
        d = _description(reg, name)
        assert s.partition_by == d.partition_by and s.merge_keys == d.primary_key, name

    # Kafka keys of the sinks: the description's.
    jobs = catalog.jobs(conf)
    for job in (jobs["silver"], jobs["gold"]):
        for name, spec in job.tables.items():
            if spec.role == "sink" and name in ddl and not spec.upsert:
                assert spec.key_fields == _description(reg, name).kafka_key, name


def test_every_derived_schema_agrees_with_the_description() -> None:
    check_config(paths.CONF_DIR)


def test_the_datastream_alert_record_is_the_alert_table() -> None:
    ddl = created_tables(_sql_jobs(paths.CONF_DIR)["gold"])["alert_events"]
    assert set(device_anomaly.ALERT_FIELDS) == set(ddl)
    assert device_anomaly.KEY_FIELDS == device_anomaly.ALERT_FIELDS[:3]
    assert catalog.gold(paths.CONF_DIR).tables["alert_events"].key_fields == (
        device_anomaly.KEY_FIELDS
    )
    t = operators._types()
    names = list(t.alert.get_field_names())
    assert names == list(device_anomaly.ALERT_FIELDS)
    # What the DataStream job writes per column, against the SQL type of that column: timestamps
    # are written as ISO text (Flink's json format reads them back as TIMESTAMP_LTZ(3)).
    written = {"STRING": "String", "TIMESTAMP_LTZ(3)": "String"}
    for name, typ in zip(names, t.alert.get_field_types(), strict=True):
        if name == "measures":
            assert ddl[name] == "ARRAY<ROW<`name` STRING, `value` DOUBLE>>"
            assert str(typ) == "ObjectArrayTypeInfo<RowTypeInfo(name: String, value: Double)>"
        else:
            assert str(typ) == written[ddl[name]], name
    # The loader reads the DataStream job's alerts with the one alert schema.
    assert lake.ALERT_SCHEMA == pa.schema([(n, arrow_of_sql(s)) for n, s in ddl.items()])


def _as_delta(t: pa.DataType) -> pa.DataType:
    """A type as Delta keeps it: timestamps in microseconds, strings read back as views."""
    if pa.types.is_timestamp(t):
        return pa.timestamp("us", tz=t.tz)
    if t in (pa.string_view(), pa.large_string()):
        return pa.string()
    return t


def test_the_loader_writes_the_described_bronze_and_audit_tables(tmp_path: Path) -> None:
    # The loader builds these two itself (streamlake/lake/loader.py): check what it writes.
    assert pa.schema(LOADER_COLUMNS) == pa.schema(
        [(c.name, tables.arrow_type(c.type)) for c in tables.LOADER_COLUMNS]
    )

    class Msg:
        def topic(self) -> str:
            return "bronze_acme_events"

        def partition(self) -> int:
            return 0

        def offset(self) -> int:
            return 7

        def timestamp(self) -> tuple[int, int]:
            return (1, 1_767_225_600_000)

        def value(self) -> bytes:
            return b"{}"

        def key(self) -> bytes:
            return b"k"

    d = tables.BRONZE_LAKE
    sink = DeltaSink(
        d.name,
        ("bronze_acme_events",),
        str(tmp_path / d.name),
        None,
        d.partition_by,
        tenant_of_topic={"bronze_acme_events": "acme"},
    )
    written = sink.commit([Msg()])
    assert written is not None
    loaded = [*d.names, *(c.name for c in tables.LOADER_COLUMNS)]
    assert set(read_delta(sink.uri).column_names) == set(loaded)
    for c in d.columns:
        assert written.schema.field(c.name).type == tables.arrow_type(c.type, raw_bytes=True)

    audit = tmp_path / "audit_loader_batches"
    Loader._audit(cast(Any, None), str(audit), sink, 1, written, 1.0)
    got = read_delta(str(audit)).schema
    want = tables.arrow_schema(tables.AUDIT_LOADER_BATCHES)
    assert set(got.names) == set(want.names)
    for f in want:
        assert _as_delta(got.field(f.name).type) == _as_delta(f.type), f.name


def test_adding_a_column_is_one_edit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """One new column in a description: every job's DDL and the lake's schema have it, and all
    derived forms still agree. (The job that writes the table must still compute its value: the
    DLQ's and the alerts' INSERTs, the Silver projection; the DDL and schemas need no edit.)"""
    extra = tables.Column("note", tables.array(tables.row(("k", tables.STRING))), "A test column.")
    monkeypatch.setattr(tables, "ALERTS", tables.ALERTS.with_columns(extra))
    monkeypatch.setattr(tables, "SILVER_TAIL", (*tables.SILVER_TAIL, extra))
    monkeypatch.setattr(tables, "DLQ", tables.DLQ.with_columns(extra))
    reg = registry.load_registry(paths.CONF_DIR)
    sql = _sql_jobs(paths.CONF_DIR)
    silver_ddl = created_tables(sql["silver"])
    gold_ddl = created_tables(sql["gold"])
    want = "ARRAY<ROW<`k` STRING>>"
    assert gold_ddl["alert_events"]["note"] == want
    assert silver_ddl["dlq_events"]["note"] == want
    for et in reg.event_types:
        assert silver_ddl[f"silver_{et}"]["note"] == want
        assert list(gold_ddl[f"silver_{et}"]) == list(silver_ddl[f"silver_{et}"])
    for et in gold.load_gold(paths.CONF_DIR, reg).event_types():
        assert gold_ddl[f"late_{et}"]["note"] == want
    arrow = pa.list_(pa.struct([("k", pa.string())]))
    sinks = {s.table: s for s in lake.sinks(reg, lake_conf.load_lake(paths.CONF_DIR))}
    for name in ("alert_events", "dlq_events", "silver_orders", "late_orders"):
        schema = sinks[name].value_schema
        assert schema is not None and schema.field("note").type == arrow, name
    check_config(paths.CONF_DIR)


def test_a_new_event_type_field_reaches_every_table_from_yaml_alone(tmp_path: Path) -> None:
    """A Silver field is one YAML edit: Silver and late DDL in both jobs and the lake gain it."""
    import shutil

    conf = tmp_path / "conf"
    shutil.copytree(paths.CONF_DIR, conf)
    f = conf / "event_types" / "orders.yaml"
    doc = yaml.safe_load(f.read_text())
    last = max(doc["versions"])
    doc["versions"][last]["fields"]["gift_note"] = {"type": "string", "max_length": 32}
    f.write_text(yaml.safe_dump(doc))
    reg = registry.load_registry(conf)
    assert "gift_note" in tables.silver(reg.event_types["orders"]).names
    sql = _sql_jobs(conf)
    assert created_tables(sql["silver"])["silver_orders"]["gift_note"] == "STRING"
    assert created_tables(sql["gold"])["late_orders"]["gift_note"] == "STRING"
    sinks = {s.table: s for s in lake.sinks(reg, lake_conf.load_lake(conf))}
    schema = sinks["silver_orders"].value_schema
    assert schema is not None and schema.field("gift_note").type == pa.string()
    check_config(conf)


def test_the_descriptions_refuse_a_key_that_is_not_a_column() -> None:
    with pytest.raises(ValueError, match="key column 'nope'"):
        dataclasses.replace(tables.ALERTS, kafka_key=("nope",))
    with pytest.raises(ValueError, match="a column named twice"):
        tables.ALERTS.with_columns(tables.Column("rule_id", tables.STRING))


def test_registry_reserves_every_envelope_column() -> None:
    assert {c.name for c in tables.SILVER_ENVELOPE} <= registry.RESERVED
    assert "stream_watermark_at" in registry.RESERVED


def test_readme_table_list_is_the_descriptions() -> None:
    readme = (paths.REPO / "README.md").read_text(encoding="utf-8")
    block = tables.readme_block(registry.load_registry(paths.CONF_DIR))
    assert block in readme, (
        "README's table list is stale: python -m streamlake.config.tables --readme"
    )
