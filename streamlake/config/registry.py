"""The onboarding registry: tenants, event types with versioned schemas, and the Silver runner.

Onboarding a tenant, an event type or a schema version is a YAML file in conf/, no code:

    conf/tenants/<tenant_id>.yaml          who sends what, on which topics
    conf/event_types/<event_type>.yaml     versioned schemas, event time, dedup, watermark
    conf/silver.yaml                       the Silver job: DLQ/audit topics, limits, version pins

Every error names the file, the key path and what was expected.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from streamlake.config import loader as config
from streamlake.config import tables

TENANT_ID = re.compile(r"^[a-z][a-z0-9_-]{1,62}$")
NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
TOPIC = re.compile(r"^[a-z][a-z0-9_.-]{0,200}$")
_DURATION = re.compile(r"^([1-9][0-9]*)(ms|s|min|h|d)$")
_UNIT_MS = {"ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}

# Columns every Silver (and late) row has besides its fields; a field may not take one of these
# names.
RESERVED = frozenset(c.name for c in (*tables.SILVER_ENVELOPE, *tables.LATE_TAIL))

FieldType = Literal[
    "string", "int", "long", "double", "boolean", "timestamp", "enum", "object", "array"
]
ScalarType = Literal["string", "int", "long", "double", "boolean"]
TimeFormat = Literal["epoch_millis", "epoch_seconds", "iso8601_utc"]
Pii = Literal["keep", "mask", "hash", "drop"]


def duration_ms(value: str) -> int:
    m = _DURATION.match(value)
    if not m:
        raise ValueError("a duration such as 500ms, 5s, 10min, 1h or 7d")
    return int(m.group(1)) * _UNIT_MS[m.group(2)]


def _duration(value: str) -> str:
    duration_ms(value)
    return value


# A duration such as 500ms, 5s, 10min, 1h or 7d, checked where it is declared.
Duration = Annotated[str, AfterValidator(_duration)]


class FieldSpec(config.Strict):
    type: FieldType
    required: bool = False
    min: float | None = None
    max: float | None = None
    max_length: int | None = Field(None, ge=1)
    pattern: str | None = None
    values: list[str] | None = None  # enum
    format: TimeFormat | None = None  # timestamp
    items: ScalarType | None = None  # array
    fields: dict[str, FieldSpec] | None = None  # object
    pii: Pii = "keep"

    @model_validator(mode="after")
    def _consistent(self) -> FieldSpec:
        t = self.type
        if (self.min is not None or self.max is not None) and t not in ("int", "long", "double"):
            raise ValueError(f"min/max apply to int, long and double, not {t}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min must not exceed max")
        if (self.pattern is not None or self.max_length is not None) and t != "string":
            raise ValueError(f"pattern/max_length apply to string, not {t}")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"a valid regular expression ({exc})") from None
            if "'" in self.pattern:
                raise ValueError("a pattern without single quotes")
        if (t == "enum") != (self.values is not None):
            raise ValueError("enum takes values: [..] and only enum does")
        if self.values is not None and (not self.values or any("'" in v for v in self.values)):
            raise ValueError("a non-empty list of values without single quotes")
        if (t == "timestamp") != (self.format is not None):
            raise ValueError("timestamp takes format: (epoch_millis|epoch_seconds|iso8601_utc)")
        if (t == "array") != (self.items is not None):
            raise ValueError("array takes items: (string|int|long|double|boolean)")
        if (t == "object") != (self.fields is not None):
            raise ValueError("object takes fields: {name: {...}}")
        if self.fields is not None:
            for name in self.fields:
                if not NAME.match(name):
                    raise ValueError(f"field name {name!r} in snake_case")
        if self.pii in ("mask", "hash") and t not in ("string", "enum"):
            raise ValueError(f"pii {self.pii} applies to string fields, not {t}")
        return self

    def sql_type(self) -> str:
        """The Flink SQL type of the Silver column (streamlake/config/tables.py maps the types)."""
        return tables.sql_type(tables.field_type(self))

    def shape(self) -> Any:
        """What must stay the same between versions for the Silver column to be one column."""
        if self.fields is not None:
            return ("object", tuple((n, f.shape()) for n, f in self.fields.items()))
        return (self.type, self.items, self.format, self.pii)


class SchemaVersion(config.Strict):
    fields: dict[str, FieldSpec]

    @field_validator("fields")
    @classmethod
    def _names(cls, v: dict[str, FieldSpec]) -> dict[str, FieldSpec]:
        for name in v:
            if not NAME.match(name):
                raise ValueError(f"field name {name!r} in snake_case (a-z, 0-9, _)")
            if name in RESERVED:
                raise ValueError(f"field name {name!r} is a Silver column; choose another name")
        return v


class EventTime(config.Strict):
    field: str = "event_time"
    format: TimeFormat = "epoch_millis"


class Dedup(config.Strict):
    horizon: Duration = "1h"


class Watermark(config.Strict):
    max_out_of_orderness: Duration
    reason: str = Field(min_length=10)


class EventType(config.Strict):
    event_type: Annotated[
        str, config.matching(NAME, "an event type name in snake_case (a-z, 0-9, _)")
    ]
    description: str = ""
    silver_topic: str | None = None
    event_id_field: str = "event_id"
    event_time: EventTime = EventTime()
    dedup: Dedup = Dedup()
    watermark: Watermark
    max_future_skew: Duration = "5min"
    versions: dict[int, SchemaVersion]

    @field_validator("versions")
    @classmethod
    def _versions(cls, v: dict[int, SchemaVersion]) -> dict[int, SchemaVersion]:
        if not v:
            raise ValueError("at least one version")
        if any(n < 1 or n > 9999 for n in v):
            raise ValueError("version numbers from 1 to 9999")
        return v

    @model_validator(mode="after")
    def _compatible(self) -> EventType:
        seen: dict[str, tuple[int, Any]] = {}
        for n in sorted(self.versions):
            for name, f in self.versions[n].fields.items():
                if name in (self.event_id_field, self.event_time.field):
                    raise ValueError(
                        f"versions.{n}.fields.{name}: {name} is the event id/time field; "
                        "it is declared by event_id_field / event_time, not in fields"
                    )
                if name in seen and seen[name][1] != f.shape():
                    raise ValueError(
                        f"versions.{n}.fields.{name} changes the type/shape it has in version "
                        f"{seen[name][0]}; an incompatible change needs a new field name"
                    )
                seen.setdefault(name, (n, f.shape()))
        return self

    @property
    def topic(self) -> str:
        return self.silver_topic or f"silver_{self.event_type}"

    def silver_fields(self) -> dict[str, FieldSpec]:
        """Union of all versions' fields, in first-seen order (additive evolution)."""
        out: dict[str, FieldSpec] = {}
        for n in sorted(self.versions):
            for name, f in self.versions[n].fields.items():
                out.setdefault(name, f)
        return out


