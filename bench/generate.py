"""Put the benchmark's load on the running stack: seeded JSON events to the Bronze topics.

The same generator as `make bench` (bench/load.py: tenants, key skew, out-of-order, late,
future-skewed, duplicate and bad records, the creation time in each event id), pointed at the
topics of conf/ (or --conf), at a rate or as fast as possible. With `make up` and the jobs
submitted (`python -m jobs submit silver`, `... gold`, `... device_anomaly`), it is the demo under
load: watch the Flink UI, `make status` and the Delta tables.

    python -m bench.generate --rate 2000 --seconds 60
    python -m bench.generate --events 100000            (as fast as possible)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.load import Generator, LoadSpec
from streamlake.config import paths, registry, settings


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conf", type=Path, default=paths.CONF_DIR)
    ap.add_argument("--rate", type=float, help="events per second (default: as fast as possible)")
    ap.add_argument("--seconds", type=float, help="with --rate: for this long")
    ap.add_argument("--events", type=int, help="this many events")
    ap.add_argument("--seed", type=int, default=LoadSpec.seed)
    args = ap.parse_args(argv)
    if args.events is None and not (args.rate and args.seconds):
        ap.error("give --events, or --rate and --seconds")
    n = args.events if args.events is not None else int(args.rate * args.seconds)
    plat = settings.load_platform(args.conf / "platform.yaml")
    reg = registry.load_registry(args.conf)
    topics: dict[str, str] = {}
    for topic, tenant in sorted(reg.topic_owner().items()):
        topics.setdefault(tenant, topic)
    spec = LoadSpec(seed=args.seed)
    missing = [t for t in spec.tenants if t not in topics]
    if missing:
        raise SystemExit(f"{args.conf}: the generator sends as tenants {missing}, not onboarded")
    took = Generator(spec, topics).produce(plat.kafka.bootstrap, n, rate=args.rate)
    print(f"sent {n} events to {', '.join(sorted(set(topics.values())))} in {took:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
