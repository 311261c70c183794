"""What the Silver job must make of the seeded catch-up stream (tests/support/catchup_stream.py),
in plain Python: each record's fate, and per Bronze partition in offset order the watermark each
Silver row meets (the semantics stated in the README, "Event time", and in the stream's module)."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

from tests.support.catchup_stream import BOUND_MS, Rec


def pii_hashed(row: dict[str, Any], key: str) -> dict[str, Any]:
    """The row as Silver writes it: orders' customer_id is `pii: hash`, SHA-256 of key|value."""
    if "customer_id" not in row:
        return row
    digest = hashlib.sha256(f"{key}|{row['customer_id']}".encode()).hexdigest()
    return {**row, "customer_id": digest}


@dataclass
class Expected:
    silver: dict[str, set[tuple[str, str]]]  # per event type, (tenant, event_id)
    late: dict[str, set[tuple[str, str]]]
    dlq: Counter[tuple[str, str]]  # (topic tenant, first reason)
    duplicates: Counter[str]
    rows: dict[str, list[dict[str, Any]]]  # Silver rows per event type with "_late"


def expect(recs: list[Rec]) -> Expected:
    """Fates, then per partition in offset order the watermark each Silver row meets."""
    wms: dict[tuple[str, int], int] = {}
    seen: set[tuple[str, str]] = set()
    out = Expected(
        {k: set() for k in BOUND_MS},
        {k: set() for k in BOUND_MS},
        Counter(),
        Counter(),
        {k: [] for k in BOUND_MS},
    )
    for r in recs:
        key = (r.topic_tenant, r.partition)
        if r.clock_ms is not None:
            wms[key] = max(wms.get(key, r.clock_ms), r.clock_ms)
        if r.fate == "duplicate":
            out.duplicates[r.topic_tenant] += 1
            continue
        if r.fate != "silver":
            out.dlq[(r.topic_tenant, r.fate)] += 1
            continue
        assert r.event_type is not None
        ident = (r.row["tenant_id"], r.row["event_id"])
        assert ident not in seen
        seen.add(ident)
        out.silver[r.event_type].add(ident)
        wm = wms.get(key)
        is_late = wm is not None and r.row["t"] <= wm
        if is_late:
            out.late[r.event_type].add(ident)
        # _seq: the alert oracle's tie-break for equal event times (none occur in this stream).
        row = {**r.row, "_late": is_late, "_wm": wm, "_seq": len(out.rows[r.event_type])}
        out.rows[r.event_type].append(row)
    return out
