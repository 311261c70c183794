"""`python -m jobs <command>`: the single entry point the Makefile wraps."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from streamlake.config import loader as config
from streamlake.config import paths


def _platform(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from streamlake.config import settings

    conf: Path | None = args.conf
    return settings.load_platform(conf / "platform.yaml" if conf else None)


def cmd_up(args: argparse.Namespace) -> int:
    from streamlake.stack import control

    for line in control.up(_platform(args), flink=not args.kafka_only, conf_dir=args.conf):
        print(line)
    return 0


def cmd_supervise(args: argparse.Namespace) -> int:
    """The supervisor process itself (started by `up`, stopped by `down`); not for users."""
    from streamlake.stack import supervisor

    return supervisor.main(_platform(args), args.components, args.conf)


def cmd_down(args: argparse.Namespace) -> int:
    from streamlake.stack import control

    for line in control.down():
        print(line)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Exit 1 if a job of the cluster has FAILED (its root cause is printed beside it)."""
    from streamlake.stack import cluster, control, processes

    platform = _platform(args)
    for line in control.status(platform):
        print(line)
    failed = cluster.failed_jobs(platform) if processes.owned("flink-jobmanager") else []
    if failed:
        print(f"error: {len(failed)} job(s) FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from jobs import catalog

    platform = _platform(args)
    jobs = catalog.jobs(args.conf)
    names = [args.job] if args.job else sorted(jobs)
    for name in names:
        job = catalog.get(name, args.conf)
        print(f"-- ===== job {job.name}: {job.sql_file.relative_to(paths.REPO)} =====")
        for k, v in job.table_config.items():
            print(f"SET '{k}' = '{v}';")
        for et, ms in sorted(job.dedup_ttl_ms.items()):
            print(f"-- compiled plan: the deduplicate operator of {et} keeps state {ms} ms")
        print(job.render(platform, bounded=args.bounded, redact=True))
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from connectors import kafka
    from jobs import catalog

    platform = _platform(args)
    configs = {t: c for j in catalog.jobs(args.conf).values() for t, c in j.topic_configs().items()}
    for topic, cfg in sorted(configs.items()):
        kafka.create_topics(
            platform.kafka.bootstrap, [topic], platform.kafka.default_partitions, topic_config=cfg
        )
    print("topics: " + ", ".join(sorted(configs)))
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from streamlake.runtime import submit

    job_id = submit.submit(
        args.job,
        _platform(args),
        bounded=args.bounded,
        parallelism=args.parallelism,
        conf_dir=args.conf,
        savepoint=getattr(args, "from_savepoint", None),
    )
    print(f"submitted {args.job}: Flink job {job_id}")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    """Submit jobs again from their latest checkpoints (after a JobManager restart, a cancel)."""
    from streamlake.runtime import runs, submit

    platform = _platform(args)
    names = runs.resumable_jobs(platform) if args.all else args.jobs
    if not names:
        print("error: name the jobs to resume, or --all", file=sys.stderr)
        return 2
    for name in names:
        job_id, path = submit.resume(name, platform, parallelism=args.parallelism)
        print(f"resumed {name} from {path}: Flink job {job_id}")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    """Stop a running job with a savepoint; resume it with `submit JOB --from-savepoint PATH`."""
    from streamlake.runtime import submit

    path = submit.stop_with_savepoint(_platform(args), args.job_id, args.savepoint_dir)
    print(f"stopped {args.job_id}; savepoint: {path}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run a job on the local executor (no cluster), e.g. to try a config change."""
    from jobs import catalog
    from streamlake.runtime import flinkenv

    platform = _platform(args)
    job = catalog.get(args.job, args.conf)
    t_env = flinkenv.table_env(platform, name=job.name, local=True, parallelism=args.parallelism)
    job.run(t_env, platform, bounded=args.bounded).wait()
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    from streamlake.runtime import sqlclient

    res = sqlclient.run_sql(_platform(args), args.file, args.conf)
    if res is None:
        return 0
    sys.stdout.write(res.stdout)
    sys.stderr.write(res.stderr)
    failed = res.returncode != 0 or "[ERROR]" in res.stdout
    return 1 if failed else 0


def cmd_loader(args: argparse.Namespace) -> int:
    """Run the Delta loader for every table of the lake, in the foreground."""
    import logging

    from streamlake.config import registry
    from streamlake.lake import landing as lake
    from streamlake.lake.loader import Loader, install_signal_handlers
    from streamlake.lake.sink import lake_uri
    from streamlake.stack import control

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    platform = _platform(args)
    settings_, sinks = lake.all_sinks(args.conf)
    loader = Loader(
        platform.kafka.bootstrap,
        settings_.consumer_group,
        sinks,
        flush_rows=settings_.flush_rows,
        flush_ms=settings_.flush_ms,
        instance_id=settings_.instance_id,
        maintenance_every_ms=registry.duration_ms(settings_.maintenance_every),
        vacuum_retention_hours=registry.duration_ms(settings_.vacuum_retention) // 3_600_000,
        ready_file=str(control.loader_ready_file()) if args.managed else None,
        audit_uri=lake_uri(settings_.root(), "audit_loader_batches"),
    )
    if args.managed:
        control.loader_ready_file().parent.mkdir(parents=True, exist_ok=True)
    install_signal_handlers(loader)
    loader.run(idle_exit_s=args.idle_exit)
    return 0


def cmd_lake(args: argparse.Namespace) -> int:
    from streamlake.config import registry
    from streamlake.lake import landing as lake
    from streamlake.lake.maintenance import maintain

    platform = _platform(args)
    settings_, sinks = lake.all_sinks(args.conf)
    chosen = [s for s in sinks if not args.table or s.table == args.table]
    if args.table and not chosen:
        print(
            f"error: unknown table {args.table}; tables: {', '.join(s.table for s in sinks)}",
            file=sys.stderr,
        )
        return 1
    for sink in chosen:
        stats = lake.table_stats(sink)
        if args.action == "status":
            if stats is None:
                print(f"{sink.table:26} (no table yet)  {sink.uri}")
                continue
            behind = lake.offsets_behind(sink, platform.kafka.bootstrap)
            print(
                f"{sink.table:26} version {stats['version']:5d}  rows {stats['rows']:9d}  "
                f"files {stats['files']:5d}  offsets behind {behind:6d}"
            )
        elif args.action == "show":
            if stats is None:
                continue
            table = lake.read_table(sink)
            print(
                f"== {sink.table}: {table.num_rows} rows (Delta version {stats['version']}, {sink.uri})"
            )
            for row in table.slice(0, args.rows).to_pylist():
                print("   ", {k: v for k, v in row.items() if k not in ("raw_value", "raw_key")})
        elif stats is not None:
            retention = registry.duration_ms(settings_.vacuum_retention) // 3_600_000
            print(maintain(sink, args.action, retention_hours=retention))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """One server of the compose stack in the foreground of its container (docker/compose.yaml)."""
    from streamlake.stack import container

    container.serve(_platform(args), args.server)
    return 0


def cmd_healthy(args: argparse.Namespace) -> int:
    """A compose health check: exit 0 if the process is healthy, 1 if not."""
    from streamlake.stack import container

    return 0 if container.healthy(_platform(args), args.process) else 1


def cmd_deploy(args: argparse.Namespace) -> int:
    """Render the Kubernetes manifests (docker/k8s/); --check: exit 1 if the files differ."""
    from streamlake.deploy import k8s

    rendered = k8s.render(_platform(args), args.conf)
    out: Path = args.out
    stale = [
        n
        for n, text in rendered.items()
        if not (out / n).is_file() or (out / n).read_text() != text
    ]
    if args.check:
        for name in stale:
            print(f"{out / name}: differs from what conf/ renders (python -m jobs deploy k8s)")
        return 1 if stale else 0
    out.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.items():
        (out / name).write_text(text)
        print(f"wrote {out / name}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from demo import run as demo
    from demo import runners

    if args.await_kill and not args.live:
        print("error: --await-kill needs --live", file=sys.stderr)
        return 2
    runner = runners.Live(await_kill=args.await_kill) if args.live else runners.Bounded()
    return demo.run(_platform(args), runner)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m jobs", description=__doc__)
    ap.add_argument("--conf", type=Path, default=None, help="config folder (default: conf/)")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("up", help="start the local Kafka broker and Flink cluster")
    p.add_argument("--kafka-only", action="store_true")
    p.set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop what `up` started").set_defaults(func=cmd_down)
    p = sub.add_parser("supervise", help=argparse.SUPPRESS)
    p.add_argument("components", help="comma-separated: kafka,flink-jobmanager,...")
    p.set_defaults(func=cmd_supervise)
    sub.add_parser("status", help="processes, health, jobs (exit 1 if one FAILED)").set_defaults(
        func=cmd_status
    )

    p = sub.add_parser("plan", help="print the complete SQL of the pipeline")
    p.add_argument("--job")
    p.add_argument("--bounded", action="store_true")
    p.set_defaults(func=cmd_plan)

    sub.add_parser("topics", help="create the pipeline's topics").set_defaults(func=cmd_topics)

    for name, func, helptext in (
        ("submit", cmd_submit, "submit a job to the cluster with flink run (detached)"),
        ("run", cmd_run, "run a job on the local executor until it finishes"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("job")
        p.add_argument(
            "--bounded", action="store_true", help="read to the current end, then finish"
        )
        p.add_argument("--parallelism", type=int)
        if name == "submit":
            p.add_argument("--from-savepoint", help="start from this savepoint")
        p.set_defaults(func=func)

    p = sub.add_parser(
        "resume",
        help="submit jobs again from their latest checkpoints (e.g. after a JobManager restart)",
    )
    p.add_argument("jobs", nargs="*", help="job names, as given to submit")
    p.add_argument(
        "--all",
        action="store_true",
        help="every job whose latest run the cluster does not know (lost with a JobManager)",
    )
    p.add_argument("--parallelism", type=int)
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("stop", help="stop a running Flink job with a savepoint")
    p.add_argument("job_id")
    p.add_argument(
        "--savepoint-dir", type=Path, default=paths.STACK / "savepoints", help="where to write it"
    )
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("sql", help="Flink SQL client with the topics declared")
    p.add_argument("--file", type=Path, help="run this file non-interactively")
    p.set_defaults(func=cmd_sql)

    p = sub.add_parser("demo", help="run the pipeline end to end")
    p.add_argument(
        "--live",
        action="store_true",
        help="feed the jobs already running (the compose stack's) and drain them, instead of "
        "starting the local stack and running each job bounded",
    )
    p.add_argument(
        "--await-kill",
        action="store_true",
        help="with --live: after half of the data, wait for a TaskManager to be killed and the "
        "jobs to recover (make compose-test kills one)",
    )
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("deploy", help="render the Kubernetes manifests from conf/")
    p.add_argument("target", choices=["k8s"])
    p.add_argument("--out", type=Path, default=paths.REPO / "docker" / "k8s")
    p.add_argument("--check", action="store_true", help="exit 1 if the files differ")
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser("serve", help="run a server of the compose stack in the foreground")
    p.add_argument("server", choices=["broker", "jobmanager", "taskmanager"])
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("healthy", help="the compose stack's health check of one process")
    p.add_argument("process", choices=["broker", "jobmanager", "taskmanager", "loader"])
    p.set_defaults(func=cmd_healthy)

    p = sub.add_parser("loader", help="run the exactly-once Kafka -> Delta loader (foreground)")
    p.add_argument(
        "--idle-exit", type=float, default=None, help="exit after this many idle seconds"
    )
    p.add_argument("--managed", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_loader)

    p = sub.add_parser("lake", help="Delta tables: status, show, optimize, vacuum, checkpoint")
    p.add_argument("action", choices=["status", "show", "optimize", "vacuum", "checkpoint"])
    p.add_argument("table", nargs="?")
    p.add_argument("--rows", type=int, default=3)
    p.set_defaults(func=cmd_lake)

    args = ap.parse_args(argv)
    try:
        return int(args.func(args))
    except config.ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from streamlake.compile import sqlfile
        from streamlake.stack import processes

        if isinstance(
            exc, processes.StackError | sqlfile.SqlTemplateError | TimeoutError | KeyError
        ):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise
