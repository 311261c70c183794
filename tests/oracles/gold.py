"""An independent model of the Gold job's results, in plain Python, for the tests.

Written from the definitions in the docs (Flink's window TVFs, MATCH_RECOGNIZE, watermarks), not
from the compiler: it shares no code with streamlake/compile/gold.py. Times are epoch milliseconds.

Rows come in the order they were read from their Bronze partitions, one sequence per partition
(`partition` below; one partition unless a row says otherwise). The watermark a row meets is the
largest event time before it *in its own Bronze partition* minus the bound (emitted on every
event); a row at or behind it is late. Which rows are late therefore depends only on each
partition's contents, never on how the partitions were interleaved when read.
"""

from __future__ import annotations

import itertools
import operator
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.timefmt import duration_ms

Row = dict[str, Any]
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "=": operator.eq,
    "<>": operator.ne,
}


def partition(r: Row) -> tuple[Any, Any]:
    """The Bronze partition a row was read from."""
    return (r.get("source_topic"), r.get("source_partition"))


def split_late(rows: Sequence[Row], bound_ms: int) -> tuple[list[Row], list[tuple[Row, int]]]:
    """(on-time rows, [(late row, watermark of its partition it met)]). A row that carries
    `_late` (and `_wm`) was classified already, with records this list does not hold."""
    on_time: list[Row] = []
    late: list[tuple[Row, int]] = []
    wms: dict[tuple[Any, Any], int] = {}
    for r in rows:
        if "_late" in r:  # decided already, from its partition's whole contents
            if r["_late"]:
                late.append((r, r["_wm"]))
            else:
                on_time.append(r)
            continue
        p = partition(r)
        wm = wms.get(p)
        if wm is not None and r["t"] <= wm:
            late.append((r, wm))
        else:
            on_time.append(r)
        cand = r["t"] - bound_ms
        wms[p] = cand if wm is None else max(wm, cand)
    return on_time, late


def silver_watermarks(
    ts: Sequence[int], parts: Sequence[Any], bound_ms: int
) -> list[tuple[int | None, int | None]]:
    """What the Silver job writes beside each row read in this order, for rows whose clock is
    their event time minus bound_ms: (its Bronze partition's watermark, itself included; the
    smallest watermark of all the partitions before it, None while one has none yet)."""
    every = set(parts)
    wms: dict[Any, int] = {}
    out: list[tuple[int | None, int | None]] = []
    for t, p in zip(ts, parts, strict=True):
        stream = min(wms.values()) if set(wms) == every else None
        wms[p] = max(wms.get(p, t - bound_ms), t - bound_ms)
        out.append((wms[p], stream))
    return out


def windows_of(kind: str, t: int, w: dict[str, int]) -> list[tuple[int, int]]:
    if kind == "tumble":
        s = t - t % w["size"]
        return [(s, s + w["size"])]
    if kind == "hop":
        out = []
        s = t - t % w["slide"]
        while s > t - w["size"]:
            out.append((s, s + w["size"]))
            s -= w["slide"]
        return out
    if kind == "cumulate":
        s = t - t % w["size"]
        return [
            (s, s + k * w["step"])
            for k in range(1, w["size"] // w["step"] + 1)
            if s + k * w["step"] > t
        ]
    raise ValueError(kind)


def sessions(ts: list[int], gap: int) -> list[tuple[int, int, list[int]]]:
    """(start, end, member indexes) of session windows over sorted times."""
    out: list[tuple[int, int, list[int]]] = []
    order = sorted(range(len(ts)), key=lambda i: ts[i])
    for i in order:
        if out and ts[i] < out[-1][1]:
            s, _e, members = out[-1]
            members.append(i)
            out[-1] = (s, max(_e, ts[i] + gap), members)
        else:
            out.append((ts[i], ts[i] + gap, [i]))
    return out


def _measure(fn: str, values: list[Any], p: float | None = None) -> Any:
    present = [v for v in values if v is not None]
    if fn == "count":
        return len(present)
    if fn == "count_distinct":
        return len(set(present))
    if not present:
        return None
    if fn == "sum":
        return sum(present)
    if fn == "min":
        return min(present)
    if fn == "max":
        return max(present)
    if fn == "avg":
        return sum(float(v) for v in present) / len(present)
    if fn == "percentile":
        xs = sorted(float(v) for v in present)
        pos = (len(xs) - 1) * (p or 0.0)
        lo = int(pos)
        hi = min(lo + 1, len(xs) - 1)
        return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)
    raise ValueError(fn)


@dataclass
class Aggregate:
    kind: str
    window: dict[str, int]
    group_by: list[str]
    measures: dict[str, tuple[str, str | None, float | None]]  # name -> (fn, field, p)
    allowed_lateness_ms: int | None = None


