"""The Silver job's rows carry a watermark that bounds what comes after them in their Silver
partition only if one writer writes each partition: submission refuses a parallelism above the
Silver topic's partition count, before anything starts."""

from __future__ import annotations

import pytest

from connectors import kafka
from jobs import catalog
from streamlake.config import settings
from streamlake.runtime import submit
from streamlake.stack import processes
from tests.conftest import SilverConf


def test_silver_parallelism_above_its_topic_partitions_is_refused(
    silver_conf: SilverConf, bootstrap: str
) -> None:
    platform = settings.load_platform(silver_conf.dir / "platform.yaml")
    job = catalog.get("silver", silver_conf.dir)
    topics = [silver_conf.silver(et) for et in ("device_telemetry", "orders")]
    kafka.create_topics(bootstrap, topics, partitions=2)
    try:
        submit.check_single_writers(job, platform, 2)  # one writer per partition: fine
        with pytest.raises(processes.StackError, match="fewer than the job's parallelism 3"):
            submit.check_single_writers(job, platform, 3)
    finally:
        kafka.delete_topics(bootstrap, topics)