class Tenant(config.Strict):
    tenant_id: Annotated[
        str, config.matching(TENANT_ID, "a tenant id matching ^[a-z][a-z0-9_-]{1,62}$")
    ]
    display_name: str = ""
    topics: list[str] = Field(min_length=1)
    event_types: list[str] = Field(min_length=1)

    @field_validator("topics")
    @classmethod
    def _topics(cls, v: list[str]) -> list[str]:
        for t in v:
            if not TOPIC.match(t) or not t.startswith("bronze_"):
                raise ValueError(f"topic names starting with bronze_ (got {t!r})")
        return v


class Envelope(config.Strict):
    tenant_field: str = "tenant_id"
    type_field: str = "event_type"
    version_field: str = "schema_version"
    version_header: str = "schema_version"


class DlqLimits(config.Strict):
    """Bounds on what a DLQ row keeps of its record, so every DLQ row fits the Kafka sink
    whatever the record's size or shape. The whole record stays in Bronze (Kafka and Delta)."""

    # raw_value keeps the first max_value_bytes bytes; raw_value_bytes and raw_value_sha256
    # describe the whole value, raw_value_truncated says whether bytes were cut.
    max_value_bytes: int = Field(65_536, ge=64, le=16_777_216)
    # source_key keeps the first max_key_bytes bytes of the Kafka key (source_key_bytes: all).
    max_key_bytes: int = Field(1024, ge=16, le=1_048_576)
    # Headers whose JSON (as the DLQ row carries them) is larger are dropped:
    # source_headers is null and source_headers_dropped true.
    max_headers_bytes: int = Field(8192, ge=64, le=1_048_576)


