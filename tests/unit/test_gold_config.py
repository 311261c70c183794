"""Gold aggregates and alert rules from YAML: checked against the event types, compiled to the
window TVF / MATCH_RECOGNIZE the issue asks for; errors name file, key path and expectation."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from jobs import catalog
from streamlake.compile import gold as gold_sql
from streamlake.config import gold, paths
from streamlake.config import loader as config


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    d = tmp_path / "conf"
    shutil.copytree(paths.CONF_DIR, d)
    return d


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def error(conf: Path) -> config.ConfigError:
    with pytest.raises(config.ConfigError) as e:
        gold.load_gold(conf)
    return e.value


def test_repo_gold_config_loads_every_window_and_rule_kind() -> None:
    gc = gold.load_gold(paths.CONF_DIR)
    assert {a.window.kind for a in gc.aggregates.values()} == {
        "tumble",
        "hop",
        "cumulate",
        "session",
    }
    assert {r.kind for r in gc.rules.values()} == {"threshold", "spike", "sequence", "absence"}
    fns = {m.fn for a in gc.aggregates.values() for m in a.measures.values()}
    assert fns == {"count", "count_distinct", "sum", "min", "max", "avg", "percentile"}


def test_compiled_sql_uses_window_tvfs_match_recognize_and_the_late_split() -> None:
    from streamlake.config import settings

    sql = catalog.get("gold").render(settings.load_platform())
    for tvf in (
        "TUMBLE(TABLE ontime_",
        "HOP(TABLE ontime_",
        "CUMULATE(TABLE ontime_",
        "SESSION(TABLE ontime_",
    ):
        assert tvf in sql
    assert sql.count("MATCH_RECOGNIZE (") == 3  # threshold, spike, sequence; absence is a session
    assert "PATTERN (A{3}) WITHIN" in sql and "PATTERN (S1 X1*? S2) WITHIN" in sql
    assert "PERCENTILE(CAST(`temperature_c` AS DOUBLE), 0.95)" in sql
    # Late by the row's Bronze partition (decided by the Silver job), or behind this job's
    # watermark; the job's watermark is the one the Silver rows carry.
    assert "WHEN event_at <= partition_watermark_at THEN partition_watermark_at" in sql
    assert "WHEN event_at <= CURRENT_WATERMARK(event_at) THEN" in sql
    assert "WATERMARK FOR event_at AS stream_watermark_at" in sql
    assert "WHERE watermark_at IS NULL;" in sql and "WHERE watermark_at IS NOT NULL;" in sql
    assert "'connector' = 'upsert-kafka'" in sql
    # Gold's watermark moves every auto-watermark-interval (conf/gold.yaml watermark_emit).
    assert "'scan.watermark.emit.strategy' = 'on-periodic'" in sql


def test_unknown_field_in_a_measure_names_file_and_key(conf: Path) -> None:
    f = conf / "gold" / "device_temperature_1m.yaml"
    f.write_text(f.read_text().replace("field: temperature_c}", "field: temprature_c}", 1))
    e = error(conf)
    assert e.file == str(f)
    assert e.key_path == "measures.avg_temperature_c.field"
    assert "a Silver field of device_telemetry" in e.expected and "temprature_c" in e.expected


def test_window_needs_its_own_sizes(conf: Path) -> None:
    f = conf / "gold" / "device_temperature_5m_hop.yaml"
    f.write_text(f.read_text().replace("slide: 1min", "step: 1min"))
    e = error(conf)
    assert e.key_path == "window"
    assert "a hop window takes exactly size, slide" in e.expected


def test_percentile_cannot_be_revised_by_late_rows(conf: Path) -> None:
    f = conf / "gold" / "device_temperature_5m_hop.yaml"
    write(f, f.read_text() + "allowed_lateness: 1min\n")
    e = error(conf)
    assert e.key_path == "measures.devices.fn"
    assert "when allowed_lateness is set" in e.expected


def test_session_windows_refuse_allowed_lateness(conf: Path) -> None:
    f = conf / "gold" / "orders_customer_sessions.yaml"
    write(f, f.read_text() + "allowed_lateness: 1min\n")
    assert error(conf).key_path == "allowed_lateness"


def test_optional_group_by_field_is_refused(conf: Path) -> None:
    f = conf / "gold" / "device_temperature_5m_hop.yaml"
    f.write_text(f.read_text().replace("group_by: []", "group_by: [status]"))
    e = error(conf)
    assert e.key_path == "group_by[0]" and "cannot be null" in e.expected


def test_rule_kind_and_condition_values_are_checked(conf: Path) -> None:
    f = conf / "alerts" / "device_degraded_then_failed.yaml"
    f.write_text(f.read_text().replace("value: failed", "value: broken"))
    e = error(conf)
    assert e.key_path == "steps[1].value" and "enum" in e.expected
    f.write_text("rule_id: device_degraded_then_failed\nkind: sometimes\n")
    e = error(conf)
    assert e.key_path == "kind" and "threshold, spike, sequence, absence" in e.expected


def test_a_new_aggregate_is_yaml_only(conf: Path) -> None:
    write(
        conf / "gold" / "orders_by_channel_15m.yaml",
        "name: orders_by_channel_15m\nevent_type: orders\nwindow: {kind: tumble, size: 15min}\n"
        "group_by: [currency]\nmeasures:\n  orders: {fn: count}\n",
    )
    job = catalog.get("gold", conf)
    assert "gold_orders_by_channel_15m" in job.tables
    assert job.tables["gold_orders_by_channel_15m"].upsert


@pytest.mark.parametrize(
    "window",
    [
        {"kind": "tumble", "size": "1min"},
        {"kind": "hop", "size": "5min", "slide": "1min"},
        {"kind": "cumulate", "size": "1h", "step": "10min"},
    ],
)
def test_a_late_rows_candidate_windows_are_the_windows_that_hold_it(
    window: dict[str, str],
) -> None:
    """Each window kind's SQL for the windows a late row revises (evaluated here) gives exactly
    the windows the oracle puts the row in."""
    import re

    from streamlake.config.registry import duration_ms
    from tests.oracles.gold import windows_of

    w = gold.Window.model_validate(window)
    exprs = gold_sql.WINDOW_SQL[w.kind].candidates(w, "ev")
    assert len(exprs) == w.spec.windows_per_row(w)
    params = {k: duration_ms(v) for k, v in window.items() if k != "kind"}
    for t in (0, 59_999, 60_000, 1_764_633_600_123, 1_764_633_659_999, 1_764_636_000_000):
        got = set()
        for e in exprs:
            py = re.sub(r"MOD\(ev, (\d+)\)", rf"({t} % \1)", e).replace("ev", str(t))
            start, end = eval(py.replace("ROW", ""))  # noqa: S307 (our own arithmetic)
            if start <= t < end:
                got.add((start, end))
        assert got == set(windows_of(w.kind, t, params)), t


def test_every_window_kind_has_its_sql() -> None:
    """A window kind is config (parameters, checks) and SQL (its window TVF): both know every kind."""
    from typing import get_args

    assert set(gold.WINDOW_KINDS) == set(get_args(gold.WindowKind)) == set(gold_sql.WINDOW_SQL)
