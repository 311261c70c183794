"""How many times the Silver job's execution plan parses each event (planning only, no data).

Flink's planner inlines a view into every query that reads it; where a shared sub-plan cannot be
reused, the JSON parsing behind it is repeated per consumer. This counts, in the optimized
execution plan of the Silver statement set, the Correlate operators (UNNEST materialisations),
JSON_QUERY and TRY_PARSE_JSON calls, and reused sub-plans; the bench/pipeline.py figures are read
against it. Writes bench/results/<date>-silver-plan.json.

    STREAMLAKE_PII_HASH_KEY=x python -m bench.silver_plan
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from jobs import catalog, flinkenv, settings, sqlfile


def main() -> int:
    plat = settings.load_platform()
    job = catalog.get("silver")
    t_env = flinkenv.table_env(plat, name="silver-plan", local=True)
    for k, v in job.table_config.items():
        t_env.get_config().set(k, v)
    stmts = t_env.create_statement_set()
    for st in sqlfile.split(job.render(plat, bounded=True)):
        body = "\n".join(ln for ln in st.splitlines() if not ln.strip().startswith("--"))
        if body.strip().upper().startswith("INSERT"):
            stmts.add_insert_sql(st)
        else:
            t_env.execute_sql(st)
    plan = stmts.explain()
    execution = plan.split("== Optimized Execution Plan ==")[1]
    sql = job.render(plat, bounded=True)
    date = datetime.now(UTC).isoformat(timespec="seconds")
    out = {
        "date": date,
        "in_the_sql": {
            "JSON_QUERY": sql.count("JSON_QUERY("),
            "TRY_PARSE_JSON": sql.count("TRY_PARSE_JSON("),
            "UNNEST": sql.count("UNNEST("),
        },
        "in_the_execution_plan": {
            "Correlate": execution.count("Correlate("),
            "JSON_QUERY": execution.count("JSON_QUERY("),
            "TRY_PARSE_JSON": execution.count("TRY_PARSE_JSON("),
            "Reused": execution.count("Reused"),
        },
    }
    res = Path(__file__).parent / "results" / f"{date[:10]}-silver-plan.json"
    res.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
