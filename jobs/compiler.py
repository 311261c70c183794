"""Compile the onboarding registry (YAML) into the Silver job's SQL.

The SQL's shape lives in sql/silver/*.sql; this module only computes the values of their
placeholders from the typed registry: per-field JSON paths, typed-value expressions, check
expressions and Silver columns. Per-event work is all Flink SQL built-ins, run in the JVM.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from jobs import paths, registry, sqlfile
from jobs.registry import EventType, FieldSpec, Registry

SILVER_SQL = paths.SQL_DIR / "silver" / "silver.sql"
EVENT_TYPE_SQL = paths.SQL_DIR / "silver" / "event_type.sql"

_INT_RANGE = (-2_147_483_648, 2_147_483_647)
_EPOCH_MS_MAX = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


def epoch_ms(expr: str) -> str:
    """Milliseconds since the epoch of a TIMESTAMP_LTZ (the session time zone is UTC)."""
    return f"(EXTRACT(EPOCH FROM {expr}) * 1000 + EXTRACT(MILLISECOND FROM {expr}))"


def q(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def in_list(values: list[str]) -> str:
    return ", ".join(q(v) for v in values) if values else "CAST(NULL AS STRING)"


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
# Expressions over the wrapped JSON text w (["text"], [12], [true], [{..}], [[..]], [null], NULL)


def _absent(w: str) -> str:
    return f"({w} IS NULL OR {w} = '[null]')"


def _inner(w: str) -> str:
    return f"SUBSTRING({w} FROM 2 FOR CHAR_LENGTH({w}) - 2)"


def _kind_ok(kind: str, w: str, spec: FieldSpec | None = None) -> str:
    if kind in ("string", "enum"):
        return f"{w} LIKE '[\"%'"
    if kind in ("int", "long"):
        return f"REGEXP({w}, '^\\[-?[0-9]+\\]$')"
    if kind == "double":
        return f"REGEXP({w}, '^\\[-?[0-9]')"
    if kind == "boolean":
        return f"{w} IN ('[true]', '[false]')"
    if kind == "object":
        return f"{w} LIKE '[{{%'"
    if kind == "array":
        return f"{w} LIKE '[[%'"
    if kind == "timestamp":
        assert spec is not None and spec.format is not None
        return _kind_ok("string" if spec.format == "iso8601_utc" else "long", w)
    if kind == "event_id":
        return f"({w} LIKE '[\"%' OR REGEXP({w}, '^\\[-?[0-9]+\\]$'))"
    raise ValueError(kind)


def _string_value(w: str) -> str:
    # Unescape with a (small) parse of the wrapped value only when it contains an escape.
    return (
        f"CASE WHEN POSITION('\\' IN {w}) = 0 THEN SUBSTRING({w} FROM 3 FOR CHAR_LENGTH({w}) - 4) "
        f"ELSE JSON_VALUE({w}, '$[0]') END"
    )


def _time_value(fmt: str, w: str) -> str:
    if fmt == "iso8601_utc":
        s = _string_value(w)
        return (
            f"CASE WHEN REGEXP({w}, '^\\[\"[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}T[0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}}(\\.[0-9]{{1,3}})?Z\"\\]$') "
            f"THEN CAST(TO_TIMESTAMP(REPLACE(REPLACE({s}, 'T', ' '), 'Z', '')) AS TIMESTAMP_LTZ(3)) END"
        )
    return _epoch_time(fmt, f"TRY_CAST({_inner(w)} AS BIGINT)")


def _epoch_time(fmt: str, n: str) -> str:
    """The TIMESTAMP_LTZ of a BIGINT expression in an epoch format, NULL out of range."""
    if fmt == "epoch_millis":
        return f"CASE WHEN {n} BETWEEN 0 AND {_EPOCH_MS_MAX} THEN TO_TIMESTAMP_LTZ({n}, 3) END"
    return f"CASE WHEN {n} BETWEEN 0 AND {_EPOCH_MS_MAX // 1000} THEN TO_TIMESTAMP_LTZ({n}, 0) END"


def _value(leaf: Leaf, children: list[Leaf]) -> str:
    spec, w = leaf.spec, leaf.w
    t = spec.type
    if t in ("string", "enum"):
        raw = _string_value(w)
    elif t in ("int", "long"):
        raw = f"TRY_CAST({_inner(w)} AS BIGINT)"
    elif t == "double":
        raw = f"TRY_CAST({_inner(w)} AS DOUBLE)"
    elif t == "boolean":
        raw = f"{w} = '[true]'"
    elif t == "timestamp":
        assert spec.format is not None
        raw = _time_value(spec.format, w)
    elif t == "array":
        items = spec.items or "string"
        arr = f"JSON_QUERY({w}, '$[0]' RETURNING ARRAY<STRING>)"
        raw = arr if items == "string" else f"TRY_CAST({arr} AS {spec.sql_type()})"
    else:  # object: its children's values, assembled into a ROW in the projection
        return "CAST(NULL AS BOOLEAN)"
    return f"CASE WHEN {_absent(w)} OR NOT {_kind_ok(t, w, spec)} THEN NULL ELSE {raw} END"


def _check(leaf: Leaf, spec: FieldSpec) -> str:
    """The reason code (or NULL) for one field under one version's spec."""
    w, v, p = leaf.w, leaf.v, leaf.dotted
    t = spec.type
    whens = [
        f"WHEN {_absent(w)} THEN {q('missing_field:' + p) if spec.required else 'NULL'}",
        f"WHEN NOT {_kind_ok(t, w, spec)} THEN {q('wrong_type:' + p)}",
    ]
    if t in ("int", "long"):
        lo: float | None = _INT_RANGE[0] if t == "int" else None
        hi: float | None = _INT_RANGE[1] if t == "int" else None
        lo = spec.min if spec.min is not None else lo
        hi = spec.max if spec.max is not None else hi
        cond = [f"{v} IS NULL"]  # does not fit a BIGINT
        if lo is not None:
            cond.append(f"{v} < {_num(lo)}")
        if hi is not None:
            cond.append(f"{v} > {_num(hi)}")
        whens.append(f"WHEN {' OR '.join(cond)} THEN {q('out_of_range:' + p)}")
    elif t == "double":
        cond = [f"{v} IS NULL"]
        if spec.min is not None:
            cond.append(f"{v} < {_num(spec.min)}")
        if spec.max is not None:
            cond.append(f"{v} > {_num(spec.max)}")
        whens.append(f"WHEN {' OR '.join(cond)} THEN {q('out_of_range:' + p)}")
    elif t == "string":
        if spec.max_length is not None:
            whens.append(f"WHEN CHAR_LENGTH({v}) > {spec.max_length} THEN {q('out_of_range:' + p)}")
        if spec.pattern is not None:
            whens.append(
                f"WHEN NOT REGEXP({v}, {q('^(?:' + spec.pattern + ')$')}) THEN {q('pattern_mismatch:' + p)}"
            )
    elif t == "enum":
        whens.append(
            f"WHEN {v} NOT IN ({in_list(spec.values or [])}) THEN {q('invalid_enum:' + p)}"
        )
    elif t in ("timestamp", "array"):
        whens.append(
            f"WHEN {v} IS NULL THEN {q(('out_of_range:' if t == 'timestamp' else 'wrong_type:') + p)}"
        )
    return "CASE " + " ".join(whens) + " END"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _versioned(
    leaf: Leaf, all_versions: list[int], per_version: Mapping[int, str], default: str = "NULL"
) -> str:
    """Dispatch on schema_version when the expression differs between versions."""
    groups: dict[str, list[int]] = {}
    for ver, expr in per_version.items():
        groups.setdefault(expr, []).append(ver)
    if len(groups) == 1 and sorted(next(iter(groups.values()))) == all_versions:
        return next(iter(groups))
    whens = " ".join(
        f"WHEN schema_version IN ({', '.join(map(str, sorted(vs)))}) THEN {expr}"
        for expr, vs in groups.items()
    )
    return f"CASE {whens} ELSE {default} END"


