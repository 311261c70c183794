"""How to parse and validate each Bronze record: the options behind the Silver job's design.

Each scenario runs in a fresh local executor (1 slot) over the same file of N events and writes to
a blackhole sink; wall time includes start-up, so the ratios are against the raw passthrough run
measured in the same invocation. CPU is the user+system time of the whole process tree (the
Python client, the JVM and any Python UDF workers), sampled from /proc. Net figures subtract the
raw passthrough run (start-up and reading): what the parsing itself costs per event.
Results go to bench/results/<date>-silver-parse.{json,md}.

The designs for the Silver job's per-record work, all on the same rules (compiled from conf/ by
streamlake.compile.silver.validate_config) and the same corpus:
  - silver_validate, the JVM table function in udfs/ (what the job runs),
  - the same checks in Python with orjson (bench/silver_validate_py.py, a prototype): as a pandas
    UDF over Arrow batches (process mode) and as a scalar UDF in thread mode,
  - the SQL it replaced is measured by its parts (JSON_QUERY/JSON_VALUE/TRY_PARSE_JSON scenarios).

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
import sysconfig
import tempfile
import threading
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


# The silver_validate output the UDF scenarios read: as many columns as the SQL scenarios produce.
_VALIDATED = (
    "route_reason, field_reasons, tenant_id, event_type, schema_version, event_id, {at}, "
    "device_id, temperature_c, humidity_pct, battery_ok"
)
_JVM_SELECT = (
    "v.route_reason, v.field_reasons, v.tenant_id, v.event_type, v.schema_version, v.event_id, "
    "v.event_at, v.typed_device_telemetry.device_id, v.typed_device_telemetry.temperature_c, "
    "v.typed_device_telemetry.humidity_pct, v.typed_device_telemetry.battery_ok "
    "FROM src CROSS JOIN LATERAL TABLE(silver_validate(line, '{topic}', CAST(NULL AS BYTES), "
    "TO_TIMESTAMP_LTZ({ingest_ms}, 3), '{config}')) AS v"
)
_PY_SELECT = "v.* FROM (SELECT silver_validate_py(line) AS v FROM src)"
# The Bronze clock (streamlake.compile.silver.event_clock: the JVM function silver_clock), which the job
# computes in the Kafka source (for its watermark) and again for partition_watermark_at.
_CLOCK_SELECT = "{clock} FROM (SELECT line AS raw_value, TO_TIMESTAMP_LTZ({ingest_ms}, 3) AS ingest_at FROM src)"

SCENARIOS: dict[str, tuple[str, str]] = {
    # name: (source format, SELECT list + FROM); formats raw-bytes, jvm, pandas, thread read the
    # file as BYTES (what Bronze is), raw as STRING.
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
    "raw + 9 JSON_QUERY, each used 3x, materialised by UNNEST (Silver before silver_validate)": (
        "raw",
        ", ".join(_three_refs(f) for f in FIELDS)
        + " FROM src CROSS JOIN UNNEST(ARRAY[ROW("
        + ", ".join(_wq(f) for f in FIELDS)
        + ")]) AS p("
        + ", ".join(f"w_{f}" for f in FIELDS)
        + ")",
    ),
    "silver_validate: JVM table function, one pass (the Silver job's way)": ("jvm", _JVM_SELECT),
    "Python + orjson, pandas UDF over Arrow batches (process mode)": ("pandas", _PY_SELECT),
    "Python + orjson, scalar UDF in thread mode": ("thread", _PY_SELECT),
    "the Bronze clock alone (silver_clock; the job evaluates it twice)": ("clock", _CLOCK_SELECT),
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
                    # One event in 20 is a field reject (humidity out of range).
                    "humidity_pct": 101 if i % 20 == 0 else rng.randrange(100),
                    "battery_ok": True,
                }
            )
            f.write(line + "\n")
            size += len(line) + 1
    return size


INGEST_MS = 1_767_312_000_000  # a day after the corpus' event times: none is in the future


def _rules() -> tuple[str, str]:
    """The validate_config of conf/ and a Bronze topic of acme, the corpus' tenant."""
    from streamlake.compile import silver as compiler
    from streamlake.config import paths, registry

    reg = registry.load_registry(paths.CONF_DIR)
    topic = next(t for t, owner in sorted(reg.topic_owner().items()) if owner == "acme")
    return compiler.validate_config(reg), topic


