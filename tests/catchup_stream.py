"""Moved: the stream to tests/support/catchup_stream.py, its oracle to tests/oracles/catchup.py.
This name stays while tests/pipeline_checks.py and tests/integration/test_chaos.py still import it
(drop it once they import the new paths)."""

from tests.oracles.catchup import *  # noqa: F403
from tests.support.catchup_stream import *  # noqa: F403