def _guard_by_parents(leaf: Leaf, expr: str) -> str:
    """A nested field is only checked when its object is present and is an object."""
    p = leaf.parent
    while p is not None:
        expr = (
            f"CASE WHEN {_absent(p.w)} OR NOT {_kind_ok('object', p.w)} THEN NULL ELSE {expr} END"
        )
        p = p.parent
    return expr


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


def _projection(
    leaf: Leaf, children_of: Mapping[tuple[str, ...], list[Leaf]], hash_key: str
) -> str:
    if leaf.spec.type != "object":
        out = _pii(leaf.spec, leaf.v, hash_key)
        if leaf.spec.type == "int":
            out = f"CAST({out} AS INT)"
        return out
    kids = [c for c in children_of.get(leaf.path, []) if c.spec.pii != "drop"]
    row = ", ".join(_projection(c, children_of, hash_key) for c in kids)
    return (
        f"CASE WHEN {_absent(leaf.w)} OR NOT {_kind_ok('object', leaf.w)} THEN NULL "
        f"ELSE CAST(ROW({row}) AS {leaf.spec.sql_type()}) END"
    )


def _clock_time(fmt: str, s: str) -> str:
    """The event time of a JSON_VALUE text in one of the event-time formats, or NULL."""
    if fmt == "iso8601_utc":
        return (
            f"CASE WHEN REGEXP({s}, '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}T[0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}}(\\.[0-9]{{1,3}})?Z$') "
            f"THEN CAST(TO_TIMESTAMP(REPLACE(REPLACE({s}, 'T', ' '), 'Z', '')) AS TIMESTAMP_LTZ(3)) END"
        )
    return _epoch_time(fmt, f"TRY_CAST({s} AS BIGINT)")


