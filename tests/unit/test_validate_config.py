"""The rules silver_validate runs on (compiled from the registry): complete, and free of secrets."""

from __future__ import annotations

import json

import pytest

from jobs import catalog
from streamlake.compile import silver as compiler
from streamlake.config import paths, registry, settings


def test_rules_carry_each_versions_constraints_and_the_routing_lists() -> None:
    reg = registry.load_registry(paths.CONF_DIR)
    rules = json.loads(compiler.validate_config(reg))
    assert rules["active_versions"] == sorted(
        ["acme/device_telemetry/1", "acme/orders/1", "acme/orders/2", "globex/orders/2"]
    )
    assert rules["topic_owner"] == {t: o for t, o in sorted(reg.topic_owner().items())}
    orders = next(et for et in rules["event_types"] if et["name"] == "orders")
    assert (orders["event_id_field"], orders["event_time_format"]) == ("order_id", "iso8601_utc")
    by_name = {f["name"]: f for f in orders["fields"]}
    assert set(by_name["channel"]["versions"]) == {"2"}  # added in v2: not checked for v1 events
    assert by_name["customer_email"]["drop"] is True  # checked, never carried into Silver
    tel = next(et for et in rules["event_types"] if et["name"] == "device_telemetry")
    location = next(f for f in tel["fields"] if f["name"] == "location")
    assert [f["name"] for f in location["fields"]] == ["lat", "lon"]
    assert location["fields"][0]["versions"]["1"]["min"] == -90


def test_the_pii_hash_key_never_enters_the_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    marker = "pii-key-marker-not-in-the-function-config"
    monkeypatch.setenv("STREAMLAKE_PII_HASH_KEY", marker)
    sql = catalog.get("silver").render(settings.load_platform(), bounded=True)
    rules_literal = sql.split("LATERAL TABLE(silver_validate(", 1)[1].split(")) AS v", 1)[0]
    assert "max_record_bytes" in rules_literal
    assert marker not in rules_literal
    assert marker in sql  # the hash itself stays in SQL (SHA256 of key and value)
