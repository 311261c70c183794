"""What the demo's Gold job, late topics and alert topic must hold, computed in plain Python from
the events the demo sent (demo/events.py, `silver_events`), never from the jobs' outputs.

Silver, as the README states it (*Event time*): per Bronze partition, in offset order, a record
that names a known event type and has a parseable event time no more than max_future_skew ahead
moves that partition's watermark to (event time - its type's bound); a Silver row is late when
its event time is at or behind its partition's watermark. A retried event keeps its first copy.
The windows and rules are then tests/oracles/gold.py's, the DataStream job's
tests/oracles/anomaly.py's, over the rows of the config in conf/.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.oracles import anomaly
from tests.oracles import gold as oracle
from tests.oracles.gold import aggregates as aggregates  # what the demo compares by
from tests.support.timefmt import duration_ms, from_iso

Row = dict[str, Any]
# Bad records that never get an event-time clock: not parsed, no known event type, or stamped
# beyond the future skew. Every other record of a known type moves its partition's watermark.
CLOCKLESS = {"malformed_json", "unknown_event_type", "event_time_in_future"}
ID_FIELD = {"device_telemetry": "event_id", "orders": "order_id"}


def event_ms(et: str, e: Mapping[str, Any]) -> int:
    if et == "orders":
        return int(dt.datetime.fromisoformat(e["placed_at"]).timestamp() * 1000)
    return int(e["event_time"])


def bounds(conf: Path) -> dict[str, int]:
    out = {}
    for f in sorted((conf / "event_types").glob("*.yaml")):
        y = yaml.safe_load(f.read_text())
        out[y["event_type"]] = duration_ms(y["watermark"]["max_out_of_orderness"])
    return out


def silver_rows(
    fates: Mapping[str, list[tuple[str, dict[str, Any]]]],
    placement: Mapping[str, list[int]],
    conf: Path,
    hash_key: str,
) -> dict[str, list[Row]]:
    """Per event type, the Silver rows in send order, each with `_late` and `_wm` (the watermark
    of its Bronze partition: `placement[tenant][i]` is the partition of the tenant's i-th
    record) and `_seq` (its position)."""
    bound = bounds(conf)
    out: dict[str, list[Row]] = {et: [] for et in bound}
    seen: set[tuple[str, str]] = set()
    for tenant, records in sorted(fates.items()):
        wms: dict[int, int] = {}
        for (fate, e), p in zip(records, placement[tenant], strict=True):
            et = e["event_type"]
            if fate not in CLOCKLESS:
                clock = event_ms(et, e) - bound[et]
                wms[p] = max(wms.get(p, clock), clock)
            if fate != "silver":
                continue
            ident = (e["tenant_id"], e[ID_FIELD[et]])
            if ident in seen:
                continue
            seen.add(ident)
            t = event_ms(et, e)
            wm = wms.get(p)
            row = {
                **e,
                "event_id": e[ID_FIELD[et]],
                "t": t,
                "_wm": wm,
                "_late": wm is not None and t <= wm,
            }
            if "customer_id" in row:  # `pii: hash`: SHA-256 of key|value
                row["customer_id"] = hashlib.sha256(
                    f"{hash_key}|{row['customer_id']}".encode()
                ).hexdigest()
            row["_seq"] = len(out[et])
            out[et].append(row)
    return out


def gold(rows: Mapping[str, list[Row]], conf: Path) -> dict[str, dict[tuple[Any, ...], Row]]:
    """Per Gold table, its final row per (tenant, keys..., window start ms, window end ms)."""
    return {
        f"gold_{name}": oracle.gold(rows[et], 0, agg)
        for name, (et, agg) in aggregates(conf).items()
    }


def late(rows: Mapping[str, list[Row]]) -> dict[str, set[tuple[str, str]]]:
    """Per late table, (tenant, event id) of every late row."""
    return {
        f"late_{et}": {(r["tenant_id"], r["event_id"]) for r in rs if r["_late"]}
        for et, rs in rows.items()
    }


def _rule(on_time: list[Row], y: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    key, kind = y["key"], y["kind"]
    if kind == "threshold":
        c = y["condition"]
        return oracle.threshold(
            on_time, key, (c["field"], c["op"], c["value"]), y["times"], duration_ms(y["within"])
        )
    if kind == "spike":
        return oracle.spike(on_time, key, y["field"], y["rise"], duration_ms(y["within"]))
    if kind == "sequence":
        steps = [(s["field"], s["op"], s["value"]) for s in y["steps"]]
        return oracle.sequence(on_time, key, steps, duration_ms(y["within"]))
    if kind == "absence":
        return oracle.absence(on_time, key, duration_ms(y["after"]))
    raise ValueError(kind)


def alerts(rows: Mapping[str, list[Row]], conf: Path) -> list[tuple[Any, ...]]:
    """Every alert of conf/alerts/ and of the device_anomaly job:
    (rule id, tenant, key, first event ms, last event ms), sorted."""
    out: list[tuple[Any, ...]] = []
    for f in sorted((conf / "alerts").glob("*.yaml")):
        y = yaml.safe_load(f.read_text())
        on_time = [r for r in rows[y["event_type"]] if not r["_late"]]
        out += [(y["rule_id"], *a) for a in _rule(on_time, y)]
    spec = yaml.safe_load((conf / "streams" / "device_anomaly.yaml").read_text())
    readings = [
        anomaly.Reading(
            r["tenant_id"], r[spec["key_field"]], r["event_id"], r["t"], r[spec["value_field"]]
        )
        for r in rows[spec["event_type"]]
        if not r["_late"]
    ]
    for a in anomaly.expected_alerts(
        readings,
        event_type=spec["event_type"],
        zscore_rule_id=spec["zscore"]["rule_id"],
        k=spec["zscore"]["k"],
        min_samples=spec["zscore"]["min_samples"],
        silence_rule_id=spec["silence"]["rule_id"],
        silence_ms=duration_ms(spec["silence"]["after"]),
    ):
        first, last = from_iso(a["first_event_at"]), from_iso(a["last_event_at"])
        out.append((a["rule_id"], a["tenant_id"], a["alert_key"], first, last))
    return sorted(out)