def run_one(fmt: str, select: str, path: str) -> None:
    from pyflink.table import EnvironmentSettings, TableEnvironment

    t = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    conf = t.get_config()
    conf.set("parallelism.default", "1")
    conf.set("table.local-time-zone", "UTC")
    schema = "line STRING" if fmt == "raw" else TYPED if fmt == "json" else "line BYTES"
    if fmt in ("jvm", "pandas", "thread"):
        config, topic = _rules()
    if fmt == "clock":
        from streamlake.compile import silver as compiler
        from streamlake.config import paths, registry

        clock = compiler.event_clock(registry.load_registry(paths.CONF_DIR))
        select = select.replace("{clock}", clock).replace("{ingest_ms}", str(INGEST_MS))
    if fmt in ("jvm", "clock"):
        from streamlake.runtime import flinkenv

        conf.set("pipeline.jars", ";".join(flinkenv.job_jars()))
        for name, cls in (("silver_validate", "SilverValidate"), ("silver_clock", "SilverClock")):
            t.execute_sql(
                f"CREATE TEMPORARY FUNCTION {name} AS 'io.streamlake.udfs.{cls}' LANGUAGE JAVA"
            )
    if fmt == "jvm":
        select = select.format(topic=topic, ingest_ms=INGEST_MS, config=config.replace("'", "''"))
    elif fmt in ("pandas", "thread"):
        from bench import silver_validate_py as py

        conf.set("python.executable", sys.executable)
        conf.set("python.files", str(Path(py.__file__)))
        if fmt == "thread":
            conf.set("python.execution-mode", "thread")
            fn = py.scalar_udf(config, topic, INGEST_MS)
        else:
            conf.set("python.fn-execution.arrow.batch.size", "10000")
            fn = py.pandas_udf(config, topic, INGEST_MS)
        t.create_temporary_function("silver_validate_py", fn)
    src_fmt = "json" if fmt == "json" else "raw"
    t.execute_sql(
        f"CREATE TABLE src ({schema}) WITH ('connector'='filesystem','path'='{path}',"
        f"'format'='{src_fmt}')"
    )
    n_cols = len(t.sql_query(f"SELECT {select}").get_schema().get_field_names())
    cols = ", ".join(f"c{i} STRING" for i in range(n_cols))
    t.execute_sql(f"CREATE TABLE snk ({cols}) WITH ('connector'='blackhole')")
    casted = f"SELECT * FROM (SELECT {select})"
    proj = ", ".join(
        f"CAST(`{c}` AS STRING)" for c in t.sql_query(casted).get_schema().get_field_names()
    )
    t.execute_sql(f"INSERT INTO snk SELECT {proj} FROM ({casted})").wait()