def gold(rows: Sequence[Row], bound_ms: int, agg: Aggregate) -> dict[tuple[Any, ...], Row]:
    """Final Gold rows by (tenant, keys..., window_start, window_end)."""
    on_time, late = split_late(rows, bound_ms)
    members: dict[tuple[Any, ...], list[Row]] = defaultdict(list)
    late_count: dict[tuple[Any, ...], int] = defaultdict(int)
    if agg.kind == "session":
        by_key: dict[tuple[Any, ...], list[Row]] = defaultdict(list)
        for r in on_time:
            by_key[(r["tenant_id"], *(r[k] for k in agg.group_by))].append(r)
        for key, rs in by_key.items():
            for s, e, idx in sessions([r["t"] for r in rs], agg.window["gap"]):
                members[(*key, s, e)] = [rs[i] for i in idx]
    else:
        for r in on_time:
            for s, e in windows_of(agg.kind, r["t"], agg.window):
                members[(r["tenant_id"], *(r[k] for k in agg.group_by), s, e)].append(r)
        if agg.allowed_lateness_ms is not None:
            for r, wm in late:
                for s, e in windows_of(agg.kind, r["t"], agg.window):
                    if e > wm - agg.allowed_lateness_ms:
                        key = (r["tenant_id"], *(r[k] for k in agg.group_by), s, e)
                        members[key].append(r)
                        late_count[key] += 1
    out = {}
    for key, rs in members.items():
        row = {
            name: _measure(fn, [1 if f is None else r.get(f) for r in rs], p)
            for name, (fn, f, p) in agg.measures.items()
        }
        row["late_rows"] = late_count[key]
        out[key] = row
    return out


# ---- alert rules (MATCH_RECOGNIZE semantics, rows of one key in event-time order) ----------


def _by_key(rows: Iterable[Row], key: str) -> dict[tuple[str, Any], list[Row]]:
    out: dict[tuple[str, Any], list[Row]] = defaultdict(list)
    for r in rows:
        out[(r["tenant_id"], r[key])].append(r)
    for rs in out.values():
        rs.sort(key=lambda r: (r["t"], r["_seq"]))
    return out


def threshold(
    rows: Iterable[Row], key: str, cond: tuple[str, str, Any], times: int, within_ms: int
) -> list[tuple[Any, ...]]:
    """A{times} (strictly consecutive), WITHIN, AFTER MATCH SKIP PAST LAST ROW."""
    f, op, v = cond
    out = []
    for (tenant, k), rs in _by_key(rows, key).items():
        run: list[Row] = []
        for r in rs:
            if r[f] is not None and _OPS[op](r[f], v):
                run.append(r)
                if len(run) >= times and r["t"] - run[-times]["t"] < within_ms:
                    out.append((tenant, str(k), run[-times]["t"], r["t"]))
                    run = []
            else:
                run = []
    return sorted(out)


def spike(
    rows: Iterable[Row], key: str, field: str, rise: float, within_ms: int
) -> list[tuple[Any, ...]]:
    """(A C), C.f - A.f > rise, WITHIN, AFTER MATCH SKIP TO LAST C: consecutive pairs."""
    out = []
    for (tenant, k), rs in _by_key(rows, key).items():
        for a, c in itertools.pairwise(rs):
            if (
                a[field] is not None
                and c[field] is not None
                and c[field] - a[field] > rise
                and c["t"] - a["t"] < within_ms
            ):
                out.append((tenant, str(k), a["t"], c["t"]))
    return sorted(out)


def sequence(
    rows: Iterable[Row], key: str, steps: list[tuple[str, str, Any]], within_ms: int
) -> list[tuple[Any, ...]]:
    """(S1 X*? S2 ...), WITHIN, AFTER MATCH SKIP PAST LAST ROW; a gap row never meets the first
    step (a new first step ends every open match it does not advance); the earliest start wins."""

    def ok(r: Row, c: tuple[str, str, Any]) -> bool:
        return r[c[0]] is not None and _OPS[c[1]](r[c[0]], c[2])

    out = []
    for (tenant, k), rs in _by_key(rows, key).items():
        partial: list[tuple[int, int]] = []  # (start time, steps done)
        for r in rs:
            partial = [(s, n) for s, n in partial if r["t"] - s < within_ms]
            advanced = []
            done = None
            for s, n in partial:
                if ok(r, steps[n]):
                    if n + 1 == len(steps):
                        done = s if done is None else min(done, s)
                    else:
                        advanced.append((s, n + 1))
                elif not ok(r, steps[0]):
                    advanced.append((s, n))
            if done is not None:
                out.append((tenant, str(k), done, r["t"]))
                partial = []
                continue
            partial = advanced
            if ok(r, steps[0]):
                partial.append((r["t"], 1))
    return sorted(out)


def absence(rows: Iterable[Row], key: str, after_ms: int) -> list[tuple[Any, ...]]:
    """A session per key with gap `after`; every session ends in an alert (bounded input ends
    with the maximum watermark)."""
    out = []
    for (tenant, k), rs in _by_key(rows, key).items():
        for _s, _e, idx in sessions([r["t"] for r in rs], after_ms):
            ts = [rs[i]["t"] for i in idx]
            out.append((tenant, str(k), min(ts), max(ts)))
    return sorted(out)


# ---- the aggregates of a config folder -----------------------------------------------------


def aggregates(conf: Path) -> dict[str, tuple[str, Aggregate]]:
    """Each Gold aggregate of a config folder's gold/, as this oracle models it:
    name -> (event type, model)."""
    out = {}
    for f in sorted((conf / "gold").glob("*.yaml")):
        a = yaml.safe_load(f.read_text())
        lateness = a.get("allowed_lateness")
        out[a["name"]] = (
            a["event_type"],
            Aggregate(
                kind=a["window"]["kind"],
                window={k: duration_ms(v) for k, v in a["window"].items() if k != "kind"},
                group_by=a["group_by"],
                measures={
                    n: (m["fn"], m.get("field"), m.get("p")) for n, m in a["measures"].items()
                },
                allowed_lateness_ms=duration_ms(lateness) if lateness else None,
            ),
        )
    return out
