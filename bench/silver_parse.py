"""How to parse and validate JSON in the JVM: the options behind the Silver job's design.

Each scenario runs in a fresh local executor (1 slot) over the same file of N events and writes to
a blackhole sink; wall time includes start-up, so the ratios are against the raw passthrough run
measured in the same invocation. Results go to bench/results/<date>-silver-parse.{json,md}.

    make bench            # N=300000
    python -m bench.silver_parse --events 100000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FIELDS = [
    "tenant_id",
    "event_type",
    "schema_version",
    "event_id",
    "event_time",
    "device_id",
    "temperature_c",
    "humidity_pct",
    "battery_ok",
]
TYPED = (
    "tenant_id STRING, event_type STRING, schema_version INT, event_id STRING, "
    "event_time BIGINT, device_id STRING, temperature_c DOUBLE, humidity_pct INT, battery_ok BOOLEAN"
)


def _wq(f: str) -> str:
    return f"JSON_QUERY(line, '$.{f}' WITH UNCONDITIONAL ARRAY WRAPPER)"


def _three_refs(f: str) -> str:
    return (
        f"CASE WHEN w_{f} IS NULL THEN 'missing' WHEN w_{f} LIKE '[\"%' "
        f"THEN SUBSTRING(w_{f} FROM 3) ELSE w_{f} END"
    )


SCENARIOS: dict[str, tuple[str, str]] = {
    # name: (source format, SELECT list + FROM)
    "raw passthrough": ("raw", "line FROM src"),
    "typed json format (parse once; no bytes, no reasons)": (
        "json",
        ", ".join(FIELDS) + " FROM src",
    ),
    "raw + TRY_PARSE_JSON (strict: duplicate keys, NaN)": (
        "raw",
        "TRY_PARSE_JSON(line) IS NULL FROM src",
    ),
    "raw + 9 JSON_VALUE": (
        "raw",
        ", ".join(f"JSON_VALUE(line, '$.{f}')" for f in FIELDS) + " FROM src",
    ),
    "raw + 9 JSON_QUERY, each used 3x, inlined by the planner": (
        "raw",
        ", ".join(_three_refs(f) for f in FIELDS)
        + " FROM (SELECT "
        + ", ".join(f"{_wq(f)} AS w_{f}" for f in FIELDS)
        + " FROM src)",
    ),
    "raw + 9 JSON_QUERY, each used 3x, materialised by UNNEST (Silver's way)": (
        "raw",
        ", ".join(_three_refs(f) for f in FIELDS)
        + " FROM src CROSS JOIN UNNEST(ARRAY[ROW("
        + ", ".join(_wq(f) for f in FIELDS)
        + ")]) AS p("
        + ", ".join(f"w_{f}" for f in FIELDS)
        + ")",
    ),
}


def make_events(path: Path, n: int) -> int:
    rng = random.Random(1)  # benchmark data, seeded
    size = 0
    with path.open("w") as f:
        for i in range(n):
            line = json.dumps(
                {
                    "tenant_id": "acme",
                    "event_type": "device_telemetry",
                    "schema_version": 1,
                    "event_id": f"e{i}",
                    "event_time": 1767225600000 + i,
                    "device_id": f"dev-{rng.randrange(100)}",
                    "temperature_c": round(rng.uniform(-10, 40), 2),
                    "humidity_pct": rng.randrange(100),
                    "battery_ok": True,
                }
            )
            f.write(line + "\n")
            size += len(line) + 1
    return size


def run_one(fmt: str, select: str, path: str) -> None:
    from pyflink.table import EnvironmentSettings, TableEnvironment

    t = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    t.get_config().set("parallelism.default", "1")
    schema = "line STRING" if fmt == "raw" else TYPED
    t.execute_sql(
        f"CREATE TABLE src ({schema}) WITH ('connector'='filesystem','path'='{path}','format'='{fmt}')"
    )
    n_cols = len(t.sql_query(f"SELECT {select}").get_schema().get_field_names())
    cols = ", ".join(f"c{i} STRING" for i in range(n_cols))
    t.execute_sql(f"CREATE TABLE snk ({cols}) WITH ('connector'='blackhole')")
    casted = f"SELECT * FROM (SELECT {select})"
    proj = ", ".join(
        f"CAST(`{c}` AS STRING)" for c in t.sql_query(casted).get_schema().get_field_names()
    )
    t.execute_sql(f"INSERT INTO snk SELECT {proj} FROM ({casted})").wait()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--one", nargs=3, metavar=("FMT", "SELECT", "PATH"))
    args = ap.parse_args()
    if args.one:
        run_one(*args.one)
        return 0
    import pyflink.version

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "events.jsonl"
        size = make_events(data, args.events)
        results: list[dict[str, Any]] = []
        for name, (fmt, select) in SCENARIOS.items():
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "bench.silver_parse", "--one", fmt, select, str(data)],
                check=True,
                capture_output=True,
            )
            secs = time.perf_counter() - t0
            results.append({"scenario": name, "seconds": round(secs, 2)})
            print(f"{secs:7.2f}s  {name}", flush=True)
    base = results[0]["seconds"]
    for r in results:
        r["vs_raw_passthrough"] = round(r["seconds"] / base, 2)
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[
        0
    ]
    meta = {
        "date": datetime.now(tz=UTC).isoformat(timespec="seconds"),
        "events": args.events,
        "bytes": size,
        "parallelism": 1,
        "machine": {"cpus": os.cpu_count(), "processor": _cpu(), "platform": platform.platform()},
        "versions": {
            "flink": pyflink.version.__version__,
            "python": platform.python_version(),
            "java": java,
        },
        "note": "wall time of a fresh local executor incl. start-up; compare within one run",
    }
    out = Path(__file__).parent / "results" / f"{datetime.now(tz=UTC):%Y-%m-%d}-silver-parse"
    out.with_suffix(".json").write_text(json.dumps({**meta, "results": results}, indent=2) + "\n")
    lines = [
        f"# Silver JSON parsing options, {meta['date']}",
        "",
        f"{args.events} events ({size} bytes), 1 slot, {meta['machine']['cpus']} CPUs "
        f"({meta['machine']['processor']}), Flink {meta['versions']['flink']}, {java}.",
        "Wall time of a fresh local executor including start-up.",
        "",
        "| scenario | seconds | vs raw passthrough |",
        "| --- | ---: | ---: |",
    ]
    lines += [f"| {r['scenario']} | {r['seconds']} | {r['vs_raw_passthrough']}x |" for r in results]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out}.json and .md")
    return 0


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    raise SystemExit(main())
