"""A corpus of Bronze records for the Silver job: every bad-input class, with where each must go.

Each Case says which tenant's topic it is sent to, its exact bytes, and its expected fate:
"silver", "duplicate" (a repeat of an earlier silver event), or the DLQ reason codes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

NOW_MS = 0  # replaced by build(now_ms)


@dataclass
class Case:
    name: str
    tenant: str  # whose topic it is sent to
    value: bytes | None
    expect: str | list[str]  # "silver", "duplicate" or DLQ reason codes
    key: bytes | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    event_type: str | None = None
    event_id: str | None = None


def enc(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def build(now_ms: int, max_record_bytes: int) -> list[Case]:
    """The corpus, with event times around `now_ms` (the broker's ingest time in the test)."""

    def tel(eid: str, **over: Any) -> dict[str, Any]:
        e: dict[str, Any] = {
            "tenant_id": "acme",
            "event_type": "device_telemetry",
            "schema_version": 1,
            "event_id": eid,
            "event_time": now_ms - 1000,
            "device_id": "dev-7",
            "temperature_c": 21.5,
            "humidity_pct": 40,
            "battery_ok": True,
            "status": "ok",
            "location": {"lat": 52.1, "lon": 4.3},
            "tags": ["roof", "north"],
            "technician_email": "bob@example.com",
        }
        e.update(over)
        return {k: v for k, v in e.items() if v is not _DROP}

    def order(tenant: str, oid: str, version: int = 2, **over: Any) -> dict[str, Any]:
        e: dict[str, Any] = {
            "tenant_id": tenant,
            "event_type": "orders",
            "schema_version": version,
            "order_id": oid,
            "placed_at": "2026-01-01T10:00:00.250Z",
            "customer_id": "cust-1",
            "amount_cents": 1999,
            "currency": "EUR",
            "customer_email": "c@example.com",
        }
        if version >= 2:
            e.update(channel="web", coupon_code="SPRING-10")
        e.update(over)
        return {k: v for k, v in e.items() if v is not _DROP}

    def c(name: str, tenant: str, value: Any, expect: str | list[str], **kw: Any) -> Case:
        raw = value if isinstance(value, bytes) or value is None else enc(value)
        if isinstance(value, dict):
            kw.setdefault("event_type", value.get("event_type"))
            kw.setdefault("event_id", value.get("event_id") or value.get("order_id"))
        return Case(name, tenant, raw, expect, **kw)

    deep_ok = {"tenant_id": "acme"}
    nested: Any = 1
    for _ in range(200):
        nested = [nested]
    good_deep = tel("tel-deep", debug=nested)
    # Past the JSON parser's nesting limit (1000), but under the test's size limit.
    too_deep = b'{"tenant_id":"acme","x":' + b"[" * 1500 + b"1" + b"]" * 1500 + b"}"
    del deep_ok

    return [
        # ---- valid, and duplicates
        c("telemetry full", "acme", tel("tel-1"), "silver", key=b"dev-7"),
        c(
            "telemetry minimal",
            "acme",
            {
                "tenant_id": "acme",
                "event_type": "device_telemetry",
                "schema_version": 1,
                "event_id": "tel-2",
                "event_time": now_ms,
                "device_id": "dev-8",
                "temperature_c": -3,
            },
            "silver",
        ),
        c("telemetry duplicate", "acme", tel("tel-1"), "duplicate", key=b"dev-7"),
        c("telemetry deep but valid", "acme", good_deep, "silver"),
        c("telemetry numeric event id", "acme", tel(12345), "silver"),  # type: ignore[arg-type]
        c("order v1", "acme", order("acme", "ord-1", version=1), "silver"),
        c("order v2", "acme", order("acme", "ord-2"), "silver"),
        c(
            "order version from header",
            "acme",
            order("acme", "ord-3", schema_version=_DROP),
            "silver",
            headers=[("schema_version", b"2")],
        ),
        c(
            "header version not active",
            "globex",
            order("globex", "ord-hdr", schema_version=_DROP),
            ["version_not_active"],
            headers=[("schema_version", b"1"), ("trace-id", b"\x00\xffabc")],
        ),
        c("same order id, other tenant", "globex", order("globex", "ord-1"), "silver"),
        c("globex duplicate", "globex", order("globex", "ord-1"), "duplicate"),
        c("escaped string", "acme", order("acme", "ord-4", customer_id='cu\\"st\u00e9'), "silver"),
        # ---- record level
        c("tombstone", "acme", None, ["empty_record"], key=b"k"),
        c(
            "oversized",
            "acme",
            enc(tel("tel-big", pad="x" * max_record_bytes)),
            ["oversized_record"],
        ),
        c("invalid utf-8", "acme", b'{"tenant_id":"acme","x":"\xff\xfe"}', ["invalid_utf8"]),
        c("malformed", "acme", b'{"tenant_id": "acme", ', ["malformed_json"]),
        c(
            "duplicate keys",
            "acme",
            b'{"tenant_id":"acme","event_type":"orders","tenant_id":"acme"}',
            ["duplicate_key"],
        ),
        c("NaN", "acme", enc(tel("tel-nan")).replace(b"21.5", b"NaN"), ["non_finite_number"]),
        c(
            "Infinity",
            "acme",
            enc(tel("tel-inf")).replace(b"21.5", b"-Infinity"),
            ["non_finite_number"],
        ),
        c("array", "acme", b"[1,2,3]", ["not_an_object"]),
        c("string", "acme", b'"hello"', ["not_an_object"]),
        c(
            "lone surrogate",
            "acme",
            enc(tel("tel-sur", device_id="dev-1")).replace(b'"dev-1"', b'"dev-\\ud800"'),
            ["invalid_unicode"],
        ),
        c("too deep", "acme", too_deep, ["malformed_json"]),
        # ---- routing and tenancy
        c("no tenant", "acme", tel("r-1", tenant_id=_DROP), ["missing_field:tenant_id"]),
        c("path traversal tenant", "acme", tel("r-2", tenant_id="../etc"), ["invalid_tenant_id"]),
        c("empty tenant", "acme", tel("r-3", tenant_id=""), ["invalid_tenant_id"]),
        c("homoglyph tenant", "acme", tel("r-4", tenant_id="\u0430cme"), ["invalid_tenant_id"]),
        c("upper-case tenant", "acme", tel("r-5", tenant_id="ACME"), ["invalid_tenant_id"]),
        c("very long tenant", "acme", tel("r-6", tenant_id="a" * 300), ["invalid_tenant_id"]),
        c("numeric tenant", "acme", tel("r-7", tenant_id=42), ["invalid_tenant_id"]),
        c("unknown tenant", "acme", tel("r-8", tenant_id="initech"), ["unknown_tenant"]),
        c("tenant on another's topic", "acme", order("globex", "r-9"), ["tenant_topic_mismatch"]),
        c("no event type", "acme", tel("r-10", event_type=_DROP), ["missing_field:event_type"]),
        c("unknown event type", "acme", tel("r-11", event_type="clicks"), ["unknown_event_type"]),
        c(
            "type not allowed",
            "globex",
            tel("r-12", tenant_id="globex"),
            ["event_type_not_allowed"],
        ),
        c("unknown version", "acme", order("acme", "r-13", schema_version=3), ["unknown_version"]),
        c("no version", "acme", order("acme", "r-14", schema_version=_DROP), ["unknown_version"]),
        c(
            "pinned-out version",
            "globex",
            order("globex", "r-15", version=1),
            ["version_not_active"],
        ),
        # ---- fields
        c("missing required", "acme", tel("f-1", device_id=_DROP), ["missing_field:device_id"]),
        c("null required", "acme", tel("f-2", device_id=None), ["missing_field:device_id"]),
        c(
            "number as string",
            "acme",
            tel("f-3", temperature_c="21.5"),
            ["wrong_type:temperature_c"],
        ),
        c("fraction for int", "acme", tel("f-4", humidity_pct=40.5), ["wrong_type:humidity_pct"]),
        c("int out of range", "acme", tel("f-5", humidity_pct=101), ["out_of_range:humidity_pct"]),
        c(
            "long overflow",
            "acme",
            order("acme", "f-6", amount_cents=10**20),
            ["out_of_range:amount_cents"],
        ),
        c("pattern", "acme", tel("f-7", device_id="device-7"), ["pattern_mismatch:device_id"]),
        c("enum", "acme", tel("f-8", status="broken"), ["invalid_enum:status"]),
        c("boolean as string", "acme", tel("f-9", battery_ok="yes"), ["wrong_type:battery_ok"]),
        c("object as string", "acme", tel("f-10", location="52,4"), ["wrong_type:location"]),
        c(
            "nested missing",
            "acme",
            tel("f-11", location={"lon": 4.3}),
            ["missing_field:location.lat"],
        ),
        c(
            "nested out of range",
            "acme",
            tel("f-12", location={"lat": 95, "lon": 4.3}),
            ["out_of_range:location.lat"],
        ),
        c("array as string", "acme", tel("f-13", tags="roof"), ["wrong_type:tags"]),
        c(
            "string too long",
            "acme",
            order("acme", "f-14", coupon_code="X" * 40),
            ["out_of_range:coupon_code"],
        ),
        c(
            "several reasons",
            "acme",
            tel("f-15", device_id=_DROP, humidity_pct=-1),
            ["missing_field:device_id", "out_of_range:humidity_pct"],
        ),
        c(
            "v2 field missing in v2",
            "acme",
            order("acme", "f-16", channel=_DROP),
            ["missing_field:channel"],
        ),
        # ---- ids and event time
        c("no event id", "acme", tel("x", event_id=_DROP), ["missing_field:event_id"]),
        c("object event id", "acme", tel({"a": 1}), ["wrong_type:event_id"]),  # type: ignore[arg-type]
        c("no event time", "acme", tel("t-1", event_time=_DROP), ["missing_field:event_time"]),
        c("negative epoch", "acme", tel("t-2", event_time=-5), ["event_time_unparseable"]),
        c(
            "bad iso time",
            "acme",
            order("acme", "t-3", placed_at="yesterday"),
            ["event_time_unparseable"],
        ),
        c(
            "impossible date",
            "acme",
            order("acme", "t-4", placed_at="2026-13-45T10:00:00Z"),
            ["event_time_unparseable"],
        ),
        c(
            "far future",
            "acme",
            tel("t-5", event_time=now_ms + 86_400_000),
            ["event_time_in_future"],
        ),
    ]


class _Drop:
    def __repr__(self) -> str:
        return "<drop>"


_DROP: Any = _Drop()
