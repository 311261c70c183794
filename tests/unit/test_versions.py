"""One matched Flink/connector pair, recorded in one place (connectors/maven/pom.xml); that the
resolved jars are those is a job-tier test (tests/job/test_resolved_jars.py): it needs `make jars`."""

from __future__ import annotations

import tomllib

from streamlake.config import paths
from tests.support.pom import pom_props


def test_flink_version_matches_wheel_and_pin() -> None:
    import pyflink.version

    props = pom_props()
    assert props["flink.version"] == pyflink.version.__version__
    pyproject = tomllib.loads((paths.REPO / "pyproject.toml").read_text())
    assert f"apache-flink=={props['flink.version']}" in pyproject["project"]["dependencies"]


def test_kafka_connector_is_built_for_this_flink_minor() -> None:
    props = pom_props()
    major, minor = props["flink.version"].split(".")[:2]
    assert props["flink-kafka-connector.version"].endswith(f"-{major}.{minor}")
    assert props["kafka.version"].startswith("4.")


def test_udfs_are_built_against_the_pinned_flink() -> None:
    """udfs/pom.xml compiles silver_validate against Flink, and the Silver sinks' partitioner
    against the Kafka connector (both provided): the same versions the cluster runs."""
    udfs = pom_props(paths.REPO / "udfs" / "pom.xml")
    for v in ("flink.version", "flink-kafka-connector.version"):
        assert udfs[v] == pom_props()[v], v
