"""One matched Flink/connector pair, recorded in one place (connectors/maven/pom.xml)."""

from __future__ import annotations

import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

from jobs import paths

NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def pom_props(pom: Path = paths.POM) -> dict[str, str]:
    root = ET.parse(pom).getroot()  # noqa: S314 (our own pom)
    props = root.find("m:properties", NS)
    assert props is not None
    return {el.tag.split("}")[1]: (el.text or "") for el in props}


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


def test_resolved_jars_are_the_pinned_ones() -> None:
    props = pom_props()
    flink = {p.name for p in paths.FLINK_JARS.glob("*.jar")}
    assert flink == {
        f"flink-sql-connector-kafka-{props['flink-kafka-connector.version']}.jar",
        f"flink-sql-gateway-{props['flink.version']}.jar",
    }
    assert (paths.KAFKA_JARS / f"kafka_2.13-{props['kafka.version']}.jar").exists()
    # Provided by the wheel rather than resolved: the Prometheus reporter plugin.
    plugin = paths.pyflink_home() / "plugins" / "metrics-prometheus"
    assert (plugin / f"flink-metrics-prometheus-{props['flink.version']}.jar").exists()


def test_udfs_are_built_against_the_pinned_flink() -> None:
    """udfs/pom.xml compiles silver_validate against Flink (provided): the same version."""
    udfs = pom_props(paths.REPO / "udfs" / "pom.xml")
    assert udfs["flink.version"] == pom_props()["flink.version"]
