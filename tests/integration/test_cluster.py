"""The running stack: submission with `flink run`, the SQL client, and status."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from connectors import kafka
from demo import events as demo_events
from streamlake.config import paths, settings
from streamlake.config.settings import PlatformSettings
from streamlake.runtime import submit
from streamlake.stack import cluster as flink_cluster


@pytest.fixture(scope="module")
def cluster(platform: PlatformSettings) -> PlatformSettings:
    if not flink_cluster.flink_healthy(platform):
        pytest.fail(
            f"no Flink cluster at {platform.flink.rest_url}: run `make up` (make test does)"
        )
    return platform


def test_flink_ui_answers_and_status_reports_health(cluster: PlatformSettings) -> None:
    ov = flink_cluster.rest_get(cluster, "/overview")
    assert ov["taskmanagers"] >= 1
    out = subprocess.run(
        [sys.executable, "-m", "jobs", "status"],
        capture_output=True,
        text=True,
        cwd=paths.REPO,
        check=True,
    ).stdout
    assert "healthy" in out and "taskmanagers=1" in out


def test_submitted_job_writes_the_expected_windows(
    cluster: PlatformSettings,
    bootstrap: str,
    topic_factory: Callable[..., str],
    conf_dir: Callable[..., Path],
    uid: str,
) -> None:
    src, dst = topic_factory("bronze_demo_events"), topic_factory("gold_demo_event_counts_10s")
    conf = conf_dir(input_topic=src, output_topic=dst)
    events = demo_events.sample_events(seed=11, seconds=30)
    kafka.produce_json(bootstrap, src, events, key="event_key")

    job_id = submit.submit(
        "demo_event_counts",
        settings.load_platform(conf / "platform.yaml"),
        bounded=True,
        conf_dir=conf,
    )
    assert submit.wait_job(cluster, job_id, {"FINISHED"}, timeout_s=240) == "FINISHED"

    rows = kafka.read_committed_json(bootstrap, dst, group_id=f"reader-{uid}")
    got = {(r["window_start"][:19], r["event_key"]): r["count_events"] for r in rows}
    assert got == dict(demo_events.expected_counts(events, 10_000))


def test_sql_client_runs_a_select_over_a_topic(
    cluster: PlatformSettings,
    bootstrap: str,
    topic_factory: Callable[..., str],
    conf_dir: Callable[..., Path],
    tmp_path: Path,
) -> None:
    src = topic_factory("bronze_demo_events")
    conf = conf_dir(input_topic=src, output_topic=f"gold_unused_{uuid.uuid4().hex[:6]}")
    events = demo_events.sample_events(seed=5, seconds=10, keys=3)
    kafka.produce_json(bootstrap, src, events, key="event_key")
    q = tmp_path / "q.sql"
    q.write_text("SELECT event_key, COUNT(*) AS n FROM bronze_demo_events GROUP BY event_key;\n")

    res = subprocess.run(
        [sys.executable, "-m", "jobs", "--conf", str(conf), "sql", "--file", str(q)],
        capture_output=True,
        text=True,
        cwd=paths.REPO,
        timeout=300,
        check=False,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    want: dict[str, int] = {}
    for e in events:
        want[e["event_key"]] = want.get(e["event_key"], 0) + 1
    for key, n in want.items():
        assert any(
            cells[1:3] == [key, str(n)]
            for line in res.stdout.splitlines()
            if (cells := [c.strip() for c in line.split("|")]) and len(cells) >= 3
        ), f"{key}={n} not in SQL client output:\n{res.stdout[-3000:]}"
