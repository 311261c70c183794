"""Entry point that `flink run -py` executes on the client: render a job's SQL and submit it
(or, for device_anomaly, build the Python DataStream job and submit that).

Run by `python -m jobs submit JOB`; not meant to be imported.
"""

from __future__ import annotations

import os
import sys

# `flink run -py` puts this file's folder first on sys.path; drop it so that our module names
# (config, paths, ...) cannot shadow third-party top-level modules. The package is importable
# through the project's editable install.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]


def main(argv: list[str]) -> int:
    import argparse
    from pathlib import Path

    from jobs import catalog
    from streamlake.config import paths, settings
    from streamlake.runtime import flinkenv

    ap = argparse.ArgumentParser(prog="flink_entry")
    ap.add_argument("job")
    ap.add_argument("--conf", type=Path, default=None)
    ap.add_argument("--bounded", action="store_true")
    ap.add_argument("--parallelism", type=int, default=None)
    args = ap.parse_args(argv)
    conf_dir = args.conf
    platform = settings.load_platform(conf_dir / "platform.yaml" if conf_dir else None)
    if args.job == "device_anomaly":  # the Python DataStream job: not a SQL file
        from jobs import device_anomaly

        client = device_anomaly.run(
            platform,
            conf_dir or paths.CONF_DIR,
            local=False,
            bounded=args.bounded,
            parallelism=args.parallelism,
        )
        print(f"streamlake: submitted {args.job} as Flink job {client.get_job_id()}")
        return 0
    job = catalog.get(args.job, conf_dir)
    t_env = flinkenv.table_env(platform, name=job.name, local=False, parallelism=args.parallelism)
    result = job.run(t_env, platform, bounded=args.bounded)
    client = result.get_job_client()
    if client is not None:
        print(f"streamlake: submitted {job.name} as Flink job {client.get_job_id()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
