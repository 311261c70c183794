"""Gold aggregates and CEP alert rules from YAML, typed and checked against the onboarding registry.

    conf/gold.yaml              the Gold job: alert topic, late topics, idle timeout
    conf/gold/<name>.yaml       one event-time aggregate: window, group-by keys, measures,
                                optional allowed lateness (late rows revise the window)
    conf/alerts/<rule_id>.yaml  one alert rule: threshold, spike, sequence or absence

load_gold checks every field exists and has a type its measure or rule accepts; the Gold job's SQL
is compiled from the result by streamlake/compile/gold.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import Field, field_validator, model_validator

from streamlake.config import loader as config
from streamlake.config import registry, tables
from streamlake.config.registry import Duration, FieldSpec, Registry

WindowKind = Literal["tumble", "hop", "cumulate", "session"]
MeasureFn = Literal["count", "count_distinct", "sum", "min", "max", "avg", "percentile"]
# Measures a late row can be merged into after the window fired (sum of parts = whole).
MERGEABLE: frozenset[str] = frozenset({"count", "sum", "min", "max", "avg"})
NUMERIC = ("int", "long", "double")
GROUPABLE = ("string", "enum", "int", "long", "boolean")
MAX_REVISED_WINDOWS = 100  # hop/cumulate windows one late row may revise


class GoldRunner(config.Strict):
    alert_topic: str = "alert_events"
    # Late rows of event type X go to late_X unless overridden here.
    late_topics: dict[str, str] = Field(default_factory=dict)
    idle_timeout: Duration = "2min"
    # on-event: the watermark advances with every row, so which rows are late depends only on
    # the order of rows in each partition (replays give the same Gold, late rows and alerts).
    # on-periodic: every pipeline.auto-watermark-interval (200 ms), cheaper, timing-dependent.
    watermark_emit: Literal["on-event", "on-periodic"] = "on-periodic"
    # Where the job keeps its state; unset: the platform's (conf/platform.yaml flink.state_backend).
    state_backend: Literal["rocksdb", "hashmap"] | None = None

    def late_topic(self, event_type: str) -> str:
        return self.late_topics.get(event_type, f"late_{event_type}")


class Window(config.Strict):
    kind: WindowKind
    size: Duration | None = None
    slide: Duration | None = None  # hop
    step: Duration | None = None  # cumulate
    gap: Duration | None = None  # session

    @model_validator(mode="after")
    def _shape(self) -> Window:
        need = set(self.spec.params)
        given = {k for k in ("size", "slide", "step", "gap") if getattr(self, k) is not None}
        if given != need:
            raise ValueError(f"a {self.kind} window takes exactly {', '.join(sorted(need))}")
        self.spec.check(self)
        return self

    @property
    def spec(self) -> _WindowKind:
        """What this kind of window is: its parameters, their constraints, its windows per row."""
        return WINDOW_KINDS[self.kind]

    def ms(self, key: str) -> int:
        value = getattr(self, key)
        assert value is not None
        return registry.duration_ms(value)

    def describe(self) -> str:
        return self.spec.describe(self)


# ---- window kinds: each kind owns its parameters, the constraints between them, its description
# and how many windows a row falls in; its SQL (the window TVF, the windows a late row revises) is
# the compiler's (streamlake/compile/gold.py WINDOW_SQL). Nothing else switches on kind.


class _WindowKind:
    params: tuple[str, ...] = ()
    # Why late rows cannot revise windows of this kind (None: they can, with allowed_lateness).
    not_revisable: str | None = None

    def check(self, w: Window) -> None:
        """Constraints between the parameters, beyond which ones are given."""

    def describe(self, w: Window) -> str:
        raise NotImplementedError

    def windows_per_row(self, w: Window) -> int:
        return 1


class _Tumble(_WindowKind):
    params = ("size",)

    def describe(self, w: Window) -> str:
        return f"tumbling {w.size}"


class _Sliced(_WindowKind):
    """A window of `size` made of slices of `part` (hop: slide; cumulate: step)."""

    part = ""

    def check(self, w: Window) -> None:
        size_ms, part_ms = w.ms("size"), w.ms(self.part)
        if size_ms % part_ms or size_ms <= part_ms:
            raise ValueError(f"size a multiple (at least 2x) of {self.part}")

    def windows_per_row(self, w: Window) -> int:
        return w.ms("size") // w.ms(self.part)


class _Hop(_Sliced):
    params = ("size", "slide")
    part = "slide"

    def describe(self, w: Window) -> str:
        return f"hopping {w.size} every {w.slide}"


class _Cumulate(_Sliced):
    params = ("size", "step")
    part = "step"

    def describe(self, w: Window) -> str:
        return f"cumulating every {w.step} up to {w.size}"


class _Session(_WindowKind):
    params = ("gap",)
    not_revisable = (
        "no allowed_lateness on a session window (a late row can merge two sessions that "
        "were already emitted); late rows still go to the late topic"
    )

    def describe(self, w: Window) -> str:
        return f"session (gap {w.gap})"


WINDOW_KINDS: dict[str, _WindowKind] = {
    "tumble": _Tumble(),
    "hop": _Hop(),
    "cumulate": _Cumulate(),
    "session": _Session(),
}


class Measure(config.Strict):
    fn: MeasureFn
    field: str | None = None
    p: float | None = Field(None, gt=0, lt=1)  # percentile

    @model_validator(mode="after")
    def _shape(self) -> Measure:
        if self.fn != "count" and self.field is None:
            raise ValueError(f"{self.fn} takes field: <a Silver field>")
        if (self.fn == "percentile") != (self.p is not None):
            raise ValueError("percentile takes p: (0..1), and only percentile does")
        return self


class GoldAggregate(config.Strict):
    name: Annotated[
        str, config.matching(registry.NAME, "an aggregate name in snake_case (a-z, 0-9, _)")
    ]
    description: str = ""
    event_type: str
    topic: str | None = None
    window: Window
    group_by: list[str] = Field(default_factory=list)
    measures: dict[str, Measure]
    # Late rows whose window closed less than this long ago (in event time) revise it: the
    # Gold row is upserted with the late row merged in. Without it late rows only go to late_.
    allowed_lateness: Duration | None = None

    @field_validator("measures")
    @classmethod
    def _measures(cls, v: dict[str, Measure]) -> dict[str, Measure]:
        if not v:
            raise ValueError("at least one measure")
        for n in v:
            if not registry.NAME.match(n) or n in tables.GOLD_RESERVED:
                raise ValueError(
                    f"measure name {n!r} in snake_case, not one of {tables.GOLD_RESERVED}"
                )
        return v

    @property
    def table(self) -> str:
        return f"gold_{self.name}"

    @property
    def kafka_topic(self) -> str:
        return self.topic or self.table


Op = Literal[">", ">=", "<", "<=", "=", "<>"]


class Condition(config.Strict):
    field: str
    op: Op
    value: float | int | bool | str


class _Rule(config.Strict):
    rule_id: Annotated[str, config.matching(registry.NAME, "a rule id in snake_case (a-z, 0-9, _)")]
    description: str = ""
    event_type: str
    key: str  # the field alerts are keyed by (e.g. device_id)


class ThresholdRule(_Rule):
    """`condition` holds for `times` consecutive events of a key, all within `within`."""

    kind: Literal["threshold"]
    condition: Condition
    times: int = Field(ge=1, le=100)
    within: Duration


class SpikeRule(_Rule):
    """`field` rises by more than `rise` from one event of a key to the next, less than `within` apart."""

    kind: Literal["spike"]
    field: str
    rise: float = Field(gt=0)
    within: Duration


class SequenceRule(_Rule):
    """Events matching `steps` in order (others may come between), all within `within`."""

    kind: Literal["sequence"]
    steps: list[Condition] = Field(min_length=2, max_length=5)
    within: Duration


class AbsenceRule(_Rule):
    """No event from a key for `after` (event time): raised when the watermark passes it."""

    kind: Literal["absence"]
    after: Duration


AlertRule = ThresholdRule | SpikeRule | SequenceRule | AbsenceRule
_RULE_MODELS: dict[str, type[AlertRule]] = {
    "threshold": ThresholdRule,
    "spike": SpikeRule,
    "sequence": SequenceRule,
    "absence": AbsenceRule,
}


@dataclass(frozen=True)
class GoldConfig:
    runner: GoldRunner
    aggregates: dict[str, GoldAggregate]
    rules: dict[str, AlertRule]
    registry: Registry

    def event_types(self) -> list[str]:
        used = {a.event_type for a in self.aggregates.values()}
        used |= {r.event_type for r in self.rules.values()}
        return sorted(used)


def _load_rule(path: Path) -> AlertRule:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise config.ConfigError(path, "", f"not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise config.ConfigError(path, "", "expected a mapping at the top level")
    kind = data.get("kind")
    if kind not in _RULE_MODELS:
        raise config.ConfigError(path, "kind", f"one of {', '.join(_RULE_MODELS)}, got {kind!r}")
    return config.parse(_RULE_MODELS[kind], data, path)


def _field(
    reg: Registry, et_name: str, name: str, file: Path, key: str, kinds: tuple[str, ...]
) -> FieldSpec:
    et = reg.event_types[et_name]
    fields = {n: f for n, f in et.silver_fields().items() if f.pii != "drop"}
    spec = fields.get(name)
    if spec is None:
        raise config.ConfigError(
            file, key, f"a Silver field of {et_name} ({', '.join(fields)}), got {name!r}"
        )
    if spec.type not in kinds:
        raise config.ConfigError(
            file, key, f"a field of type {'/'.join(kinds)}; {name} is {spec.type}"
        )
    return spec


def _check_event_type(reg: Registry, name: str, file: Path) -> None:
    if name not in reg.event_types:
        known = ", ".join(sorted(reg.event_types))
        raise config.ConfigError(file, "event_type", f"a known event type ({known}), got {name!r}")


def _check_condition(reg: Registry, et: str, c: Condition, file: Path, key: str) -> None:
    spec = _field(reg, et, c.field, file, f"{key}.field", (*GROUPABLE, "double"))
    numeric = spec.type in NUMERIC
    if numeric and (isinstance(c.value, (bool, str))):
        raise config.ConfigError(file, f"{key}.value", f"a number ({c.field} is {spec.type})")
    if spec.type == "boolean" and (not isinstance(c.value, bool) or c.op not in ("=", "<>")):
        raise config.ConfigError(file, key, f"= or <> with true/false ({c.field} is boolean)")
    if spec.type in ("string", "enum"):
        if not isinstance(c.value, str) or c.op not in ("=", "<>"):
            raise config.ConfigError(file, key, f"= or <> with a string ({c.field} is {spec.type})")
        if spec.values is not None and c.value not in spec.values:
            raise config.ConfigError(
                file, f"{key}.value", f"one of {spec.values} (the enum's values), got {c.value!r}"
            )


def load_gold(conf_dir: Path, reg: Registry | None = None) -> GoldConfig:
    reg = reg or registry.load_registry(conf_dir)
    runner_file = conf_dir / "gold.yaml"
    runner = config.load(GoldRunner, runner_file) if runner_file.exists() else GoldRunner()
    for et in runner.late_topics:
        if et not in reg.event_types:
            raise config.ConfigError(runner_file, f"late_topics.{et}", "a known event type")
    aggregates: dict[str, GoldAggregate] = {}
    for f in sorted((conf_dir / "gold").glob("*.yaml")):
        agg = config.load(GoldAggregate, f)
        config.check_named_after_file(f, "name", agg.name)
        _check_event_type(reg, agg.event_type, f)
        for i, k in enumerate(agg.group_by):
            _field(reg, agg.event_type, k, f, f"group_by[{i}]", GROUPABLE)
            etype = reg.event_types[agg.event_type]
            if not all(k in v.fields and v.fields[k].required for v in etype.versions.values()):
                raise config.ConfigError(
                    f,
                    f"group_by[{i}]",
                    f"a field required in every version of {agg.event_type} (a Gold row's key "
                    f"is its primary key and cannot be null); {k} is optional somewhere",
                )
        if len(set(agg.group_by)) != len(agg.group_by):
            raise config.ConfigError(f, "group_by", "distinct field names")
        for n, m in agg.measures.items():
            if m.field is None:
                continue
            kinds = (*GROUPABLE, "double") if m.fn in ("count", "count_distinct") else NUMERIC
            _field(reg, agg.event_type, m.field, f, f"measures.{n}.field", kinds)
        if agg.allowed_lateness is not None:
            if agg.window.spec.not_revisable is not None:
                raise config.ConfigError(f, "allowed_lateness", agg.window.spec.not_revisable)
            for n, m in agg.measures.items():
                if m.fn not in MERGEABLE:
                    raise config.ConfigError(
                        f,
                        f"measures.{n}.fn",
                        f"a measure that late rows can be merged into ({', '.join(sorted(MERGEABLE))}) "
                        f"when allowed_lateness is set; {m.fn} needs every row of the window",
                    )
            if agg.window.spec.windows_per_row(agg.window) > MAX_REVISED_WINDOWS:
                raise config.ConfigError(
                    f,
                    "window",
                    f"at most {MAX_REVISED_WINDOWS} windows per row with allowed_lateness",
                )
        aggregates[agg.name] = agg
    rules: dict[str, AlertRule] = {}
    for f in sorted((conf_dir / "alerts").glob("*.yaml")):
        rule = _load_rule(f)
        config.check_named_after_file(f, "rule_id", rule.rule_id)
        _check_event_type(reg, rule.event_type, f)
        _field(reg, rule.event_type, rule.key, f, "key", GROUPABLE)
        if isinstance(rule, ThresholdRule):
            _check_condition(reg, rule.event_type, rule.condition, f, "condition")
        elif isinstance(rule, SpikeRule):
            _field(reg, rule.event_type, rule.field, f, "field", NUMERIC)
        elif isinstance(rule, SequenceRule):
            for i, c in enumerate(rule.steps):
                _check_condition(reg, rule.event_type, c, f, f"steps[{i}]")
        rules[rule.rule_id] = rule
    topics = [a.kafka_topic for a in aggregates.values()]
    if len(set(topics)) != len(topics):
        raise config.ConfigError(conf_dir / "gold", "topic", "one topic per aggregate")
    return GoldConfig(runner, aggregates, rules, reg)