class TreeCpu:
    """User+system CPU seconds of a process and all its descendants, sampled from /proc (a
    descendant's last sample counts, so a process that lives under one interval is missed)."""

    def __init__(self, pid: int, interval_s: float = 0.1) -> None:
        self.pid, self.interval_s = pid, interval_s
        self.seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._tick = os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> TreeCpu:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def seconds(self) -> float:
        return sum(self.seen.values())

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval_s)

    def _sample(self) -> None:
        parent: dict[int, int] = {}
        cpu: dict[int, float] = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            parent[int(d)] = int(fields[1])
            cpu[int(d)] = (int(fields[11]) + int(fields[12])) / self._tick
        for p in cpu:
            q = p
            while q in parent and q != self.pid and q > 1:
                q = parent[q]
            if q == self.pid:
                self.seen[p] = max(self.seen.get(p, 0.0), cpu[p])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--one", nargs=3, metavar=("FMT", "SELECT", "PATH"))
    ap.add_argument("--only", nargs="*", help="run the scenarios whose names contain these")
    ap.add_argument("--render", type=Path, help="rewrite the .md of a results .json")
    ap.add_argument("--tag", default="", help="results/<date>-silver-parse<tag>.{json,md}")
    args = ap.parse_args()
    if args.render:
        write_md(args.render.with_suffix(""), json.loads(args.render.read_text()))
        return 0
    if args.one:
        run_one(*args.one)
        return 0
    import pyflink.version

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "events.jsonl"
        size = make_events(data, args.events)
        results: list[dict[str, Any]] = []
        # Thread mode runs Python inside the JVM (pemja): it finds the venv's packages and this
        # checkout only through PYTHONPATH.
        site = sysconfig.get_paths()["purelib"]
        root = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([site, root])}
        for name, (fmt, select) in SCENARIOS.items():
            # The raw passthrough always runs: the other figures are read against it.
            if args.only and results and not any(o in name for o in args.only):
                continue
            t0 = time.perf_counter()
            argv = [sys.executable, "-m", "bench.silver_parse", "--one", fmt, select, str(data)]
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
            with TreeCpu(proc.pid) as cpu:
                _, err = proc.communicate()
            secs = time.perf_counter() - t0
            if proc.returncode != 0:
                print(err.decode()[-3000:], file=sys.stderr)
                raise SystemExit(f"scenario failed: {name}")
            results.append(
                {
                    "scenario": name,
                    "seconds": round(secs, 2),
                    "cpu_seconds": round(cpu.seconds(), 2),
                    "events_per_s": round(args.events / secs),
                }
            )
            print(f"{secs:7.2f}s {cpu.seconds():7.2f} cpu-s  {name}", flush=True)
    base = results[0]
    for r in results:
        r["vs_raw_passthrough"] = round(r["seconds"] / base["seconds"], 2)
        net_s = r["seconds"] - base["seconds"]
        net_cpu = r["cpu_seconds"] - base["cpu_seconds"]
        # The parsing alone, over the passthrough run: events/s and CPU microseconds per event.
        r["net_events_per_s"] = round(args.events / net_s) if net_s > 0.05 else None
        r["net_cpu_us_per_event"] = round(net_cpu / args.events * 1e6, 1)
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
        "note": "wall time of a fresh local executor incl. start-up; compare within one run; "
        "cpu: user+system of the process tree; net: over the raw passthrough run",
        "command": " ".join(["python -m bench.silver_parse", *sys.argv[1:]]),
    }
    out = (
        Path(__file__).parent
        / "results"
        / f"{datetime.now(tz=UTC):%Y-%m-%d}-silver-parse{args.tag}"
    )
    out.with_suffix(".json").write_text(json.dumps({**meta, "results": results}, indent=2) + "\n")
    write_md(out, {**meta, "results": results})
    print(f"wrote {out}.json and .md")
    return 0


def write_md(out: Path, data: dict[str, Any]) -> None:
    """The report beside the JSON (python -m bench.silver_parse --render <json> redoes it)."""
    machine, versions, results = data["machine"], data["versions"], data["results"]
    lines = [
        f"# Silver JSON parsing options, {data['date']}",
        "",
        f"{data['events']} events ({data['bytes']} bytes), 1 slot, {machine['cpus']} CPUs "
        f"({machine['processor']}), Flink {versions['flink']}, {versions['java']}.",
        "Wall time of a fresh local executor including start-up; CPU is user+system of the whole",
        "process tree (client, JVM, Python workers). Net: minus the raw passthrough run, i.e. what",
        "the parsing and checking cost on top of reading the file. On a shared machine wall time",
        "follows the other load; compare the CPU figures.",
        f"Command: `{data['command']}`.",
        "",
        "| scenario | wall s | events/s (wall) | CPU s | net CPU µs/event "
        "| net events per CPU-second |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        us = r["net_cpu_us_per_event"]
        per_cpu_s = f"{round(1e6 / us):,}" if us > 0.5 else "-"
        lines.append(
            f"| {r['scenario']} | {r['seconds']} | {r['events_per_s']:,} | {r['cpu_seconds']} "
            f"| {us} | {per_cpu_s} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


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
