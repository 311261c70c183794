"""The jars Maven resolved into .stack/jars (`make jars`) are the ones connectors/maven/pom.xml pins.
Job tier, not unit: it reads the built jars."""

from __future__ import annotations

from streamlake.config import paths
from tests.support.pom import pom_props


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
