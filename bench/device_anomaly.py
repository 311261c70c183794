"""device_anomaly throughput: Silver readings/s and CPU through the Python DataStream job, local
executor, before and after issue #12 in one run.

Produces N Silver telemetry rows (many devices, readings every second, a little disorder, the
watermark columns the Silver job writes) to a fresh 3-partition topic on the running local broker,
then times bounded runs of the job over it (parse, per-partition watermarks, keyed state and
timers, exactly-once Kafka sink) from submission to the end of the job, one per variant:

    before    the detector before #12 (bench/device_anomaly_legacy.py: two timers per reading, the
              pending list rewritten per reading) in process mode, with the settings it had
    process   the current detector in process mode, with the same settings
    thread    the current job as it runs (thread mode)

Each variant first runs once untimed over a small corpus (one-off costs in this JVM), then over
the small corpus again to measure the fixed cost of a run (job start, Python start-up, the final
checkpoint), so that a marginal rate is reported too, then over the whole corpus. CPU is that of this process and its
descendants (the local executor's JVM; in process mode the Python worker runs in this process):
the broker's is not counted. Every variant must emit the same alerts. Writes
bench/results/<date>-device-anomaly.{json,md}.

    python -m bench.device_anomaly --events 50000 --parallelism 1
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import yaml

from bench.device_anomaly_legacy import LegacyDetect
from bench.silver_parse import _cpu
from connectors import kafka
from jobs import device_anomaly
from jobs.device_anomaly import topology
from streamlake.config import paths, settings

BASE = datetime(2026, 1, 1, tzinfo=UTC)
BOUND_MS = 5_000  # device_telemetry's watermark bound

# How the job ran before #12 (jobs/device_anomaly.stream_env then): process mode, bundles of
# 10,000 and a Python state cache above the devices a subtask owns.
PROCESS_MODE = {
    "python.execution-mode": "process",
    "python.fn-execution.bundle.size": "10000",
    "python.state.cache-size": "20000",
}
VARIANTS: dict[str, tuple[bool, dict[str, str]]] = {  # name: (legacy detector, settings)
    "before": (True, PROCESS_MODE),
    "process": (False, PROCESS_MODE),
    "thread": (False, {}),
}


def _ltz(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def rows(n: int, devices: int) -> list[tuple[bytes, bytes]]:
    """Silver rows as the Silver job writes them from one Bronze partition: each carries that
    partition's watermark (itself included) and the stream watermark before it."""
    out = []
    partition_wm: datetime | None = None
    for i in range(n):
        tenant = "acme" if i % 2 else "globex"
        device = f"dev-{i % devices}"
        # Device d's k-th reading at k seconds, sent up to 1.5 s out of order.
        at = BASE + timedelta(seconds=i // devices, milliseconds=(i * 7919) % 1500)
        value = 20.0 + ((i * 31) % 17) / 10 + (25.0 if i % 997 == 0 else 0.0)
        stream_wm = partition_wm
        clock = at - timedelta(milliseconds=BOUND_MS)
        partition_wm = clock if partition_wm is None else max(partition_wm, clock)
        row = {
            "tenant_id": tenant,
            "event_type": "device_telemetry",
            "schema_version": 1,
            "event_id": f"e{i}",
            "event_at": _ltz(at),
            "device_id": device,
            "temperature_c": value,
            "source_topic": "bronze_bench",
            "source_partition": 0,
            "source_offset": i,
            "ingest_at": at.strftime("%Y-%m-%dT%H:%M:%S") + "Z",
            "partition_watermark_at": _ltz(partition_wm),
            "stream_watermark_at": None if stream_wm is None else _ltz(stream_wm),
        }
        out.append((f"e{i}".encode(), json.dumps(row, separators=(",", ":")).encode()))
    return out


def _descendants(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                out += [int(child), *_descendants(int(child))]
    return out


def cpu_seconds() -> float:
    """User + system CPU of this process, its live descendants and the children they reaped."""
    total = 0
    for pid in [os.getpid(), *_descendants(os.getpid())]:
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(stat[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def detector(legacy: bool) -> Iterator[None]:
    if legacy:
        with mock.patch.object(topology, "Detect", LegacyDetect):
            yield
    else:
        yield


def one_run(conf: Path, silver: str, events: int, parallelism: int, variant: str) -> dict[str, Any]:
    """One bounded run of the job over the Silver topic `silver`, alerting to a topic of its own."""
    uid = uuid.uuid4().hex[:8]
    run_conf = conf.parent / f"conf-{uid}"
    shutil.copytree(conf, run_conf)
    alerts = f"alert_bench_{uid}"

    def edit(rel: str, **changes: Any) -> None:
        p = run_conf / rel
        p.write_text(yaml.safe_dump({**yaml.safe_load(p.read_text()), **changes}))

    edit("platform.yaml", pipeline_id=f"bench_{uid}")
    edit("event_types/device_telemetry.yaml", silver_topic=silver)
    edit("streams/device_anomaly.yaml", output_topic=alerts)
    platform = settings.load_platform(run_conf / "platform.yaml")
    bootstrap = platform.kafka.bootstrap
    kafka.create_topics(bootstrap, [alerts], partitions=3)
    legacy, extra = VARIANTS[variant]
    try:
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        with detector(legacy):
            client = device_anomaly.run(
                platform, run_conf, local=True, bounded=True, parallelism=parallelism, extra=extra
            )
        client.get_job_execution_result().result()
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        got = [
            json.loads(v or b"{}")
            for _k, v in kafka.read_committed(bootstrap, alerts, f"bench-{uid}")
        ]
    finally:
        kafka.delete_topics(bootstrap, [alerts])
    identities = sorted(json.dumps([a[f] for f in device_anomaly.ALERT_FIELDS[:7]]) for a in got)
    return {
        "variant": variant,
        "events": events,
        "wall_seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "alerts": len(got),
        "_identities": identities,
    }


def summarize(base: dict[str, Any], full: dict[str, Any]) -> dict[str, Any]:
    d_events = full["events"] - base["events"]
    return {
        "baseline": base,
        "run": full,
        "events_per_second": round(full["events"] / full["wall_seconds"]),
        "marginal_events_per_second": round(
            d_events / max(full["wall_seconds"] - base["wall_seconds"], 1e-9)
        ),
        "cpu_seconds_per_million": round(full["cpu_seconds"] / full["events"] * 1e6, 1),
        "marginal_cpu_seconds_per_million": round(
            (full["cpu_seconds"] - base["cpu_seconds"]) / d_events * 1e6, 1
        ),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--parallelism", type=int, default=1)
    ap.add_argument("--baseline-events", type=int, default=1_000)
    ap.add_argument("--variants", default=",".join(VARIANTS), help="of: " + ", ".join(VARIANTS))
    args = ap.parse_args()
    variants = args.variants.split(",")
    if unknown := set(variants) - set(VARIANTS):
        ap.error(f"unknown variants {sorted(unknown)}")
    uid = uuid.uuid4().hex[:8]
    platform = settings.load_platform(paths.CONF_DIR / "platform.yaml")
    bootstrap = platform.kafka.bootstrap
    topics = {n: f"silver_bench_{uid}_{n}" for n in (args.baseline_events, args.events)}
    kafka.create_topics(bootstrap, topics.values(), partitions=3)
    load = [os.getloadavg()[0]]
    results: dict[str, Any] = {}
    try:
        for n, topic in topics.items():
            data = rows(n, args.devices)
            for start in range(0, len(data), 50_000):
                kafka.produce(bootstrap, topic, data[start : start + 50_000])
        with tempfile.TemporaryDirectory() as tmp:
            conf = Path(tmp) / "conf"
            shutil.copytree(paths.CONF_DIR, conf)
            for v in variants:
                # Untimed: the first run of a variant in this JVM pays one-off costs (thread mode
                # starts the embedded interpreter and imports the job's modules into it).
                one_run(
                    conf, topics[args.baseline_events], args.baseline_events, args.parallelism, v
                )
                runs = [
                    one_run(conf, topics[n], n, args.parallelism, v)
                    for n in (args.baseline_events, args.events)
                ]
                results[v] = summarize(*runs)
                load.append(os.getloadavg()[0])
                print(v, {k: x for k, x in results[v].items() if k not in ("baseline", "run")})
    finally:
        kafka.delete_topics(bootstrap, topics.values())
    same = all(
        results[v][r]["_identities"] == results[variants[0]][r]["_identities"]
        for v in variants
        for r in ("baseline", "run")
    )
    for r in results.values():
        for k in ("baseline", "run"):
            r[k].pop("_identities")
    import pyflink.version

    result: dict[str, Any] = {
        "date": datetime.now(tz=UTC).isoformat(timespec="seconds"),
        "parallelism": args.parallelism,
        "devices": args.devices,
        "variants": results,
        "same_alerts_in_every_variant": same,
        "load_average_1m": [round(x, 2) for x in load],
        "machine": {"cpus": os.cpu_count(), "processor": _cpu()},
        "versions": {"flink": pyflink.version.__version__},
    }
    out = Path(__file__).parent / "results" / f"{datetime.now(tz=UTC):%Y-%m-%d}-device-anomaly"
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# device_anomaly throughput, {result['date']}",
        "",
        f"Bounded runs on the local executor, parallelism {args.parallelism}, {args.devices} "
        f"devices, 3 Silver partitions, {result['machine']['cpus']} CPUs "
        f"({result['machine']['processor']}), Flink {pyflink.version.__version__}; broker on the "
        "same machine, which other work shared (1-minute load average during the runs: "
        f"{', '.join(str(x) for x in result['load_average_1m'])}). Wall time from submission to "
        "the job's end, start-up and the final checkpoint included; the marginal figures subtract "
        f"a {args.baseline_events}-event run of the same variant. CPU: this process and its "
        "descendants (the local JVM; in process mode the Python worker runs in this process), "
        "not the broker. `before`: the detector before #12 in process mode; `process`: the "
        "current detector in process mode; `thread`: the job as it runs. Same alerts in every "
        f"variant: {'yes' if same else 'NO'}.",
        "",
        "| variant | events | wall s | CPU s | alerts | readings/s | marginal readings/s "
        "| CPU s per M readings | marginal CPU s per M |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for v, r in results.items():
        for k in ("baseline", "run"):
            x = r[k]
            tail = (
                f"{r['events_per_second']} | {r['marginal_events_per_second']} | "
                f"{r['cpu_seconds_per_million']} | {r['marginal_cpu_seconds_per_million']}"
                if k == "run"
                else f"{round(x['events'] / x['wall_seconds'])} | | "
                f"{round(x['cpu_seconds'] / x['events'] * 1e6, 1)} |"
            )
            lines.append(
                f"| {v} | {x['events']} | {x['wall_seconds']} | {x['cpu_seconds']} | "
                f"{x['alerts']} | {tail} |"
            )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
