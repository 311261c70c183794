"""The Silver job submitted to the standalone cluster with `flink run`, on the real broker."""

from __future__ import annotations

import time

from connectors import kafka
from jobs import settings, stack, submit
from tests import silver_corpus
from tests.conftest import SilverConf
from tests.job.test_silver_corpus import create_topics, read, send


def test_silver_on_the_cluster(silver_conf: SilverConf, bootstrap: str) -> None:
    sc = silver_conf
    platform = settings.load_platform(sc.dir / "platform.yaml")
    assert stack.flink_healthy(platform), "run `make up` (make test does)"
    job = create_topics(sc, bootstrap)
    cases = [
        c for c in silver_corpus.build(int(time.time() * 1000), 1_048_576) if c.name != "oversized"
    ]
    send(sc, bootstrap, cases)

    job_id = submit.submit("silver", platform, bounded=True, conf_dir=sc.dir)
    assert submit.wait_job(platform, job_id, {"FINISHED"}, timeout_s=240) == "FINISHED"

    silver = sum(
        len(read(bootstrap, sc.silver(et), sc.uid)) for et in ("device_telemetry", "orders")
    )
    dlq = read(bootstrap, sc.dlq, sc.uid)
    assert silver == sum(c.expect == "silver" for c in cases)
    assert len(dlq) == sum(isinstance(c.expect, list) for c in cases)
    kafka.delete_topics(bootstrap, job.topics())