def event_clock(reg: Registry) -> str:
    """The Bronze partition clock of one record: its event time minus its type's bound.

    NULL, so no watermark move, unless the record names a known event type and its event-time
    field parses in that type's format and lies at most max_future_skew ahead of ingest time.
    Evaluated by the Kafka source per partition (the watermark) and once more for the
    per-partition watermark column; both must be this one expression.
    """
    line = "CAST(raw_value AS STRING)"
    whens = []
    for name in sorted(reg.event_types):
        et = reg.event_types[name]
        t = _clock_time(
            et.event_time.format, f"JSON_VALUE({line}, {q('$.' + et.event_time.field)})"
        )
        skew = interval(registry.duration_ms(et.max_future_skew))
        bound = interval(registry.duration_ms(et.watermark.max_out_of_orderness))
        whens.append(
            f"        WHEN {q(name)} THEN CASE WHEN {t} <= ingest_at + {skew} THEN {t} - {bound} END"
        )
    env = reg.silver.envelope
    # Records over max_record_bytes are never parsed (measured in characters here, which are at
    # most as many as the bytes: Flink SQL has no byte length for BYTES).
    return (
        f"CASE WHEN CHAR_LENGTH({line}) <= {reg.silver.max_record_bytes} THEN\n"
        f"    CASE JSON_VALUE({line}, {q('$.' + env.type_field)})\n"
        + "\n".join(whens)
        + "\n    END END"
    )


