"""Compile the onboarding registry (YAML) into the Silver job's SQL.

The SQL's shape lives in sql/silver/*.sql; this module only computes the values of their
placeholders from the typed registry: the rules the JVM function silver_validate (udfs/) checks
each record against, as one JSON literal, the Silver columns and their PII handling, and the
Bronze partition clock. Per-event work runs in the JVM: one pass of silver_validate per record.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streamlake.compile import sqlfile
from streamlake.config import paths, registry, tables
from streamlake.config.registry import EventType, FieldSpec, Registry

SILVER_SQL = paths.SQL_DIR / "silver" / "silver.sql"
EVENT_TYPE_SQL = paths.SQL_DIR / "silver" / "event_type.sql"


def epoch_ms(expr: str) -> str:
    """Milliseconds since the epoch of a TIMESTAMP_LTZ (the session time zone is UTC)."""
    return f"(EXTRACT(EPOCH FROM {expr}) * 1000 + EXTRACT(MILLISECOND FROM {expr}))"


def q(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def interval(ms: int) -> str:
    """An INTERVAL literal for a duration (DAY TO SECOND, so any size fits its precision)."""
    days, rest = divmod(ms, 86_400_000)
    hours, rest = divmod(rest, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"INTERVAL '{days} {hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}' DAY TO SECOND"


@dataclass(frozen=True)
class Leaf:
    """One JSON value the job reads: a declared field, a nested field, or the id/time field."""

    path: tuple[str, ...]  # ('location', 'lat')
    spec: FieldSpec
    versions: Mapping[int, FieldSpec]  # the spec in each version that declares it
    parent: Leaf | None = None

    @property
    def dotted(self) -> str:
        return ".".join(self.path)

    @property
    def ident(self) -> str:
        return "__".join(self.path)

    @property
    def w(self) -> str:
        return f"w_{self.ident}"

    @property
    def v(self) -> str:
        return f"v_{self.ident}"

    @property
    def json_path(self) -> str:
        return "$." + ".".join(self.path)


def _leaves(et: EventType) -> list[Leaf]:
    """Every field of every version, nested fields after their object, in first-seen order."""
    out: list[Leaf] = []

    def walk(
        prefix: tuple[str, ...], per_version: dict[int, dict[str, FieldSpec]], parent: Leaf | None
    ) -> None:
        names: list[str] = []
        for fields in per_version.values():
            for n in fields:
                if n not in names:
                    names.append(n)
        for n in names:
            versions = {v: fields[n] for v, fields in per_version.items() if n in fields}
            spec = next(iter(versions.values()))
            leaf = Leaf((*prefix, n), spec, versions, parent)
            out.append(leaf)
            if spec.type == "object":
                walk(leaf.path, {v: s.fields or {} for v, s in versions.items()}, leaf)

    walk((), {v: et.versions[v].fields for v in sorted(et.versions)}, None)
    return out


# --------------------------------------------------------------------------------------------
# The rules of silver_validate (udfs/src/main/java/io/streamlake/udfs/Rules.java reads them)


def _constraint(spec: FieldSpec) -> dict[str, Any]:
    return {
        "required": spec.required,
        "min": spec.min,
        "max": spec.max,
        "max_length": spec.max_length,
        "pattern": spec.pattern,
        "values": spec.values,
    }


def _field_rules(leaf: Leaf, children_of: Mapping[tuple[str, ...], list[Leaf]]) -> dict[str, Any]:
    return {
        "name": leaf.path[-1],
        "type": leaf.spec.type,
        "items": leaf.spec.items,
        "format": leaf.spec.format,
        "drop": leaf.spec.pii == "drop",
        "versions": {str(v): _constraint(s) for v, s in sorted(leaf.versions.items())},
        "fields": [_field_rules(c, children_of) for c in children_of.get(leaf.path, [])],
    }


def validate_config(reg: Registry) -> str:
    """The rules silver_validate checks every record against, as JSON: envelope, tenants,
    routing lists, and per event type its id/time fields and each version's field constraints.
    No secrets (the PII hash key stays out of it), so it can sit in the SQL text and the plan."""
    env = reg.silver.envelope
    types = []
    for name in sorted(reg.event_types):
        et = reg.event_types[name]
        leaves = _leaves(et)
        children_of: dict[tuple[str, ...], list[Leaf]] = {}
        for lf in leaves:
            if lf.parent is not None:
                children_of.setdefault(lf.parent.path, []).append(lf)
        types.append(
            {
                "name": name,
                "event_id_field": et.event_id_field,
                "event_time_field": et.event_time.field,
                "event_time_format": et.event_time.format,
                "max_future_skew_ms": registry.duration_ms(et.max_future_skew),
                "fields": [_field_rules(lf, children_of) for lf in leaves if lf.parent is None],
            }
        )
    rules = {
        "max_record_bytes": reg.silver.max_record_bytes,
        "reject_duplicate_keys": reg.silver.reject_duplicate_keys,
        "tenant_field": env.tenant_field,
        "type_field": env.type_field,
        "version_field": env.version_field,
        "topic_owner": dict(sorted(reg.topic_owner().items())),
        "tenants": sorted(reg.tenants),
        "allowed": sorted(
            f"{t.tenant_id}/{e}" for t in reg.tenants.values() for e in t.event_types
        ),
        "known_versions": sorted(
            f"{n}/{v}" for n, et in reg.event_types.items() for v in et.versions
        ),
        "active_versions": sorted(
            f"{t.tenant_id}/{e}/{v}"
            for t in reg.tenants.values()
            for e in t.event_types
            for v in reg.active_versions(t.tenant_id, e)
        ),
        "event_types": types,
    }
    return json.dumps(rules, separators=(",", ":"), ensure_ascii=True)


def _pii(spec: FieldSpec, v: str, hash_key: str) -> str:
    if spec.pii == "mask":
        return (
            f"CASE WHEN CHAR_LENGTH({v}) <= 4 THEN REPEAT('*', CHAR_LENGTH({v})) "
            f"ELSE CONCAT(REPEAT('*', CHAR_LENGTH({v}) - 4), RIGHT({v}, 4)) END"
        )
    if spec.pii == "hash":
        return f"CASE WHEN {v} IS NOT NULL THEN SHA256(CONCAT({q(hash_key)}, '|', {v})) END"
    if spec.pii == "keep":
        return v
    raise ValueError(spec.pii)


def _changes_values(leaf: Leaf, children_of: Mapping[tuple[str, ...], list[Leaf]]) -> bool:
    """Whether the projection rewrites anything below this leaf (mask or hash)."""
    if leaf.spec.type != "object":
        return leaf.spec.pii in ("mask", "hash")
    kids = [c for c in children_of.get(leaf.path, []) if c.spec.pii != "drop"]
    return any(_changes_values(c, children_of) for c in kids)


def _projection(
    leaf: Leaf, children_of: Mapping[tuple[str, ...], list[Leaf]], hash_key: str, v: str
) -> str:
    """The Silver value of a typed field `v` (silver_validate's output): PII masked or hashed."""
    if leaf.spec.type != "object":
        return _pii(leaf.spec, v, hash_key)
    if not _changes_values(leaf, children_of):
        return v
    kids = [c for c in children_of.get(leaf.path, []) if c.spec.pii != "drop"]
    row = ", ".join(_projection(c, children_of, hash_key, f"{v}.`{c.path[-1]}`") for c in kids)
    return f"CASE WHEN {v} IS NULL THEN NULL ELSE CAST(ROW({row}) AS {leaf.spec.sql_type()}) END"


def clock_config(reg: Registry) -> str:
    """What silver_clock needs, as JSON: the record limit, the type field, and per event type
    its event-time field and format, max_future_skew and max_out_of_orderness. No secrets."""
    types = [
        {
            "name": name,
            "event_time_field": et.event_time.field,
            "event_time_format": et.event_time.format,
            "max_future_skew_ms": registry.duration_ms(et.max_future_skew),
            "max_out_of_orderness_ms": registry.duration_ms(et.watermark.max_out_of_orderness),
        }
        for name, et in sorted(reg.event_types.items())
    ]
    rules = {
        "max_record_bytes": reg.silver.max_record_bytes,
        "type_field": reg.silver.envelope.type_field,
        "event_types": types,
    }
    return json.dumps(rules, separators=(",", ":"), ensure_ascii=True)


def event_clock(reg: Registry) -> str:
    """The Bronze partition clock of one record: its event time minus its type's bound.

    NULL, so no watermark move, unless the record names a known event type and its event-time
    field parses in that type's format and lies at most max_future_skew ahead of ingest time.
    Evaluated by the Kafka source per partition (the watermark) and once more for the
    per-partition watermark column; both must be this one expression: the JVM function
    silver_clock (udfs/), one pass over the record, reading it as JSON_VALUE did (a clock counts
    for rejected records too).
    """
    return f"silver_clock(raw_value, ingest_at, {q(clock_config(reg))})"


def event_type_params(
    reg: Registry, et: EventType, hash_key: str, with_silver: str
) -> dict[str, str]:
    leaves = _leaves(et)
    children_of: dict[tuple[str, ...], list[Leaf]] = {}
    for lf in leaves:
        if lf.parent is not None:
            children_of.setdefault(lf.parent.path, []).append(lf)
    top = [lf for lf in leaves if lf.parent is None and lf.spec.pii != "drop"]
    typed = f"`typed_{et.event_type}`"
    projection = [
        f"       {_projection(lf, children_of, hash_key, f'{typed}.`{lf.path[0]}`')} AS `{lf.path[0]}`"
        for lf in top
    ]
    return {
        "event_type": et.event_type,
        "silver_columns": tables.sql_columns(tables.silver(et)),
        "silver_projection": ",\n".join(projection),
        "dedup_horizon": et.dedup.horizon,
        "with_silver": with_silver,
    }


def silver_params(
    reg: Registry,
    *,
    with_clauses: Mapping[str, str],
    hash_key: str,
) -> dict[str, str]:
    """All placeholder values of silver.sql (event_type.sql rendered in for each type)."""
    sections = []
    for name in sorted(reg.event_types):
        et = reg.event_types[name]
        params = event_type_params(reg, et, hash_key, with_clauses[f"silver_{name}"])
        sections.append(sqlfile.render(EVENT_TYPE_SQL, params))
    return {
        "bronze_columns": tables.sql_columns(tables.BRONZE_SOURCE),
        "dlq_columns": tables.sql_columns(tables.DLQ),
        "audit_columns": tables.sql_columns(tables.AUDIT_SILVER_COUNTS),
        "audit_primary_key": ", ".join(tables.AUDIT_SILVER_COUNTS.primary_key),
        "with_bronze_events": with_clauses["bronze_events"],
        "with_dlq_events": with_clauses["dlq_events"],
        "with_audit_silver_counts": with_clauses["audit_silver_counts"],
        "event_clock": event_clock(reg),
        "audit_window_ms": str(registry.duration_ms(reg.silver.audit_window)),
        "max_record_bytes": str(reg.silver.max_record_bytes),
        "dlq_max_value_bytes": str(reg.silver.dlq.max_value_bytes),
        "dlq_max_key_bytes": str(reg.silver.dlq.max_key_bytes),
        "dlq_max_headers_bytes": str(reg.silver.dlq.max_headers_bytes),
        "version_header": reg.silver.envelope.version_header,
        "validate_config": validate_config(reg).replace("'", "''"),
        "event_type_sections": "\n\n".join(sections),
        "dlq_unions": "\n".join(
            f"UNION ALL SELECT * FROM dlq_rows_{n}" for n in sorted(reg.event_types)
        ),
        "audit_unions": "\n".join(
            f"UNION ALL SELECT * FROM audit_rows_{n}" for n in sorted(reg.event_types)
        ),
        "ingest_ms": epoch_ms("b.ingest_at"),
    }


def dedup_ttls_ms(reg: Registry) -> dict[str, int]:
    """Each event type's dedup horizon: its deduplicate operator's state TTL (wall-clock)."""
    return {n: registry.duration_ms(et.dedup.horizon) for n, et in reg.event_types.items()}


def dedup_ttl_ms(reg: Registry) -> int:
    """The job's state TTL (table.exec.state.ttl, the audit counts'): the longest dedup horizon."""
    return max(dedup_ttls_ms(reg).values())