class SilverRunner(config.Strict):
    dlq_topic: Annotated[
        str, config.matching(re.compile("^dlq_"), "a topic name starting with dlq_")
    ] = "dlq_events"
    audit_topic: Annotated[
        str, config.matching(re.compile("^audit_"), "a topic name starting with audit_")
    ] = "audit_silver_counts"
    envelope: Envelope = Envelope()
    dlq: DlqLimits = DlqLimits()
    max_record_bytes: int = Field(1_048_576, ge=64, le=16_777_216)
    # Reject duplicate JSON keys (and NaN/Infinity) with a strict parse of every record.
    reject_duplicate_keys: bool = True
    audit_window: Duration = "1min"
    # Broker-assigned ingest time (LogAppendTime) is in order per partition; this covers topics
    # that keep producer CreateTime instead.
    idle_timeout: Duration = "10s"
    pii_hash_key: str = "${env:STREAMLAKE_PII_HASH_KEY}"
    # Where the job keeps its state (dedup keys for the horizon, audit counts); unset: the
    # platform's (conf/platform.yaml flink.state_backend).
    state_backend: Literal["rocksdb", "hashmap"] | None = None
    # Optional pins: tenant -> event type -> versions accepted. Default: every version.
    active_versions: dict[str, dict[str, list[int]]] = Field(default_factory=dict)


class Registry:
    """Tenants, event types and the Silver runner, loaded and cross-checked."""

    def __init__(
        self,
        conf_dir: Path,
        tenants: dict[str, Tenant],
        event_types: dict[str, EventType],
        silver: SilverRunner,
    ) -> None:
        self.conf_dir = conf_dir
        self.tenants = tenants
        self.event_types = event_types
        self.silver = silver

    def active_versions(self, tenant: str, event_type: str) -> list[int]:
        pins = self.silver.active_versions.get(tenant, {}).get(event_type)
        return sorted(pins) if pins else sorted(self.event_types[event_type].versions)

    def topic_owner(self) -> dict[str, str]:
        return {topic: t.tenant_id for t in self.tenants.values() for topic in t.topics}

    def bronze_topics(self) -> list[str]:
        return sorted(self.topic_owner())


def load_registry(conf_dir: Path) -> Registry:
    tenants: dict[str, Tenant] = {}
    owners: dict[str, str] = {}
    event_types: dict[str, EventType] = {}
    for f in sorted((conf_dir / "event_types").glob("*.yaml")):
        et = config.load(EventType, f)
        config.check_named_after_file(f, "event_type", et.event_type)
        event_types[et.event_type] = et
    for f in sorted((conf_dir / "tenants").glob("*.yaml")):
        t = config.load(Tenant, f)
        config.check_named_after_file(f, "tenant_id", t.tenant_id)
        for i, et_name in enumerate(t.event_types):
            if et_name not in event_types:
                known = ", ".join(sorted(event_types)) or "none"
                raise config.ConfigError(
                    f, f"event_types[{i}]", f"a known event type ({known}), got {et_name!r}"
                )
        for i, topic in enumerate(t.topics):
            if topic in owners:
                raise config.ConfigError(
                    f,
                    f"topics[{i}]",
                    f"a topic no other tenant uses; {topic!r} belongs to {owners[topic]!r}",
                )
            owners[topic] = t.tenant_id
        tenants[t.tenant_id] = t
    silver_file = conf_dir / "silver.yaml"
    silver = config.load(SilverRunner, silver_file)
    for tenant, pins in silver.active_versions.items():
        if tenant not in tenants:
            raise config.ConfigError(silver_file, f"active_versions.{tenant}", "a known tenant id")
        for et_name, versions in pins.items():
            if et_name not in tenants[tenant].event_types:
                raise config.ConfigError(
                    silver_file,
                    f"active_versions.{tenant}.{et_name}",
                    f"an event type tenant {tenant!r} sends ({', '.join(tenants[tenant].event_types)})",
                )
            unknown = sorted(set(versions) - set(event_types[et_name].versions))
            if unknown or not versions:
                raise config.ConfigError(
                    silver_file,
                    f"active_versions.{tenant}.{et_name}",
                    f"versions of {et_name} ({sorted(event_types[et_name].versions)}), got {versions}",
                )
    topics = [et.topic for et in event_types.values()]
    if len(set(topics)) != len(topics):
        raise config.ConfigError(
            conf_dir / "event_types", "silver_topic", "one Silver topic per event type"
        )
    return Registry(conf_dir, tenants, event_types, silver)
