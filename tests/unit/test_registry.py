"""Onboarding config: typed, strict, cross-checked; errors name file, key path, expectation."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from jobs import catalog
from streamlake import cli
from streamlake.config import loader as config
from streamlake.config import paths, registry


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    d = tmp_path / "conf"
    shutil.copytree(paths.CONF_DIR, d)
    return d


def replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_repo_registry_loads() -> None:
    reg = registry.load_registry(paths.CONF_DIR)
    assert set(reg.tenants) == {"acme", "globex"}
    assert set(reg.event_types) == {"device_telemetry", "orders"}
    assert reg.active_versions("globex", "orders") == [2]
    assert reg.active_versions("acme", "orders") == [1, 2]


def test_typo_in_a_field_type_names_file_and_key_path(
    conf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = conf / "event_types" / "device_telemetry.yaml"
    replace(f, "temperature_c: {type: double", "temperature_c: {type: doubel")
    with pytest.raises(config.ConfigError) as e:
        registry.load_registry(conf)
    assert e.value.file == str(f)
    assert e.value.key_path == "versions[1].fields.temperature_c.type"
    assert "'doubel'" in e.value.expected and "'double'" in e.value.expected
    # The CLI exits non-zero before anything is compiled or submitted.
    assert cli.main(["--conf", str(conf), "plan"]) == 2
    assert "device_telemetry.yaml: versions[1].fields.temperature_c.type" in capsys.readouterr().err


def test_unknown_key_in_a_field(conf: Path) -> None:
    f = conf / "event_types" / "orders.yaml"
    replace(
        f, "amount_cents: {type: long, required: true,", "amount_cents: {type: long, requird: true,"
    )
    with pytest.raises(config.ConfigError) as e:
        registry.load_registry(conf)
    assert e.value.key_path == "versions[1].fields.amount_cents.requird"
    assert "unknown key" in e.value.expected


def test_tenant_referencing_unknown_event_type(conf: Path) -> None:
    f = conf / "tenants" / "globex.yaml"
    replace(f, "event_types: [orders]", "event_types: [orders, clicks]")
    with pytest.raises(config.ConfigError) as e:
        registry.load_registry(conf)
    assert (e.value.file, e.value.key_path) == (str(f), "event_types[1]")
    assert "'clicks'" in e.value.expected


def test_bad_tenant_id_and_shared_topic(conf: Path) -> None:
    f = conf / "tenants" / "globex.yaml"
    replace(f, "tenant_id: globex", "tenant_id: ../globex")
    with pytest.raises(config.ConfigError, match="tenant_id: expected a tenant id matching"):
        registry.load_registry(conf)
    replace(f, "tenant_id: ../globex", "tenant_id: globex")
    replace(f, "topics: [bronze_globex_events]", "topics: [bronze_acme_events]")
    with pytest.raises(config.ConfigError, match="belongs to 'acme'"):
        registry.load_registry(conf)


def test_incompatible_change_between_versions_is_refused(conf: Path) -> None:
    f = conf / "event_types" / "orders.yaml"
    text = f.read_text()
    head, v2 = text.split("  2:", 1)
    f.write_text(
        head + "  2:" + v2.replace("amount_cents: {type: long", "amount_cents: {type: double")
    )
    with pytest.raises(
        config.ConfigError, match=r"versions\.2\.fields\.amount_cents changes the type"
    ):
        registry.load_registry(conf)


def test_version_pin_must_exist(conf: Path) -> None:
    replace(conf / "silver.yaml", "orders: [2]", "orders: [7]")
    with pytest.raises(config.ConfigError) as e:
        registry.load_registry(conf)
    assert e.value.key_path == "active_versions.globex.orders"


def test_min_max_on_a_string_is_refused(conf: Path) -> None:
    f = conf / "event_types" / "device_telemetry.yaml"
    replace(
        f,
        "device_id: {type: string, required: true,",
        "device_id: {type: string, min: 1, required: true,",
    )
    with pytest.raises(config.ConfigError, match="min/max apply to int, long and double"):
        registry.load_registry(conf)


def test_secret_is_a_reference_and_redacted_in_plan(
    conf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    replace(
        conf / "silver.yaml",
        "pii_hash_key: ${env:STREAMLAKE_PII_HASH_KEY}",
        "pii_hash_key: hunter2hunter2",
    )
    job = catalog.get("silver", conf)
    from streamlake.config import settings

    with pytest.raises(
        config.ConfigError, match=r"pii_hash_key: expected a reference like \$\{env:NAME\}"
    ):
        job.render(settings.load_platform())
    monkeypatch.setenv("STREAMLAKE_PII_HASH_KEY", "s3cret-value")
    job = catalog.get("silver", paths.CONF_DIR)
    assert "s3cret-value" in job.render(settings.load_platform())
    assert "s3cret-value" not in job.render(settings.load_platform(), redact=True)
