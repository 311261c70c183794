"""Config errors name the file, the key path and what was expected; good config loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs import catalog
from streamlake.config import loader as config
from streamlake.config import paths, settings


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "platform.yaml"
    p.write_text(text)
    return p


def test_repo_config_loads() -> None:
    s = settings.load_platform()
    assert s.kafka.bootstrap == "127.0.0.1:9092"
    assert s.sinks.transaction_timeout_ms < s.kafka.transaction_max_timeout_ms
    assert set(catalog.jobs()) == {"demo_event_counts", "silver", "gold", "passthrough"}


def test_unknown_key_is_named_with_its_path(tmp_path: Path) -> None:
    p = write(tmp_path, "kafka:\n  prot: 9092\n")
    with pytest.raises(config.ConfigError) as e:
        settings.load_platform(p)
    assert e.value.file == str(p)
    assert e.value.key_path == "kafka.prot"
    assert "unknown key" in str(e.value)


def test_wrong_type_says_what_was_expected(tmp_path: Path) -> None:
    p = write(tmp_path, "flink:\n  task_slots: many\n")
    with pytest.raises(config.ConfigError) as e:
        settings.load_platform(p)
    assert e.value.key_path == "flink.task_slots"
    assert "integer" in e.value.expected and "'many'" in e.value.expected
    assert str(e.value).startswith(f"{p}: flink.task_slots: expected")


def test_cross_key_rule_transaction_timeout(tmp_path: Path) -> None:
    p = write(tmp_path, "sinks:\n  transaction_timeout_ms: 1000000\n")
    with pytest.raises(config.ConfigError) as e:
        settings.load_platform(p)
    assert "transaction_max_timeout_ms" in str(e.value)


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match="not valid YAML"):
        settings.load_platform(write(tmp_path, "kafka: [\n"))
    with pytest.raises(config.ConfigError, match="file not found"):
        settings.load_platform(tmp_path / "nope.yaml")


def test_job_config_error_names_job_file(tmp_path: Path) -> None:
    import shutil

    d = tmp_path / "conf"
    shutil.copytree(paths.CONF_DIR, d)
    f = d / "jobs" / "demo_event_counts.yaml"
    f.write_text(f.read_text().replace("window_size_s: 10", "window_size_s: ten"))
    with pytest.raises(config.ConfigError) as e:
        catalog.jobs(d)
    assert e.value.file == str(f) and e.value.key_path == "window_size_s"


def test_secret_references(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SL_TEST_SECRET", "s3cr3t")
    assert config.resolve_secret("${env:SL_TEST_SECRET}", "f.yaml", "a.b") == "s3cr3t"
    with pytest.raises(config.ConfigError, match="expected a reference"):
        config.resolve_secret("plain-value", "f.yaml", "a.b")
    monkeypatch.delenv("SL_TEST_SECRET")
    with pytest.raises(config.ConfigError, match="SL_TEST_SECRET is not set"):
        config.resolve_secret("${env:SL_TEST_SECRET}", "f.yaml", "a.b")


def test_cli_exits_nonzero_on_bad_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from streamlake import cli

    d = tmp_path / "conf"
    d.mkdir()
    (d / "platform.yaml").write_text("kafka:\n  port: ninety\n")
    assert cli.main(["--conf", str(d), "plan"]) == 2
    err = capsys.readouterr().err
    assert "platform.yaml: kafka.port: expected" in err
