"""Every Silver sink's rows fit the one record-size limit: the config refuses limits whose largest
DLQ row or Silver row could exceed kafka.max_message_bytes, naming file, key and what fits."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest
import yaml

from jobs import catalog
from streamlake.compile import limits
from streamlake.config import loader as config
from streamlake.config import paths, registry, settings


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    d = tmp_path / "conf"
    shutil.copytree(paths.CONF_DIR, d)
    return d


def edit(path: Path, **changes: object) -> None:
    data = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        *parents, leaf = key.split(".")
        node = data
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def worst_dlq_row(reg: registry.Registry) -> dict[str, object]:
    """The largest DLQ row the SQL can emit, built value by value (plain Python, as the JSON
    format writes it): each bounded column at its bound, each free column at its largest."""
    d = reg.silver.dlq
    # Headers at their limit: JSON text of exactly max_headers_bytes bytes.
    pad = d.max_headers_bytes - len(json.dumps([{"key": "", "value": ""}], separators=(",", ":")))
    headers = [{"key": "k" * pad, "value": ""}]
    assert len(json.dumps(headers, separators=(",", ":"))) == d.max_headers_bytes
    et = reg.event_types["device_telemetry"]
    return {
        "tenant_id": "t" * 63,
        "event_type": "e" * 63,
        "schema_version": -2_147_483_648,
        "reason_codes": [f"pattern_mismatch:{n}" for n in et.silver_fields()]
        + ["event_time_unparseable", "out_of_range:" + et.event_id_field],
        "claimed_tenant": "\x01" * 256,  # escaped as \u0001: six bytes a character
        "source_topic": "b" * 249,
        "source_partition": -2_147_483_648,
        "source_offset": -9_223_372_036_854_775_808,
        "ingest_at": "2026-12-01T00:00:00.123Z",
        "source_key": base64.b64encode(b"\xff" * d.max_key_bytes).decode(),
        "source_key_bytes": 9_223_372_036_854_775_807,
        "source_headers": headers,
        "source_headers_dropped": False,
        "raw_value": base64.b64encode(b"\xff" * d.max_value_bytes).decode(),
        "raw_value_bytes": 9_223_372_036_854_775_807,
        "raw_value_sha256": "f" * 64,
        "raw_value_truncated": False,
        "detected_at": "2026-12-01T00:00:00.123Z",
    }


def test_repo_limits_fit_with_the_largest_rows_inside_the_bound() -> None:
    reg = registry.load_registry(paths.CONF_DIR)
    limit = settings.load_platform().kafka.max_message_bytes
    worst = len(json.dumps(worst_dlq_row(reg), separators=(",", ":")).encode())
    bound = limits.dlq_row_max_bytes(reg)
    assert worst + limits.RECORD_OVERHEAD <= bound <= limit
    assert bound < 2 * worst  # an upper bound, not a guess far away from it
    for et in reg.event_types.values():
        assert 4 * reg.silver.max_record_bytes < limits.silver_row_max_bytes(reg, et) <= limit


def test_a_dlq_value_limit_too_large_for_the_sink_is_refused_with_what_fits(conf: Path) -> None:
    edit(conf / "platform.yaml", **{"kafka.max_message_bytes": 1_048_576})
    edit(conf / "silver.yaml", max_record_bytes=200_000, **{"dlq.max_value_bytes": 1_000_000})
    with pytest.raises(config.ConfigError) as e:
        catalog.silver(conf)
    assert e.value.file == str(conf / "silver.yaml")
    assert e.value.key_path == "dlq.max_value_bytes"
    assert "kafka.max_message_bytes (1,048,576)" in e.value.expected
    assert str(conf / "platform.yaml") in e.value.expected
    most = int(e.value.expected.split("at most ")[1].split()[0].replace(",", ""))
    # What the message says fits does fit, and a little more does not.
    edit(conf / "silver.yaml", **{"dlq.max_value_bytes": most})
    catalog.silver(conf)
    edit(conf / "silver.yaml", **{"dlq.max_value_bytes": most + 3})
    with pytest.raises(config.ConfigError):
        catalog.silver(conf)


def test_a_record_limit_whose_silver_rows_could_not_be_written_is_refused(conf: Path) -> None:
    edit(conf / "platform.yaml", **{"kafka.max_message_bytes": 2_097_152})
    edit(conf / "silver.yaml", max_record_bytes=1_048_576)
    with pytest.raises(config.ConfigError) as e:
        catalog.silver(conf)
    assert e.value.key_path == "max_record_bytes"
    assert "silver_" in e.value.expected and "kafka.max_message_bytes" in e.value.expected


def test_dlq_limits_are_typed_and_strict(conf: Path) -> None:
    edit(conf / "silver.yaml", **{"dlq.max_value_byte": 10})
    with pytest.raises(config.ConfigError) as e:
        registry.load_registry(conf)
    assert e.value.key_path == "dlq.max_value_byte" and "unknown key" in e.value.expected
    edit(conf / "silver.yaml", dlq={"max_value_bytes": "lots"})
    with pytest.raises(config.ConfigError) as e:
        registry.load_registry(conf)
    assert e.value.key_path == "dlq.max_value_bytes" and "integer" in e.value.expected
