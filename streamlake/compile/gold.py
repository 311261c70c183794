"""Compilation of the Gold config (streamlake/config/gold.py) into the Gold job's SQL.

The SQL's shape lives in sql/gold/*.sql; this module computes its placeholder values from the
checked config: per event type its source and late split, per aggregate its window TVF and
measures (and, where late rows revise windows, the partials they merge into), per rule its
MATCH_RECOGNIZE parts. Per-event work is Flink SQL: window TVFs, MATCH_RECOGNIZE and built-ins,
all in the JVM.
"""

from __future__ import annotations

from collections.abc import Mapping

from streamlake.compile import sqlfile
from streamlake.compile.silver import epoch_ms, interval, q
from streamlake.config import paths, registry, tables
from streamlake.config.gold import (
    AlertRule,
    Condition,
    GoldAggregate,
    GoldConfig,
    Measure,
    SequenceRule,
    SpikeRule,
    ThresholdRule,
    Window,
)
from streamlake.config.registry import EventType

GOLD_SQL = paths.SQL_DIR / "gold" / "gold.sql"
SOURCE_SQL = paths.SQL_DIR / "gold" / "event_type.sql"
AGGREGATE_SQL = paths.SQL_DIR / "gold" / "aggregate.sql"
REVISED_SQL = paths.SQL_DIR / "gold" / "aggregate_revised.sql"
ALERT_SINK_SQL = paths.SQL_DIR / "gold" / "alert_sink.sql"
RULE_SQL = {
    kind: paths.SQL_DIR / "gold" / f"rule_{kind}.sql"
    for kind in ("threshold", "spike", "sequence", "absence")
}


# ---- window kinds' SQL: each kind (streamlake/config/gold.py WINDOW_KINDS) owns its window TVF
# and the windows a late row falls in (for aggregates late rows revise).


class _WindowSql:
    kind = ""

    def tvf(self, w: Window, source: str, time_col: str, keys: list[str]) -> str:
        """The window TVF call over `source` (TABLE ...) on `time_col` (DESCRIPTOR(...))."""
        raise NotImplementedError

    def candidates(self, w: Window, ev: str) -> list[str]:
        """ROW(start_ms, end_ms) of every window that may hold the epoch-ms expression `ev`."""
        raise NotImplementedError


class _TumbleSql(_WindowSql):
    kind = "tumble"

    def tvf(self, w: Window, source: str, time_col: str, keys: list[str]) -> str:
        return f"TUMBLE({source}, {time_col}, {interval(w.ms('size'))})"

    def candidates(self, w: Window, ev: str) -> list[str]:
        size = w.ms("size")
        return [f"ROW({ev} - MOD({ev}, {size}), {ev} - MOD({ev}, {size}) + {size})"]


class _SlicedSql(_WindowSql):
    """HOP(..., slide, size) and CUMULATE(..., step, size): a window of `size` in slices."""

    fn = ""
    part = ""

    def tvf(self, w: Window, source: str, time_col: str, keys: list[str]) -> str:
        part = interval(w.ms(self.part))
        return f"{self.fn}({source}, {time_col}, {part}, {interval(w.ms('size'))})"


