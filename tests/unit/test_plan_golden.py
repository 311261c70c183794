"""`python -m jobs plan` prints the complete SQL; a golden file locks it.

Regenerate after an intended change: UPDATE_GOLDEN=1 make test PYTEST_ARGS=tests/unit
"""

from __future__ import annotations

import os

import pytest

from streamlake import cli
from streamlake.config import paths

GOLDEN = paths.REPO / "tests" / "golden" / "plan.sql"


def test_plan_matches_golden(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["plan"]) == 0
    out = capsys.readouterr().out
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(out)
    assert out == GOLDEN.read_text(), "plan changed; if intended, regenerate with UPDATE_GOLDEN=1"


def test_plan_declares_watermark_with_reason_and_exactly_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["plan"]) == 0
    out = capsys.readouterr().out
    wm = out.index("WATERMARK FOR event_at")
    assert "-- Watermark 5 s behind" in out[:wm]
    assert "'sink.delivery-guarantee' = 'exactly-once'" in out
    assert "'properties.isolation.level' = 'read_committed'" in out
    assert "SET 'table.exec.source.idle-timeout' = '120000 ms';" in out
