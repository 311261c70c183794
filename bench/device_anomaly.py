"""device_anomaly throughput: Silver readings/s through the Python DataStream job, local executor.

Produces N Silver telemetry rows (many devices, readings every second, a little disorder) to a fresh
3-partition topic on the running local broker, then times one bounded run of the job (parse,
per-partition watermarks, keyed state and timers, exactly-once Kafka sink) from submission to the
end of the job. A small run first measures the fixed cost (JVM job start, Python workers, the
final checkpoint), so the marginal rate is reported too. Writes
bench/results/<date>-device-anomaly.{json,md}.

    make up && python -m bench.device_anomaly --events 50000 --parallelism 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from bench.silver_parse import _cpu
from connectors import kafka
from jobs import device_anomaly, paths, settings

BASE = datetime(2026, 1, 1, tzinfo=UTC)


def rows(n: int, devices: int) -> list[tuple[bytes, bytes]]:
    out = []
    for i in range(n):
        tenant = "acme" if i % 2 else "globex"
        device = f"dev-{i % devices}"
        # Device d's k-th reading at k seconds, sent up to 1.5 s out of order.
        at = BASE + timedelta(seconds=i // devices, milliseconds=(i * 7919) % 1500)
        value = 20.0 + ((i * 31) % 17) / 10 + (25.0 if i % 997 == 0 else 0.0)
        row = {
            "tenant_id": tenant,
            "event_type": "device_telemetry",
            "schema_version": 1,
            "event_id": f"e{i}",
            "event_at": at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "device_id": device,
            "temperature_c": value,
            "source_topic": "bronze_bench",
            "source_partition": 0,
            "source_offset": i,
            "ingest_at": at.strftime("%Y-%m-%dT%H:%M:%S") + "Z",
        }
        out.append((f"e{i}".encode(), json.dumps(row, separators=(",", ":")).encode()))
    return out


def one_run(events: int, devices: int, parallelism: int, tmp: Path) -> dict[str, Any]:
    uid = uuid.uuid4().hex[:8]
    conf = tmp / f"conf-{uid}"
    shutil.copytree(paths.CONF_DIR, conf)
    silver, alerts = f"silver_bench_{uid}", f"alert_bench_{uid}"

    def edit(rel: str, **changes: Any) -> None:
        p = conf / rel
        p.write_text(yaml.safe_dump({**yaml.safe_load(p.read_text()), **changes}))

    edit("platform.yaml", pipeline_id=f"bench_{uid}")
    edit("event_types/device_telemetry.yaml", silver_topic=silver)
    edit("streams/device_anomaly.yaml", output_topic=alerts)
    platform = settings.load_platform(conf / "platform.yaml")
    bootstrap = platform.kafka.bootstrap
    kafka.create_topics(bootstrap, [silver, alerts], partitions=3)
    try:
        data = rows(events, devices)
        for start in range(0, len(data), 50_000):
            kafka.produce(bootstrap, silver, data[start : start + 50_000])
        t0 = time.perf_counter()
        client = device_anomaly.run(
            platform, conf, local=True, bounded=True, parallelism=parallelism
        )
        client.get_job_execution_result().result()
        wall = time.perf_counter() - t0
        n_alerts = sum(1 for _ in kafka.read_committed(bootstrap, alerts, f"bench-{uid}"))
    finally:
        kafka.delete_topics(bootstrap, [silver, alerts])
    return {"events": events, "wall_seconds": round(wall, 2), "alerts": n_alerts}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--parallelism", type=int, default=1)
    ap.add_argument("--baseline-events", type=int, default=1_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = one_run(args.baseline_events, args.devices, args.parallelism, Path(tmp))
        full = one_run(args.events, args.devices, args.parallelism, Path(tmp))
    marginal = (full["events"] - base["events"]) / max(
        full["wall_seconds"] - base["wall_seconds"], 1e-9
    )
    import pyflink.version

    result: dict[str, Any] = {
        "date": datetime.now(tz=UTC).isoformat(timespec="seconds"),
        "parallelism": args.parallelism,
        "devices": args.devices,
        "baseline": base,
        "run": full,
        "events_per_second": round(full["events"] / full["wall_seconds"]),
        "marginal_events_per_second": round(marginal),
        "machine": {"cpus": os.cpu_count(), "processor": _cpu()},
        "versions": {"flink": pyflink.version.__version__},
    }
    out = Path(__file__).parent / "results" / f"{datetime.now(tz=UTC):%Y-%m-%d}-device-anomaly"
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(
        f"# device_anomaly throughput, {result['date']}\n\n"
        f"Bounded run on the local executor, parallelism {args.parallelism}, {args.devices} devices, "
        f"3 Silver partitions, {result['machine']['cpus']} CPUs ({result['machine']['processor']}), "
        f"Flink {pyflink.version.__version__}; broker on the same machine. Wall time from "
        "submission to the job's end, start-up and the final checkpoint included; the marginal rate "
        f"subtracts a {base['events']}-event run.\n\n"
        "| events | wall s | alerts | events/s | marginal events/s |\n"
        "| ---: | ---: | ---: | ---: | ---: |\n"
        f"| {base['events']} | {base['wall_seconds']} | {base['alerts']} | "
        f"{round(base['events'] / base['wall_seconds'])} | |\n"
        f"| {full['events']} | {full['wall_seconds']} | {full['alerts']} | "
        f"{result['events_per_second']} | {result['marginal_events_per_second']} |\n"
    )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
