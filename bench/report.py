"""The benchmark's report: the machine, charts and the Markdown written beside the JSON in
bench/results/."""

from __future__ import annotations

import itertools
import json
import os
import platform as pyplatform
from pathlib import Path
from typing import Any

from streamlake.config import paths

RESULTS = paths.REPO / "bench" / "results"


def machine() -> dict[str, Any]:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        "?",
    )
    import importlib.metadata as md

    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": pyplatform.python_version(),
        "apache-flink": md.version("apache-flink"),
        "kafka": "4.1.1",
        "deltalake": md.version("deltalake"),
        "confluent-kafka": md.version("confluent-kafka"),
    }


def charts(results: dict[str, Any], stem: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, r in results["scenarios"].items():
        for job, series in r.get("capacity", {}).get("series", {}).items():
            if len(series) > 1:
                xs = [t for t, _ in series[1:]]
                ys = [
                    (b - a) / max(tb - ta, 1e-9) for (ta, a), (tb, b) in itertools.pairwise(series)
                ]
                ax.plot(xs, ys, label=f"{name}: {job}")
    ax.set_xlabel("seconds since the jobs started")
    ax.set_ylabel("records read / s (Flink: source metric per job; Spark: committed batches)")
    ax.set_title("Throughput over time (pre-loaded Bronze)")
    ax.legend()
    out.append(_save(fig, stem, "throughput"))

    fig, ax = plt.subplots(figsize=(8, 4.5))
    labels, p50, p95, p99 = [], [], [], []
    for name, r in results["scenarios"].items():
        for k, v in r.get("latency", {}).items():
            if isinstance(v, dict) and v.get("p50") is not None:
                labels.append(f"{name}\n{k.removesuffix('_ms')}")
                p50.append(v["p50"])
                p95.append(v["p95"])
                p99.append(v["p99"])
    xs = list(range(len(labels)))
    w = 0.27
    ax.bar([x - w for x in xs], p50, w, label="p50")
    ax.bar(list(xs), p95, w, label="p95")
    ax.bar([x + w for x in xs], p99, w, label="p99")
    ax.set_xticks(list(xs), labels, fontsize=7)
    ax.set_ylabel("ms from event creation to visible (read_committed)")
    ax.set_title("End-to-end latency at half the measured capacity")
    ax.legend()
    out.append(_save(fig, stem, "latency"))
    return out


def _save(fig: Any, stem: Path, what: str) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    p = stem.with_name(f"{stem.name}-{what}.png")
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p.name


def markdown(results: dict[str, Any], pngs: list[str]) -> str:
    m = results["machine"]
    lines = [
        f"# Pipeline benchmark, {results['started_at']}",
        "",
        f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['mem_gib']} GiB; Python {m['python']}, "
        f"Flink {m['apache-flink']} (PyFlink), Kafka {m['kafka']}, deltalake {m['deltalake']}. "
        f"Everything on this one machine. Settings: {json.dumps(results['settings'])}.",
        "",
        "Throughput: events pre-loaded to Bronze / seconds until every job of the scenario has "
        "processed them (a downstream job: every row its upstream committed). Latencies are "
        "p50 / p95 / p99 in ms at half that rate: from event creation to the Silver (or baseline) "
        "record visible in Kafka with read_committed, to the Silver row visible in Delta, to the "
        "alert visible in Kafka (from the last event of the match; absence rules left out, see "
        "below); Gold is from the window's end to its row visible in Delta (the watermark bound, "
        "5 s, is part of it). Kept up: after the last event was sent, every job had processed "
        "everything within two checkpoint intervals + 5 s.",
        "",
        "| scenario | events/s | first job steady events/s | catch-up s by job | CPU s / M events | kept up (drain s) | output (Kafka) | Silver (Delta) | alert (Kafka) | Gold (Delta) after window end | Delta files/min |",
        "| --- | ---: | ---: | --- | ---: | --- | --- | --- | --- | --- | ---: |",
    ]
    for name, r in results["scenarios"].items():
        c, lat = r.get("capacity", {}), r.get("latency", {})

        def trio(k: str, lat: dict[str, Any] = lat) -> str:
            v = lat.get(k) or {}
            return f"{v.get('p50')} / {v.get('p95')} / {v.get('p99')}" if v else "-"

        by_job = ", ".join(f"{k} {v}" for k, v in (c.get("catch_up_s_by_job") or {}).items())
        lines.append(
            f"| {name} | {c.get('events_per_s')} | {c.get('first_job_steady_events_per_s')} | "
            f"{by_job} | {c.get('cpu_s_per_million_events')} | "
            f"{lat.get('kept_up')} ({lat.get('drain_after_last_send_s')}) | "
            f"{trio('silver_or_output_ms')} | {trio('silver_delta_ms')} | {trio('alert_ms')} | "
            f"{trio('gold_delta_after_window_end_ms')} | {lat.get('delta_files_per_min', '-')} |"
        )
    if results.get("targets"):
        lines += [
            "",
            "Targets (issue 12), from pipeline_eo, silver_alone and peer of this run:",
            "",
        ]
        lines += ["| target | measured | bound | met |", "| --- | ---: | ---: | --- |"]
        for t in results["targets"]:
            met = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
            lines.append(f"| {t['target']} | {t['measured']} | {t['bound']} | {met} |")
    lines += ["", "Ratios within this run:", ""]
    for k, v in results["ratios"].items():
        lines.append(f"- {k}: {v}")
    lines += ["", "Alert latency by rule (ms from the last event of the match, p50 / p99, n):", ""]
    for name, r in results["scenarios"].items():
        lat = r.get("latency", {})
        for rule, v in (lat.get("alert_ms_by_rule") or {}).items():
            left = " (absence: fires a gap after the last event; not in the alert column)"
            lines.append(
                f"- {name}, {rule}: {v['p50']} / {v['p99']} (n={v['n']})"
                + (left if rule in lat.get("alert_rules_left_out", []) else "")
            )
        if lat.get("gold_windows_early_partial"):
            lines.append(
                f"- {name}: {lat['gold_windows_early_partial']} Gold windows appeared before their "
                "end holding only late rows (allowed lateness revises a window at once); they are "
                "measured when the window fired"
            )
    lines += [
        "",
        "Scaling and CPU by job: TaskManager CPU µs per pre-loaded Bronze event, by the job whose "
        "threads used it (jstack's thread CPU; `taskmanager (shared)`: GC, JIT, RPC, checkpoint "
        "I/O), and the TaskManager's uptime when the scenario started:",
        "",
        "| scenario | parallelism | TaskManagers | events/s | CPU s / M events (all processes) "
        "| TaskManager CPU µs / event by job | TM uptime at start (s) |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for name, r in results["scenarios"].items():
        c = r.get("capacity", {})
        by = ", ".join(f"{k} {v}" for k, v in (c.get("cpu_us_per_event_by_job") or {}).items())
        lines.append(
            f"| {name} | {r.get('parallelism') or results['settings'].get('parallelism')} | "
            f"{r.get('taskmanagers', 1)} | {c.get('events_per_s')} | "
            f"{c.get('cpu_s_per_million_events')} | {by or '-'} | "
            f"{c.get('taskmanager_uptime_s_at_start')} |"
        )
    lines += ["", "The TaskManager's shared CPU seconds, by thread group (the largest):", ""]
    for name, r in results["scenarios"].items():
        top = r.get("capacity", {}).get("taskmanager_shared_cpu_s_top") or []
        if top:
            lines.append(f"- {name}: " + ", ".join(f"`{k}` {v}" for k, v in top))
    lines += ["", "Peak RSS (MB) and CPU seconds per process during the capacity run:", ""]
    for name, r in results["scenarios"].items():
        c = r.get("capacity", {})
        lines.append(f"- {name}: RSS {c.get('peak_rss_mb')}, CPU {c.get('cpu_s_by_process')}")
    lines += [
        "",
        "Where the time goes (per job, at the end of the latency run: busy ms/s per vertex; "
        "hottest frames of the busiest):",
        "",
    ]
    for name, r in results["scenarios"].items():
        for job, prof in (r.get("profile") or {}).items():
            for v in prof.get("vertices", []):
                lines.append(
                    f"- {name} / {job}: {v['busy_ms_per_s']:.0f} ms/s busy, "
                    f"{v['backpressured_ms_per_s']} ms/s back-pressured: `{v['name']}`"
                )
            for share, frame in prof.get("busiest_frames_share", [])[:14]:
                lines.append(f"  - {share:.0%} `{frame}`")
    lines += ["", "Checkpoints (end-to-end duration):", ""]
    for name, r in results["scenarios"].items():
        lines.append(f"- {name}: {r.get('checkpoints')}")
    lines += [""] + [f"![{p}]({p})" for p in pngs] + [""]
    return "\n".join(lines)
