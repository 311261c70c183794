"""A benchmark-only prototype: silver_validate's checks in Python (orjson), for bench/silver_parse.py.

Reads the same rules JSON as the JVM function (streamlake.compile.silver.validate_config) and returns the same
kind of row. Not a complete port and not used by any job: orjson cannot report duplicate keys
(it keeps the last), and it rejects lone surrogates as malformed JSON, so duplicate_key and
invalid_unicode would need a second parser. It measures what a Python design costs per event:
as a pandas (Arrow) UDF in process mode, and as a scalar UDF in thread mode.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson

_TENANT_ID = re.compile(r"[a-z][a-z0-9_-]{1,62}")
_EVENT_TYPE = re.compile(r"[a-z][a-z0-9_]{0,62}")
_VERSION = re.compile(r"[0-9]{1,4}")
_NON_FINITE = re.compile(r"(^|[\[:,])\s*-?(NaN|Infinity)\s*([\],}]|$)")
_ISO = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,3})?Z"
)
_EPOCH_MS_MAX = 253_402_300_799_999
_INT = (-2_147_483_648, 2_147_483_647)

# The columns the benchmark reads: the fixed ones, then device_telemetry's typed fields.
COLUMNS = [
    ("route_reason", "STRING"),
    ("field_reasons", "STRING"),
    ("tenant_id", "STRING"),
    ("event_type", "STRING"),
    ("schema_version", "INT"),
    ("event_id", "STRING"),
    ("event_at_ms", "BIGINT"),
    ("device_id", "STRING"),
    ("temperature_c", "DOUBLE"),
    ("humidity_pct", "INT"),
    ("battery_ok", "BOOLEAN"),
]
TYPED = ["device_id", "temperature_c", "humidity_pct", "battery_ok"]

Row = tuple[Any, ...]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _time_ms(fmt: str, v: Any) -> int | None:
    if fmt == "iso8601_utc":
        import calendar

        m = _ISO.fullmatch(v) if isinstance(v, str) else None
        if not m:
            return None
        y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
        if not (1 <= mo <= 12 and 1 <= d <= 31 and h <= 23 and mi <= 59 and s <= 59):
            return None
        frac = int((m.group(7) or ".0")[1:].ljust(3, "0"))
        return calendar.timegm((y, mo, d, h, mi, s)) * 1000 + frac
    if not _is_int(v):
        return None
    if fmt == "epoch_millis":
        return v if 0 <= v <= _EPOCH_MS_MAX else None
    return v * 1000 if 0 <= v <= _EPOCH_MS_MAX // 1000 else None


def _check(f: dict[str, Any], c: dict[str, Any], v: Any, present: bool) -> str | None:
    p, t = f["path"], f["type"]
    if not present:
        return f"missing_field:{p}" if c["required"] else None
    if t in ("string", "enum"):
        if not isinstance(v, str):
            return f"wrong_type:{p}"
        if t == "enum":
            return None if v in c["values"] else f"invalid_enum:{p}"
        if c["max_length"] is not None and len(v) > c["max_length"]:
            return f"out_of_range:{p}"
        if c["pattern"] is not None and not c["_re"].search(v):
            return f"pattern_mismatch:{p}"
        return None
    if t in ("int", "long"):
        if not _is_int(v):
            return f"wrong_type:{p}"
        lo = c["min"] if c["min"] is not None else (_INT[0] if t == "int" else -(2**63))
        hi = c["max"] if c["max"] is not None else (_INT[1] if t == "int" else 2**63 - 1)
        return None if lo <= v <= hi else f"out_of_range:{p}"
    if t == "double":
        if isinstance(v, bool) or not isinstance(v, int | float):
            return f"wrong_type:{p}"
        bad = (c["min"] is not None and v < c["min"]) or (c["max"] is not None and v > c["max"])
        return f"out_of_range:{p}" if bad else None
    if t == "boolean":
        return None if isinstance(v, bool) else f"wrong_type:{p}"
    if t == "object":
        return None if isinstance(v, dict) else f"wrong_type:{p}"
    if t == "array":
        return None if isinstance(v, list) else f"wrong_type:{p}"
    if t == "timestamp":
        ok = isinstance(v, str) if f["format"] == "iso8601_utc" else _is_int(v)
        if not ok:
            return f"wrong_type:{p}"
        return None if _time_ms(f["format"], v) is not None else f"out_of_range:{p}"
    return None


def _typed(name: str, v: Any) -> Any:
    if name == "temperature_c" and _is_int(v):
        return float(v)
    return v


def _prepare(fields: list[dict[str, Any]], prefix: str) -> None:
    for f in fields:
        f["path"] = prefix + f["name"]
        for c in f["versions"].values():
            c["_re"] = re.compile(f"^(?:{c['pattern']})$") if c["pattern"] else None
        _prepare(f["fields"], f["path"] + ".")


def _fields(fields: list[dict[str, Any]], ver: str, obj: dict[str, Any], out: list[str]) -> None:
    for f in fields:
        c = f["versions"].get(ver)
        v = obj.get(f["name"])
        if c is not None:
            reason = _check(f, c, v, v is not None)
            if reason:
                out.append(reason)
        if f["type"] == "object" and isinstance(v, dict):
            _fields(f["fields"], ver, v, out)


def validator(config: str) -> Callable[[bytes | None, str, int], Row]:
    """validate(raw, topic, ingest_ms) -> a row of COLUMNS."""
    cfg = orjson.loads(config)
    types = {et["name"]: et for et in cfg["event_types"]}
    for et in types.values():
        _prepare(et["fields"], "")
    tenants, allowed = set(cfg["tenants"]), set(cfg["allowed"])
    known, active = set(cfg["known_versions"]), set(cfg["active_versions"])
    owner = cfg["topic_owner"]
    tf, yf, vf = cfg["tenant_field"], cfg["type_field"], cfg["version_field"]
    empty: Row = (None,) * (len(COLUMNS) - 1)

    def validate(raw: bytes | None, topic: str, ingest_ms: int) -> Row:
        if raw is None:
            return ("empty_record", *empty)
        if len(raw) > cfg["max_record_bytes"]:
            return ("oversized_record", *empty)
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            return ("invalid_utf8", *empty)
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            reason = "non_finite_number" if _NON_FINITE.search(line) else "malformed_json"
            return (reason, *empty)
        if not isinstance(doc, dict):
            return ("not_an_object", *empty)
        wt, wy = doc.get(tf), doc.get(yf)
        wv: Any = doc.get(vf)
        tenant = wt if isinstance(wt, str) and _TENANT_ID.fullmatch(wt) else None
        etype = wy if isinstance(wy, str) and _EVENT_TYPE.fullmatch(wy) else None
        ver: int | None = None
        if (isinstance(wv, str) and _VERSION.fullmatch(wv)) or (_is_int(wv) and 0 <= wv <= 9999):
            ver = int(wv)
        if wt is None:
            route = f"missing_field:{tf}"
        elif tenant is None:
            route = "invalid_tenant_id"
        elif tenant not in tenants:
            route = "unknown_tenant"
        elif tenant != owner.get(topic, tenant):
            route = "tenant_topic_mismatch"
        elif wy is None:
            route = f"missing_field:{yf}"
        elif etype is None or etype not in types:
            route = "unknown_event_type"
        elif f"{tenant}/{etype}" not in allowed:
            route = "event_type_not_allowed"
        elif ver is None or f"{etype}/{ver}" not in known:
            route = "unknown_version"
        elif f"{tenant}/{etype}/{ver}" not in active:
            route = "version_not_active"
        else:
            route = None
        if route is not None:
            return (route, None, tenant, etype, ver, *empty[4:])
        assert etype is not None
        et = types[etype]
        reasons: list[str] = []
        eid = doc.get(et["event_id_field"])
        if eid is None:
            reasons.append(f"missing_field:{et['event_id_field']}")
        elif not (isinstance(eid, str) or _is_int(eid)):
            reasons.append(f"wrong_type:{et['event_id_field']}")
        else:
            eid = str(eid)
            if not 1 <= len(eid) <= 256:
                reasons.append(f"out_of_range:{et['event_id_field']}")
        wtime = doc.get(et["event_time_field"])
        at = None if wtime is None else _time_ms(et["event_time_format"], wtime)
        if wtime is None:
            reasons.append(f"missing_field:{et['event_time_field']}")
        elif at is None:
            reasons.append("event_time_unparseable")
        elif at > ingest_ms + et["max_future_skew_ms"]:
            reasons.append("event_time_in_future")
        _fields(et["fields"], str(ver), doc, reasons)
        typed = tuple(_typed(n, doc.get(n)) for n in TYPED)
        return (None, ",".join(reasons) or None, tenant, etype, ver, eid, at, *typed)

    return validate


def pandas_udf(config: str, topic: str, ingest_ms: int) -> Any:
    """silver_validate as a vectorised (Arrow batches) Python UDF: process mode."""
    import pandas as pd  # type: ignore[import-untyped]
    from pyflink.table import DataTypes
    from pyflink.table.udf import udf

    validate = validator(config)
    names = [n for n, _ in COLUMNS]

    def run(lines: Any) -> Any:
        return pd.DataFrame([validate(b, topic, ingest_ms) for b in lines], columns=names)

    return udf(run, result_type=_row_type(DataTypes), func_type="pandas")


def scalar_udf(config: str, topic: str, ingest_ms: int) -> Any:
    """silver_validate as a per-row Python UDF (run in thread mode by the benchmark)."""
    from pyflink.common import Row as FlinkRow
    from pyflink.table import DataTypes
    from pyflink.table.udf import udf

    validate = validator(config)

    def run(line: bytes) -> Any:
        return FlinkRow(*validate(line, topic, ingest_ms))

    return udf(run, result_type=_row_type(DataTypes))


def _row_type(dt: Any) -> Any:
    sql = {
        "STRING": dt.STRING(),
        "INT": dt.INT(),
        "BIGINT": dt.BIGINT(),
        "DOUBLE": dt.DOUBLE(),
        "BOOLEAN": dt.BOOLEAN(),
    }
    return dt.ROW([dt.FIELD(n, sql[t]) for n, t in COLUMNS])
