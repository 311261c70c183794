"""Delta loader throughput: rows/s from a Kafka topic into a local Delta table, one process.

Produces N silver-like JSON rows to a fresh topic on the running local broker, then times one
loader run (read_committed, Arrow conversion, Delta commits with app transactions) until it has
committed them all. Writes bench/results/<date>-loader.{json,md}.

    make up && python -m bench.loader --events 500000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from bench.silver_parse import _cpu
from connectors import kafka
from streamlake.config import settings
from streamlake.lake.loader import Loader
from streamlake.lake.sink import DeltaSink

SCHEMA = pa.schema(
    [
        ("tenant_id", pa.string()),
        ("event_type", pa.string()),
        ("event_id", pa.string()),
        ("amount_cents", pa.int64()),
        ("event_at", pa.timestamp("ms", tz="UTC")),
    ]
)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=500_000)
    ap.add_argument("--flush-rows", type=int, default=50_000)
    args = ap.parse_args()
    bootstrap = settings.load_platform().kafka.bootstrap
    topic = f"bench_loader_{uuid.uuid4().hex[:8]}"
    kafka.create_topics(bootstrap, [topic], partitions=3)
    try:
        for start in range(0, args.events, 50_000):
            kafka.produce(
                bootstrap,
                topic,
                [
                    (
                        None,
                        json.dumps(
                            {
                                "tenant_id": "acme" if i % 3 else "globex",
                                "event_type": "orders",
                                "event_id": f"e{i}",
                                "amount_cents": i % 10_000,
                                "event_at": "2026-11-24T10:00:00.123Z",
                            }
                        ).encode(),
                    )
                    for i in range(start, min(start + 50_000, args.events))
                ],
            )
        with tempfile.TemporaryDirectory() as tmp:
            sink = DeltaSink("bench", (topic,), str(Path(tmp) / "bench"), SCHEMA, ("tenant_id",))
            committed = {"rows": 0, "commits": 0}

            def on_commit(_s: DeltaSink, n: int) -> None:  # rows of each commit
                committed["rows"] += n
                committed["commits"] += 1

            loader = Loader(
                bootstrap,
                f"bench-{uuid.uuid4().hex[:8]}",
                [sink],
                flush_rows=args.flush_rows,
                flush_ms=1000,
                instance_id=f"bench-{uuid.uuid4().hex[:8]}",
                on_commit=on_commit,
            )
            cpu0, t0 = time.process_time(), time.perf_counter()
            loader.run(idle_exit_s=2.0)
            wall = time.perf_counter() - t0 - 2.0  # less the idle wait that ends the run
            cpu = time.process_time() - cpu0
    finally:
        kafka.delete_topics(bootstrap, [topic])
    assert committed["rows"] == args.events, committed
    import deltalake
    import pyflink.version

    result: dict[str, Any] = {
        "date": datetime.now(tz=UTC).isoformat(timespec="seconds"),
        "events": args.events,
        "flush_rows": args.flush_rows,
        "commits": committed["commits"],
        "wall_seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "rows_per_second": round(args.events / wall),
        "rows_per_cpu_second": round(args.events / cpu),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "machine": {"cpus": os.cpu_count(), "processor": _cpu()},
        "versions": {
            "deltalake": deltalake.__version__,
            "pyarrow": pa.__version__,
            "flink": pyflink.version.__version__,
        },
    }
    out = Path(__file__).parent / "results" / f"{datetime.now(tz=UTC):%Y-%m-%d}-loader"
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(
        f"# Delta loader throughput, {result['date']}\n\n"
        f"{args.events} rows, {committed['commits']} commits of up to {args.flush_rows}, one process, "
        f"{result['machine']['cpus']} CPUs ({result['machine']['processor']}), deltalake "
        f"{deltalake.__version__}, pyarrow {pa.__version__}; broker on the same machine.\n\n"
        f"| wall s | CPU s | rows/s | rows per CPU-s | peak RSS MB |\n| ---: | ---: | ---: | ---: | ---: |\n"
        f"| {result['wall_seconds']} | {result['cpu_seconds']} | {result['rows_per_second']} | "
        f"{result['rows_per_cpu_second']} | {result['peak_rss_mb']} |\n"
    )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
