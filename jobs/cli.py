"""`python -m jobs <command>`: the single entry point the Makefile wraps."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jobs import config, paths


def _platform(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from jobs import settings

    conf: Path | None = args.conf
    return settings.load_platform(conf / "platform.yaml" if conf else None)


def cmd_up(args: argparse.Namespace) -> int:
    from jobs import stack

    for line in stack.up(_platform(args), flink=not args.kafka_only):
        print(line)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from jobs import stack

    for line in stack.down():
        print(line)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from jobs import stack

    for line in stack.status(_platform(args)):
        print(line)
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
        print(job.render(platform, bounded=args.bounded, redact=True))
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from connectors import kafka
    from jobs import catalog

    platform = _platform(args)
    topics = sorted({t for j in catalog.jobs(args.conf).values() for t in j.topics()})
    kafka.create_topics(platform.kafka.bootstrap, topics, platform.kafka.default_partitions)
    print("topics: " + ", ".join(topics))
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from jobs import submit

    job_id = submit.submit(
        args.job,
        _platform(args),
        bounded=args.bounded,
        parallelism=args.parallelism,
        conf_dir=args.conf,
    )
    print(f"submitted {args.job}: Flink job {job_id}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run a job on the local executor (no cluster), e.g. to try a config change."""
    from jobs import catalog, flinkenv

    platform = _platform(args)
    job = catalog.get(args.job, args.conf)
    t_env = flinkenv.table_env(platform, name=job.name, local=True, parallelism=args.parallelism)
    job.run(t_env, platform, bounded=args.bounded).wait()
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    from jobs import submit

    res = submit.run_sql(_platform(args), args.file, args.conf)
    if res is None:
        return 0
    sys.stdout.write(res.stdout)
    sys.stderr.write(res.stderr)
    failed = res.returncode != 0 or "[ERROR]" in res.stdout
    return 1 if failed else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from jobs import demo

    return demo.run(_platform(args))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m jobs", description=__doc__)
    ap.add_argument("--conf", type=Path, default=None, help="config folder (default: conf/)")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("up", help="start the local Kafka broker and Flink cluster")
    p.add_argument("--kafka-only", action="store_true")
    p.set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop what `up` started").set_defaults(func=cmd_down)
    sub.add_parser("status", help="processes, health, running jobs").set_defaults(func=cmd_status)

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
        p.set_defaults(func=func)

    p = sub.add_parser("sql", help="Flink SQL client with the topics declared")
    p.add_argument("--file", type=Path, help="run this file non-interactively")
    p.set_defaults(func=cmd_sql)

    sub.add_parser("demo", help="run the pipeline end to end").set_defaults(func=cmd_demo)

    args = ap.parse_args(argv)
    try:
        return int(args.func(args))
    except config.ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from jobs import sqlfile, stack

        if isinstance(exc, stack.StackError | sqlfile.SqlTemplateError | TimeoutError | KeyError):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise
