"""Onboarding is YAML only: a third event type, written here as a file, flows to its own Silver
topic with no code change (run at parallelism 2)."""

from __future__ import annotations

import json
import time

from connectors import kafka
from tests.conftest import SilverConf
from tests.job.test_silver_corpus import create_topics, read, run_silver

PAGE_VIEWS = """
event_type: page_views
event_id_field: view_id
event_time: {field: viewed_at, format: epoch_seconds}
dedup: {horizon: 10min}
watermark:
  max_out_of_orderness: 2s
  reason: browsers send beacons immediately; only network jitter reorders them
versions:
  1:
    fields:
      url: {type: string, required: true, pattern: '^https?://.+'}
      duration_ms: {type: long, min: 0}
"""


def test_a_new_event_type_is_yaml_only(silver_conf: SilverConf, bootstrap: str) -> None:
    sc = silver_conf
    (sc.dir / "event_types" / "page_views.yaml").write_text(PAGE_VIEWS)
    sc.edit("event_types/page_views.yaml", silver_topic=sc.silver("page_views"))
    sc.edit("tenants/acme.yaml", event_types=["device_telemetry", "orders", "page_views"])
    job = create_topics(sc, bootstrap)
    assert sc.silver("page_views") in job.sink_topics()

    now_s = int(time.time())

    def view(vid: str, **over: object) -> bytes:
        e = {
            "tenant_id": "acme",
            "event_type": "page_views",
            "schema_version": 1,
            "view_id": vid,
            "viewed_at": now_s,
            "url": "https://example.com/a",
            "duration_ms": 1200,
        }
        e.update(over)
        return json.dumps(e).encode()

    records = [view(f"v{i}") for i in range(20)] + [view("v0"), view("bad", url="ftp://x")]
    kafka.produce(bootstrap, sc.bronze("acme"), [(None, r) for r in records])
    run_silver(sc, job, parallelism=2)

    rows = read(bootstrap, sc.silver("page_views"), sc.uid)
    assert sorted(r["event_id"] for r in rows) == sorted(f"v{i}" for i in range(20))
    assert {r["url"] for r in rows} == {"https://example.com/a"}
    assert rows[0]["event_at"].endswith("Z")
    dlq = read(bootstrap, sc.dlq, sc.uid)
    assert [d["reason_codes"] for d in dlq] == [["pattern_mismatch:url"]]
    kafka.delete_topics(bootstrap, job.topics())