def event_type_params(
    reg: Registry, et: EventType, hash_key: str, with_silver: str
) -> dict[str, str]:
    versions = sorted(et.versions)
    id_spec = FieldSpec(type="string", required=True, max_length=256)
    time_spec = FieldSpec(type="timestamp", required=True, format=et.event_time.format)
    id_leaf = Leaf(("__event_id",), id_spec, dict.fromkeys(versions, id_spec))
    time_leaf = Leaf(("__event_time",), time_spec, dict.fromkeys(versions, time_spec))
    leaves = _leaves(et)
    children_of: dict[tuple[str, ...], list[Leaf]] = {}
    for lf in leaves:
        if lf.parent is not None:
            children_of.setdefault(lf.parent.path, []).append(lf)

    queries = [
        f"    JSON_QUERY(r.line, {q('$.' + et.event_id_field)} WITH UNCONDITIONAL ARRAY WRAPPER)",
        f"    JSON_QUERY(r.line, {q('$.' + et.event_time.field)} WITH UNCONDITIONAL ARRAY WRAPPER)",
    ] + [
        f"    JSON_QUERY(r.line, {q(lf.json_path)} WITH UNCONDITIONAL ARRAY WRAPPER)"
        for lf in leaves
    ]
    names = ["w___event_id", "w___event_time"] + [lf.w for lf in leaves]

    w_id, w_time = id_leaf.w, time_leaf.w
    typed = [
        f"    CASE WHEN {_absent(w_id)} OR NOT {_kind_ok('event_id', w_id)} THEN NULL "
        f"WHEN {w_id} LIKE '[\"%' THEN {_string_value(w_id)} ELSE {_inner(w_id)} END AS v_event_id",
        f"    {_value(time_leaf, [])} AS v_event_at",
    ]
    for lf in leaves:
        if lf.spec.type == "object":
            continue
        expr = _versioned(lf, versions, dict.fromkeys(lf.versions, _value(lf, [])))
        typed.append(f"    {expr} AS {lf.v}")

    skew = interval(registry.duration_ms(et.max_future_skew))
    checks = [
        f"        CASE WHEN {_absent(w_id)} THEN {q('missing_field:' + et.event_id_field)} "
        f"WHEN NOT {_kind_ok('event_id', w_id)} THEN {q('wrong_type:' + et.event_id_field)} "
        f"WHEN CHAR_LENGTH(v_event_id) NOT BETWEEN 1 AND 256 THEN {q('out_of_range:' + et.event_id_field)} END",
        f"        CASE WHEN {_absent(w_time)} THEN {q('missing_field:' + et.event_time.field)} "
        f"WHEN v_event_at IS NULL THEN 'event_time_unparseable' "
        f"WHEN v_event_at > ingest_at + {skew} THEN 'event_time_in_future' END",
    ]
    for lf in leaves:
        per_version = {ver: _check(lf, spec) for ver, spec in lf.versions.items()}
        checks.append("        " + _guard_by_parents(lf, _versioned(lf, versions, per_version)))

    top = [lf for lf in leaves if lf.parent is None and lf.spec.pii != "drop"]
    columns = [f"    `{lf.path[0]}` {lf.spec.sql_type()}" for lf in top]
    projection = [
        f"       {_projection(lf, children_of, hash_key)} AS `{lf.path[0]}`" for lf in top
    ]
    return {
        "event_type": et.event_type,
        "field_queries": ",\n".join(queries),
        "field_query_names": ", ".join(names),
        "typed_values": ",\n".join(typed),
        "field_checks": ",\n".join(checks),
        "silver_columns": ",\n".join(columns),
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
    env = reg.silver.envelope
    sections = []
    for name in sorted(reg.event_types):
        et = reg.event_types[name]
        params = event_type_params(reg, et, hash_key, with_clauses[f"silver_{name}"])
        sections.append(sqlfile.render(EVENT_TYPE_SQL, params))
    owners = reg.topic_owner()
    allowed = sorted(f"{t.tenant_id}/{e}" for t in reg.tenants.values() for e in t.event_types)
    known_versions = sorted(f"{n}/{v}" for n, et in reg.event_types.items() for v in et.versions)
    active = sorted(
        f"{t.tenant_id}/{e}/{v}"
        for t in reg.tenants.values()
        for e in t.event_types
        for v in reg.active_versions(t.tenant_id, e)
    )
    strict = (
        "TRY_PARSE_JSON(d.line) IS NOT NULL"
        if reg.silver.reject_duplicate_keys
        else "d.line IS JSON"
    )
    return {
        "with_bronze_events": with_clauses["bronze_events"],
        "with_dlq_events": with_clauses["dlq_events"],
        "with_audit_silver_counts": with_clauses["audit_silver_counts"],
        "event_clock": event_clock(reg),
        "audit_window_ms": str(registry.duration_ms(reg.silver.audit_window)),
        "max_record_bytes": str(reg.silver.max_record_bytes),
        "dlq_max_value_bytes": str(reg.silver.dlq.max_value_bytes),
        "dlq_max_key_bytes": str(reg.silver.dlq.max_key_bytes),
        "dlq_max_headers_bytes": str(reg.silver.dlq.max_headers_bytes),
        "topic_owner_cases": " ".join(
            f"WHEN {q(t)} THEN {q(o)}" for t, o in sorted(owners.items())
        ),
        "strict_json_check": strict,
        "tenant_field": env.tenant_field,
        "type_field": env.type_field,
        "version_field": env.version_field,
        "version_header": env.version_header,
        "known_tenants": in_list(sorted(reg.tenants)),
        "known_event_types": in_list(sorted(reg.event_types)),
        "allowed_event_types": in_list(allowed),
        "known_versions": in_list(known_versions),
        "active_versions": in_list(active),
        "event_type_sections": "\n\n".join(sections),
        "dlq_unions": "\n".join(
            f"UNION ALL SELECT * FROM dlq_rows_{n}" for n in sorted(reg.event_types)
        ),
        "audit_unions": "\n".join(
            f"UNION ALL SELECT * FROM audit_rows_{n}" for n in sorted(reg.event_types)
        ),
        "ingest_ms": epoch_ms("b.ingest_at"),
    }


def dedup_ttl_ms(reg: Registry) -> int:
    """One state TTL for the job: the longest dedup horizon (Flink's TTL is per job, wall-clock)."""
    return max(registry.duration_ms(et.dedup.horizon) for et in reg.event_types.values())