class _HopSql(_SlicedSql):
    kind, fn, part = "hop", "HOP", "slide"

    def candidates(self, w: Window, ev: str) -> list[str]:
        size, slide = w.ms("size"), w.ms("slide")
        base = f"{ev} - MOD({ev}, {slide})"
        return [
            f"ROW({base} - {k * slide}, {base} - {k * slide} + {size})"
            for k in range(size // slide)
        ]


class _CumulateSql(_SlicedSql):
    kind, fn, part = "cumulate", "CUMULATE", "step"

    def candidates(self, w: Window, ev: str) -> list[str]:
        size, step = w.ms("size"), w.ms("step")
        base = f"{ev} - MOD({ev}, {size})"
        return [f"ROW({base}, {base} + {j * step})" for j in range(1, size // step + 1)]


class _SessionSql(_WindowSql):
    kind = "session"

    def tvf(self, w: Window, source: str, time_col: str, keys: list[str]) -> str:
        by = ", ".join(keys)
        return f"SESSION({source} PARTITION BY ({by}), {time_col}, {interval(w.ms('gap'))})"


WINDOW_SQL: dict[str, _WindowSql] = {
    k.kind: k() for k in (_TumbleSql, _HopSql, _CumulateSql, _SessionSql)
}


# ---- placeholders


def _ident(name: str) -> str:
    return f"`{name}`"


def _literal(v: float | int | bool | str) -> str:
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (int, float)):
        return repr(v)
    return q(v)


def _cond(c: Condition, var: str) -> str:
    return f"{var}.{_ident(c.field)} {c.op} {_literal(c.value)}"


def event_type_params(
    gc: GoldConfig, et: EventType, with_silver: str, with_late: str
) -> dict[str, str]:
    silver = tables.silver(et)
    return {
        "event_type": et.event_type,
        "silver_columns": tables.sql_columns(silver),
        "silver_column_names": tables.sql_names(silver),
        "late_columns": tables.sql_columns(tables.late(et)),
        "max_ooo": et.watermark.max_out_of_orderness,
        "watermark_reason": " ".join(et.watermark.reason.split()),
        "max_future_skew": et.max_future_skew,
        "idle_timeout": gc.runner.idle_timeout,
        "event_ms": epoch_ms("event_at"),
        "watermark_ms": epoch_ms("watermark_at"),
        "with_silver": with_silver,
        "with_late": with_late,
    }


def measure_type(et: EventType, m: Measure) -> str:
    """The SQL type of a measure's Gold column (streamlake/config/tables.py decides it)."""
    return tables.sql_type(tables.measure_type(et, m))


def _measure_expr(m: Measure) -> str:
    f = _ident(m.field) if m.field else None
    if m.fn == "count":
        return f"COUNT({f or '*'})"
    if m.fn == "count_distinct":
        return f"COUNT(DISTINCT {f})"
    if m.fn == "avg":
        return f"AVG(CAST({f} AS DOUBLE))"
    if m.fn == "percentile":
        return f"PERCENTILE(CAST({f} AS DOUBLE), {m.p!r})"
    return f"{m.fn.upper()}({f})"


def window_tvf(agg: GoldAggregate) -> str:
    keys = ["tenant_id", *map(_ident, agg.group_by)]
    source = f"TABLE ontime_{agg.event_type}"
    return WINDOW_SQL[agg.window.kind].tvf(agg.window, source, "DESCRIPTOR(event_at)", keys)


def _candidate_windows(agg: GoldAggregate) -> str:
    """ROW(start_ms, end_ms) of every window of the aggregate's kind that may hold a late row."""
    return ", ".join(WINDOW_SQL[agg.window.kind].candidates(agg.window, "l.event_ms"))


def aggregate_params(gc: GoldConfig, agg: GoldAggregate, with_gold: str) -> dict[str, str]:
    et = gc.registry.event_types[agg.event_type]
    keys = [_ident(k) for k in agg.group_by]
    table = tables.gold(gc.registry, agg)
    group = ", ".join(["tenant_id", *keys, "window_start", "window_end"])
    params = {
        "name": agg.name,
        "event_type": agg.event_type,
        "window_desc": agg.window.describe(),
        "gold_columns": tables.sql_columns(table),
        "primary_key": group,
        "group_by": group,
        "window_tvf": window_tvf(agg),
        "with_gold": with_gold,
    }
    if agg.allowed_lateness is None:
        params["measures"] = ",\n".join(
            f"       {_measure_expr(m)} AS {_ident(n)}" for n, m in agg.measures.items()
        )
        return params
    # Revisable: window partials and late rows' contributions share one shape, merged per window.
    partial, late, final = [], [], []
    for n, m in agg.measures.items():
        t = measure_type(et, m)
        f = f"l.{_ident(m.field)}" if m.field else None
        if m.fn == "count":
            partial.append(f"CAST(COUNT({_ident(m.field) if m.field else '*'}) AS BIGINT)")
            late.append(
                f"CAST(CASE WHEN {f} IS NULL THEN 0 ELSE 1 END AS BIGINT)"
                if f
                else "CAST(1 AS BIGINT)"
            )
            final.append(f"SUM(p_{n}) AS {_ident(n)}")
        elif m.fn in ("sum", "min", "max"):
            partial.append(f"CAST({m.fn.upper()}({_ident(m.field or '')}) AS {t})")
            late.append(f"CAST({f} AS {t})")
            final.append(f"{'SUM' if m.fn == 'sum' else m.fn.upper()}(p_{n}) AS {_ident(n)}")
        else:  # avg
            partial.append(f"SUM(CAST({_ident(m.field or '')} AS DOUBLE))")
            partial.append(f"CAST(COUNT({_ident(m.field or '')}) AS BIGINT)")
            late.append(f"CAST({f} AS DOUBLE)")
            late.append(f"CAST(CASE WHEN {f} IS NULL THEN 0 ELSE 1 END AS BIGINT)")
            final.append(
                f"CASE WHEN SUM(p_{n}_n) > 0 THEN SUM(p_{n}) / SUM(p_{n}_n) END AS {_ident(n)}"
            )
    pnames = []
    for n, m in agg.measures.items():
        pnames += [f"p_{n}", f"p_{n}_n"] if m.fn == "avg" else [f"p_{n}"]
    lateness = registry.duration_ms(agg.allowed_lateness)
    params.update(
        {
            "allowed_lateness": agg.allowed_lateness,
            "partials": ",\n".join(
                f"       {e} AS {p}" for e, p in zip(partial, pnames, strict=True)
            ),
            "late_partials": ",\n".join(f"       {e}" for e in late),
            "key_select": "".join(f"l.{k}, " for k in keys),
            "candidate_windows": _candidate_windows(agg),
            "allowed_lateness_ms": str(lateness),
            "final_measures": ",\n".join(f"       {e}" for e in final),
        }
    )
    return params


def _alert_key(rule: AlertRule) -> str:
    return f"CAST({_ident(rule.key)} AS STRING)"


def rule_params(rule: AlertRule) -> dict[str, str]:
    base = {
        "rule_id": rule.rule_id,
        "event_type": rule.event_type,
        "key": _ident(rule.key),
        "alert_key": _alert_key(rule),
        "description": " ".join((rule.description or rule.kind).split()),
    }
    if isinstance(rule, ThresholdRule):
        return {
            **base,
            "times": str(rule.times),
            "within": rule.within,
            "within_interval": interval(registry.duration_ms(rule.within)),
            "condition": _cond(rule.condition, "A"),
            "numeric_measures": (
                f"MIN(A.{_ident(rule.condition.field)}) AS min_value, "
                f"MAX(A.{_ident(rule.condition.field)}) AS max_value"
                if isinstance(rule.condition.value, (int, float))
                and not isinstance(rule.condition.value, bool)
                else "CAST(NULL AS DOUBLE) AS min_value, CAST(NULL AS DOUBLE) AS max_value"
            ),
        }
    if isinstance(rule, SpikeRule):
        return {
            **base,
            "field": _ident(rule.field),
            "rise": repr(rule.rise),
            "within": rule.within,
            "within_interval": interval(registry.duration_ms(rule.within)),
        }
    if isinstance(rule, SequenceRule):
        vars_ = [f"S{i + 1}" for i in range(len(rule.steps))]
        pattern = " ".join(
            v if i == len(vars_) - 1 else f"{v} X{i + 1}*?" for i, v in enumerate(vars_)
        )
        return {
            **base,
            "within": rule.within,
            "within_interval": interval(registry.duration_ms(rule.within)),
            "pattern": pattern,
            # A gap row (X) is any row but one meeting the first step: a new first step
            # restarts the sequence, so a key has one open match at a time, not one per
            # first-step row within WITHIN (each re-extracting every other's rows).
            "defines": ",\n        ".join(
                [f"{v} AS {_cond(c, v)}" for v, c in zip(vars_, rule.steps, strict=True)]
                + [
                    f"X{i + 1} AS NOT COALESCE({_cond(rule.steps[0], f'X{i + 1}')}, FALSE)"
                    for i in range(len(vars_) - 1)
                ]
            ),
            "any_step": " OR ".join(
                f"({_ident(c.field)} {c.op} {_literal(c.value)})" for c in rule.steps
            ),
            "first_var": vars_[0],
            "last_var": vars_[-1],
            "steps": str(len(vars_)),
        }
    return {
        **base,
        "after": rule.after,
        "after_interval": interval(registry.duration_ms(rule.after)),
        "after_ms": str(registry.duration_ms(rule.after)),
    }


def gold_params(gc: GoldConfig, with_clauses: Mapping[str, str]) -> dict[str, str]:
    sections = []
    for name in gc.event_types():
        et = gc.registry.event_types[name]
        p = event_type_params(gc, et, with_clauses[f"silver_{name}"], with_clauses[f"late_{name}"])
        sections.append(sqlfile.render(SOURCE_SQL, p))
    aggs = []
    for agg in gc.aggregates.values():
        p = aggregate_params(gc, agg, with_clauses[agg.table])
        aggs.append(sqlfile.render(REVISED_SQL if agg.allowed_lateness else AGGREGATE_SQL, p))
    # Rules are queries joined into the alert INSERT, not views: Flink 2.2 fails to expand a view
    # over SESSION(... PARTITION BY ...) ("Column ... not found").
    rules = [sqlfile.render(RULE_SQL[r.kind], rule_params(r)) for r in gc.rules.values()]
    alert_sink = "-- (no alert rules configured)"
    if gc.rules:
        alert_sink = sqlfile.render(
            ALERT_SINK_SQL,
            {
                "alert_columns": tables.sql_columns(tables.ALERTS),
                "with_alert_events": with_clauses["alert_events"],
                "alert_union": "UNION ALL\n".join(f"(\n{r.rstrip()}\n)\n" for r in rules).rstrip(),
            },
        )
    return {
        "event_type_sections": "\n\n".join(sections),
        "aggregate_sections": "\n\n".join(aggs) or "-- (no Gold aggregates configured)",
        "alert_sink": alert_sink,
    }


def state_ttl_ms(gc: GoldConfig) -> int:
    """State TTL of the job's one non-windowed operator (the revision merge): a window's row must
    outlive its window, allowed lateness and the watermark's delay, in wall-clock time."""
    need = 3_600_000
    for agg in gc.aggregates.values():
        if agg.allowed_lateness is None:
            continue
        et = gc.registry.event_types[agg.event_type]
        span = agg.window.ms("size") + registry.duration_ms(agg.allowed_lateness)
        span += registry.duration_ms(et.watermark.max_out_of_orderness)
        need = max(need, span + 3_600_000)
    return need
