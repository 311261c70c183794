"""Moved to tests/support/private_stack.py; this name stays while tests/pipeline_checks.py and
tests/integration/test_chaos.py still import it (drop it once they import the new path)."""

from tests.support.private_stack import *  # noqa: F403
