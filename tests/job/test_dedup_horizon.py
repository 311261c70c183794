"""Each event type's dedup horizon (conf/event_types/*.yaml, `dedup.horizon`) is the state TTL of
its own deduplicate operator in the plan the Silver job runs, not one TTL for the whole job.

The plan is the compiled JSON plan `SqlJob.run` executes. Each deduplicate operator is matched to
its event type here by where its rows go (the Silver sink downstream of it), independently of how
the job matched it (by the event-type literal upstream, streamlake/compile/plan_ttl.py)."""

from __future__ import annotations

from collections import deque
from typing import Any

from jobs import catalog
from streamlake.config import settings
from streamlake.runtime import flinkenv
from tests.conftest import SilverConf

HORIZONS = {"device_telemetry": ("10min", 600_000), "orders": ("2h", 7_200_000)}
UNIT_MS = {"ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}


def plan_ms(ttl: str) -> int:
    """A duration as a compiled plan writes it ('3600000 ms', '2 h')."""
    n, unit = ttl.split()
    return int(n) * UNIT_MS[unit]


def silver_sink_downstream(plan: dict[str, Any], node_id: int) -> str:
    """The event type of the first silver_<event type> sink fed by `node_id`."""
    nodes = {n["id"]: n for n in plan["nodes"]}
    outputs: dict[int, list[int]] = {}
    for e in plan["edges"]:
        outputs.setdefault(e["source"], []).append(e["target"])
    todo, seen = deque([node_id]), {node_id}
    while todo:
        n = nodes[todo.popleft()]
        if n["type"].startswith("stream-exec-sink"):
            table = n["dynamicTableSink"]["table"]["identifier"].split(".")[-1].strip("`")
            if table.startswith("silver_"):
                return str(table).removeprefix("silver_")
        for down in outputs.get(n["id"], []):
            if down not in seen:
                seen.add(down)
                todo.append(down)
    raise AssertionError(f"plan node {node_id} feeds no Silver sink")


def test_each_event_type_keeps_its_own_dedup_horizon(silver_conf: SilverConf) -> None:
    for et, (horizon, _ms) in HORIZONS.items():
        silver_conf.edit(f"event_types/{et}.yaml", dedup={"horizon": horizon})
    platform = settings.load_platform(silver_conf.dir / "platform.yaml")
    job = catalog.get("silver", silver_conf.dir)
    t_env = flinkenv.table_env(platform, name=f"plan-{silver_conf.uid}", local=True)
    plan = job.compiled_plan(t_env, platform)

    ttl_by_event_type: dict[str, list[int]] = {}
    for n in plan["nodes"]:
        if n["type"].startswith("stream-exec-deduplicate"):
            et = silver_sink_downstream(plan, n["id"])
            ttl_by_event_type.setdefault(et, []).extend(plan_ms(s["ttl"]) for s in n["state"])
    assert ttl_by_event_type == {et: [ms] for et, (_h, ms) in HORIZONS.items()}
    # The rest of the job's state (the audit counts) lives for the longest horizon.
    aggs = [n for n in plan["nodes"] if n["type"].startswith("stream-exec-group-aggregate")]
    assert aggs and all(plan_ms(s["ttl"]) == 7_200_000 for n in aggs for s in n["state"])
