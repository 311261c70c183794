"""Moved to tests/oracles/anomaly.py; this name stays while tests/pipeline_checks.py and
tests/integration/test_chaos.py still import it (drop it once they import the new path)."""

from tests.oracles.anomaly import *  # noqa: F403
