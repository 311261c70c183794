from __future__ import annotations

from pathlib import Path

import pytest

from streamlake.compile import sqlfile


def test_split_respects_quotes_and_comments() -> None:
    sql = """-- a; comment
CREATE TABLE t (a STRING) WITH ('k' = 'v;w', 'q' = 'it''s;');
/* block; comment */
INSERT INTO t SELECT 'x;y' ;
-- trailing comment only
"""
    stmts = sqlfile.split(sql)
    assert len(stmts) == 2
    assert sqlfile.is_create_table(stmts[0]) and "'v;w'" in stmts[0] and "'it''s;'" in stmts[0]
    assert sqlfile.is_insert(stmts[1])


def test_render_refuses_missing_and_unused(tmp_path: Path) -> None:
    f = tmp_path / "j.sql"
    f.write_text("-- Purpose: test\nSELECT ${a};\n")
    assert sqlfile.render(f, {"a": "1"}).endswith("SELECT 1;\n")
    with pytest.raises(sqlfile.SqlTemplateError, match=r"no value for placeholder\(s\) \['a'\]"):
        sqlfile.render(f, {})
    with pytest.raises(sqlfile.SqlTemplateError, match="not used"):
        sqlfile.render(f, {"a": "1", "b": "2"})


def test_every_sql_file_has_a_purpose_header() -> None:
    from streamlake.config import paths

    files = sorted(paths.SQL_DIR.rglob("*.sql"))
    assert files
    for f in files:
        assert sqlfile.purpose(f)
