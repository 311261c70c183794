"""The one runner for SQL files: render `${placeholders}` from validated config, split, execute.

A job is a SQL file under sql/ whose first line is `-- Purpose: ...`. Python never glues SQL from
fragments: it only fills placeholders (values and connector WITH bodies) and runs the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_BLOCK_COMMENT = re.compile(r"/\*(?!\+).*?\*/", re.DOTALL)  # not /*+ hints */


class SqlTemplateError(Exception):
    pass


def purpose(path: Path) -> str:
    first = path.read_text(encoding="utf-8").splitlines()[0] if path.exists() else ""
    if not first.startswith("-- Purpose:"):
        raise SqlTemplateError(f"{path}: first line must be '-- Purpose: <one line>'")
    return first[len("-- Purpose:") :].strip()


def placeholders(text: str) -> set[str]:
    return set(_PLACEHOLDER.findall(text))


def render(path: Path, params: Mapping[str, str]) -> str:
    """Fill every `${name}`; a missing or unused parameter is an error (typos do not pass)."""
    purpose(path)
    text = path.read_text(encoding="utf-8")
    wanted = placeholders(text)
    missing = sorted(wanted - params.keys())
    unused = sorted(params.keys() - wanted)
    if missing:
        raise SqlTemplateError(f"{path}: no value for placeholder(s) {missing}")
    if unused:
        raise SqlTemplateError(f"{path}: parameter(s) {unused} are not used by the file")
    # Only ${name} is a placeholder: a lone $ (regex anchors, JSON paths) stays as it is, and
    # substituted values are not scanned again.
    return _PLACEHOLDER.sub(lambda m: params[m.group(1)], text)


def split(sql: str) -> list[str]:
    """Split a script on top-level semicolons, respecting quotes and comments."""
    out: list[str] = []
    buf: list[str] = []
    i, n = 0, len(sql)
    quote: str | None = None
    while i < n:
        ch = sql[i]
        if quote:
            buf.append(ch)
            if ch == quote:
                if i + 1 < n and sql[i + 1] == quote:  # doubled quote is an escaped quote
                    buf.append(sql[i + 1])
                    i += 1
                else:
                    quote = None
        elif ch in ("'", '"', "`"):
            quote = ch
            buf.append(ch)
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            j = n if j == -1 else j
            buf.append(sql[i:j])
            i = j
            continue
        elif sql.startswith("/*", i) and not sql.startswith("/*+", i):
            j = sql.find("*/", i + 2)
            j = n if j == -1 else j + 2
            buf.append(sql[i:j])
            i = j
            continue
        elif ch == ";":
            out.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
        i += 1
    out.append("".join(buf))
    return [s.strip() for s in out if _code(s)]


def _code(stmt: str) -> str:
    """The statement without comments and blank lines (empty if it is only comments)."""
    stmt = _BLOCK_COMMENT.sub(" ", stmt)
    lines = [ln for ln in stmt.splitlines() if ln.strip() and not ln.strip().startswith("--")]
    return "\n".join(lines).strip()


def is_insert(stmt: str) -> bool:
    return _code(stmt).upper().startswith(("INSERT ", "EXECUTE "))


def is_create_table(stmt: str) -> bool:
    return bool(re.match(r"CREATE\s+(TEMPORARY\s+)?TABLE\b", _code(stmt), re.IGNORECASE))


def is_create_function(stmt: str) -> bool:
    return bool(
        re.match(r"CREATE\s+(TEMPORARY\s+)?(SYSTEM\s+)?FUNCTION\b", _code(stmt), re.IGNORECASE)
    )


_TEMPORARY_VIEW = re.compile(
    r"CREATE\s+TEMPORARY\s+VIEW\s+(`?[A-Za-z_][A-Za-z0-9_]*`?)\s+AS\s+(.*)\Z",
    re.IGNORECASE | re.DOTALL,
)


def temporary_view(stmt: str) -> tuple[str, str] | None:
    """(name, query) of a `CREATE TEMPORARY VIEW name AS query`, else None."""
    m = _TEMPORARY_VIEW.match(_code(stmt))
    return (m.group(1).strip("`"), m.group(2)) if m else None


def statement_set(t_env: Any, sql: str) -> Any:
    """Run the DDL now and put every INSERT into one statement set, so one job writes all outputs.

    A `CREATE TEMPORARY VIEW` is registered as the Table of its query, not as SQL text. Flink
    expands a SQL view again inside every statement that reads it, each expansion with its own
    correlation variables, so a view read by four INSERTs ran four times and nothing could be
    shared (the Silver job parsed each event about 20 times: `python -m bench.silver_plan`). The
    Table holds one converted plan; every reader gets that same plan node, and the optimizer
    makes it one sub-graph whose output feeds all of them. The SQL client runs the same file
    with SQL views: same results, more work.
    """
    stmts = split(sql)
    inserts = [s for s in stmts if is_insert(s)]
    if not inserts:
        raise SqlTemplateError("the script has no INSERT: nothing to run")
    for s in stmts:
        if is_insert(s):
            continue
        view = temporary_view(s)
        if view is not None:
            t_env.create_temporary_view(view[0], t_env.sql_query(view[1]))
        else:
            t_env.execute_sql(s)
    stmt_set = t_env.create_statement_set()
    for s in inserts:
        stmt_set.add_insert_sql(s)
    return stmt_set


def execute(t_env: Any, sql: str) -> Any:
    """Run a job script (see `statement_set`); returns the TableResult of the submitted job."""
    return statement_set(t_env, sql).execute()
