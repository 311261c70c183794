"""How many times the Silver job's execution plan parses each event (planning only, no data).

Flink's planner expands a SQL view inside every statement that reads it, and each expansion of a
CROSS JOIN UNNEST gets its own correlation variable, so no two expansions look alike and none is
shared: the JSON parsing behind a view read by four INSERTs runs four times (more, as views stack).
The job runner (`streamlake.compile.sqlfile.statement_set`) registers each view as the Table of its query
instead, so every reader gets the same plan node and the optimizer shares it.

This plans the Silver statement set both ways and counts, in each optimized execution plan, the
Correlate operators (UNNEST materialisations and the LATERAL TABLE of silver_validate, the JVM
function that parses each record once), the silver_validate, JSON_VALUE (the Bronze partition
clock), JSON_QUERY and TRY_PARSE_JSON calls they and the Calcs evaluate (a Correlate prints its
call twice; counted once), and reused sub-plans. The bench/pipeline.py figures are read against it. Writes bench/results/<date>-silver-plan.json.

    STREAMLAKE_PII_HASH_KEY=x python -m bench.silver_plan
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jobs import catalog
from streamlake.compile import sqlfile
from streamlake.config import settings
from streamlake.runtime import flinkenv


def count_calls(execution_plan: str) -> dict[str, int]:
    out = {
        "Correlate": 0,
        "silver_validate": 0,
        "JSON_VALUE": 0,
        "JSON_QUERY": 0,
        "TRY_PARSE_JSON": 0,
        "Reused": 0,
    }
    for line in execution_plan.splitlines():
        if "Correlate(" in line:
            out["Correlate"] += 1
            line = line.split(", correlate=[", 1)[0]
        out["silver_validate"] += line.count("silver_validate(")
        out["JSON_VALUE"] += line.count("JSON_VALUE(")
        out["JSON_QUERY"] += line.count("JSON_QUERY(")
        out["TRY_PARSE_JSON"] += line.count("TRY_PARSE_JSON(")
        out["Reused"] += line.count("Reused(")
    return out


def _plan(sql: str, *, sql_views: bool) -> str:
    plat = settings.load_platform()
    job = catalog.get("silver")
    t_env = flinkenv.table_env(plat, name="silver-plan", local=True)
    for k, v in job.table_config.items():
        t_env.get_config().set(k, v)
    if not sql_views:
        stmts: Any = sqlfile.statement_set(t_env, sql)
    else:
        stmts = t_env.create_statement_set()
        for st in sqlfile.split(sql):
            if sqlfile.is_insert(st):
                stmts.add_insert_sql(st)
            else:
                t_env.execute_sql(st)
    plan: str = stmts.explain()
    return plan.split("== Optimized Execution Plan ==")[1]


def main() -> int:
    plat = settings.load_platform()
    sql = catalog.get("silver").render(plat, bounded=True)
    date = datetime.now(UTC).isoformat(timespec="seconds")
    out = {
        "date": date,
        "in_the_sql": {
            "silver_validate": sql.count("silver_validate("),
            "JSON_VALUE": sql.count("JSON_VALUE("),
            "JSON_QUERY": sql.count("JSON_QUERY("),
            "TRY_PARSE_JSON": sql.count("TRY_PARSE_JSON("),
            "UNNEST": sql.count("UNNEST("),
        },
        "execution_plan_as_run": count_calls(_plan(sql, sql_views=False)),
        "execution_plan_with_sql_views": count_calls(_plan(sql, sql_views=True)),
    }
    res = Path(__file__).parent / "results" / f"{date[:10]}-silver-plan.json"
    res.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
