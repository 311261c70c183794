"""`python -m jobs deploy k8s` renders docker/k8s/ from conf/; the committed files are its golden.

Regenerate after an intended change: .venv/bin/python -m jobs deploy k8s
"""

from __future__ import annotations

from pathlib import Path

import yaml

from streamlake import cli
from streamlake.config import paths
from streamlake.config.settings import load_platform
from streamlake.deploy import k8s

OUT = paths.REPO / "docker" / "k8s"


def test_rendered_manifests_match_the_committed_ones() -> None:
    assert cli.main(["deploy", "k8s", "--check"]) == 0


def test_check_fails_on_a_stale_file(tmp_path: Path) -> None:
    assert cli.main(["deploy", "k8s", "--out", str(tmp_path)]) == 0
    (tmp_path / "kafka.yaml").write_text("stale\n")
    assert cli.main(["deploy", "k8s", "--out", str(tmp_path), "--check"]) == 1


def test_every_topic_and_job_of_the_config_is_a_resource() -> None:
    from jobs import catalog

    docs = [d for text in k8s.render(load_platform()).values() for d in yaml.safe_load_all(text)]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    topics = {t for j in catalog.jobs().values() for t in j.topics()}
    got = {d["spec"]["topicName"] for d in docs if d["kind"] == "KafkaTopic"}
    assert got == topics
    for job in k8s.JOBS:
        assert ("FlinkSessionJob", f"streamlake-{job.replace('_', '-')}") in kinds
        assert ("KafkaUser", f"streamlake-{job.replace('_', '-')}") in kinds
    jobs = [d for d in docs if d["kind"] == "FlinkSessionJob"]
    assert {d["spec"]["job"]["upgradeMode"] for d in jobs} == {"savepoint"}
    silver = next(
        d for d in docs if d["metadata"]["name"] == "streamlake-silver" and d["kind"] == "KafkaUser"
    )
    writes = {
        a["resource"]["name"]
        for a in silver["spec"]["authorization"]["acls"]
        if "Write" in a["operations"]
    }
    assert catalog.get("silver").sink_topics() == sorted(writes - {"streamlake.silver."})
