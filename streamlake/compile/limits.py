"""The largest row each Silver-job Kafka sink can receive, and the check that it fits.

One record-size limit, `kafka.max_message_bytes` in conf/platform.yaml, is the broker's
message.max.bytes, every created topic's max.message.bytes and every Flink Kafka sink's
max.request.size. A sink that cannot write a row fails the job on that row at every restart, for
every tenant, so the Silver config is refused unless its largest rows fit:

- a DLQ row: its bounded parts (conf/silver.yaml `dlq`: value, key, headers; the claimed tenant
  cut to 256 characters) plus every other column at its largest, as JSON (BYTES as base64, 4/3);
- a Silver row made from a record of `max_record_bytes`.

The bounds are upper bounds of the JSON the Flink sinks write (Jackson: strings escaped, BYTES
base64, timestamps ISO-8601).
"""

from __future__ import annotations

from pathlib import Path

from streamlake.compile.silver import Leaf, _leaves
from streamlake.config import loader as config
from streamlake.config.registry import EventType, Registry
from streamlake.config.settings import PlatformSettings

# Kafka's own framing of one record in its own batch (batch header 61 bytes, record header up to
# ~25), rounded up.
RECORD_OVERHEAD = 1024
# JSON sizes of bounded values: a timestamp '"2026-12-01T00:00:00.123Z"' and some slack; BIGINT
# and INT as text; booleans; a hex SHA-256 in quotes.
_TS, _BIGINT, _INT, _BOOL, _SHA = 32, 20, 11, 5, 66
# Jackson escapes a control character as \u00XX: one character becomes at most 6 bytes.
_ESCAPED = 6
_TENANT, _NAME, _TOPIC = 63, 63, 249  # validated tenant/event type names; Kafka's topic limit
_CLAIMED_CHARS = 256  # LEFT(claimed tenant, 256) in silver.sql
_EVENT_ID_CHARS = 256  # the event id check of silver_validate (udfs/)
# A Silver value is re-serialised from the record's JSON: strings, ints and booleans come out no
# longer than they went in (Jackson escapes only what JSON input had to escape too); a double may
# grow (Java prints 1e-320 as 9.99988671826831E-321, 1e6 as 1000000.0: at most ~3.5x with its
# separator); fixed-size values (timestamps, hashes) are counted per field.
_VALUE_GROWTH = 4
_FIELD_VALUE = 66  # the largest fixed-size Silver value: a keyed hash, hex, in quotes


def base64_len(n: int) -> int:
    return 4 * ((n + 2) // 3)


def _column(name: str, value_bytes: int) -> int:
    """`"name":value,` in a JSON object."""
    return len(name) + 4 + value_bytes


def _reasons_bytes(reg: Registry) -> int:
    """The largest reason_codes array: one routing code, or every field's code at once."""
    env = reg.silver.envelope
    route = 32 + max(len(env.tenant_field), len(env.type_field))  # 'missing_field:<field>' etc.
    longest = route + 4
    for et in reg.event_types.values():
        codes = [
            len("out_of_range:") + len(et.event_id_field),
            max(len("event_time_unparseable"), len("missing_field:") + len(et.event_time.field)),
        ]
        codes += [len("pattern_mismatch:") + len(lf.dotted) for lf in _leaves(et)]
        longest = max(longest, 2 + sum(c + 3 for c in codes))
    return longest


def dlq_row_max_bytes(reg: Registry) -> int:
    d = reg.silver.dlq
    cols = [
        ("tenant_id", _TENANT + 2),
        ("event_type", _NAME + 2),
        ("schema_version", _INT),
        ("reason_codes", _reasons_bytes(reg)),
        ("claimed_tenant", _CLAIMED_CHARS * _ESCAPED + 2),
        ("source_topic", _TOPIC + 2),
        ("source_partition", _INT),
        ("source_offset", _BIGINT),
        ("ingest_at", _TS),
        ("source_key", base64_len(d.max_key_bytes) + 2),
        ("source_key_bytes", _BIGINT),
        ("source_headers", d.max_headers_bytes),
        ("source_headers_dropped", _BOOL),
        ("raw_value", base64_len(d.max_value_bytes) + 2),
        ("raw_value_bytes", _BIGINT),
        ("raw_value_sha256", _SHA),
        ("raw_value_truncated", _BOOL),
        ("detected_at", _TS),
    ]
    return 2 + sum(_column(n, v) for n, v in cols) + RECORD_OVERHEAD


def _declared_fields(leaves: list[Leaf]) -> int:
    """Each declared field's name and its largest fixed-size value (null when absent)."""
    return sum(_column(lf.path[-1], _FIELD_VALUE) for lf in leaves)


def silver_row_max_bytes(reg: Registry, et: EventType) -> int:
    event_id = _EVENT_ID_CHARS * _ESCAPED + 2
    fixed = [
        ("tenant_id", _TENANT + 2),
        ("event_type", _NAME + 2),
        ("schema_version", _INT),
        ("event_id", event_id),
        ("event_at", _TS),
        ("source_topic", _TOPIC + 2),
        ("source_partition", _INT),
        ("source_offset", _BIGINT),
        ("ingest_at", _TS),
    ]
    key = 2 + _column("tenant_id", _TENANT + 2) + _column("event_id", event_id)
    value = 2 + sum(_column(n, v) for n, v in fixed) + _declared_fields(_leaves(et))
    return _VALUE_GROWTH * reg.silver.max_record_bytes + value + key + RECORD_OVERHEAD


def check(reg: Registry, platform: PlatformSettings, platform_file: Path) -> None:
    """Refuse Silver limits whose largest DLQ or Silver row would not fit the sinks' limit."""
    limit = platform.kafka.max_message_bytes
    silver_file = reg.conf_dir / "silver.yaml"
    where = f"kafka.max_message_bytes ({limit:,}) in {platform_file}"
    dlq = dlq_row_max_bytes(reg)
    if dlq > limit:
        value = reg.silver.dlq.max_value_bytes
        allowed = (limit - (dlq - base64_len(value))) // 4 * 3
        raise config.ConfigError(
            silver_file,
            "dlq.max_value_bytes",
            f"a limit whose largest DLQ row fits {where}: with {value:,} a DLQ row can be "
            f"{dlq:,} bytes (base64 4/3 plus the other columns); at most {max(allowed, 0):,} "
            "with the other dlq limits as they are, or raise kafka.max_message_bytes",
        )
    for name in sorted(reg.event_types):
        row = silver_row_max_bytes(reg, reg.event_types[name])
        if row > limit:
            rec = reg.silver.max_record_bytes
            allowed = (limit - (row - _VALUE_GROWTH * rec)) // _VALUE_GROWTH
            raise config.ConfigError(
                silver_file,
                "max_record_bytes",
                f"a limit whose largest Silver row fits {where}: a {rec:,}-byte record can make "
                f"a silver_{name} row of up to {row:,} bytes (values re-serialised, up to "
                f"{_VALUE_GROWTH}x); at most {max(allowed, 0):,}, or raise kafka.max_message_bytes",
            )
