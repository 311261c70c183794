"""The device_anomaly job's config (conf/streams/device_anomaly.yaml) and its Spec: the config
checked against the onboarding registry, everything the topology needs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, field_validator

from streamlake.config import loader as config
from streamlake.config import registry

JOB_NAME = "device_anomaly"
CONFIG_FILE = Path("streams") / "device_anomaly.yaml"

_NUMERIC = ("int", "long", "double")
_KEYLIKE = ("string", "enum")


class ZScoreRule(config.Strict):
    rule_id: str = Field(pattern=registry.NAME.pattern)
    k: float = Field(gt=0)
    # Two readings are the fewest with a sample standard deviation.
    min_samples: int = Field(ge=2)


class SilenceRule(config.Strict):
    rule_id: str = Field(pattern=registry.NAME.pattern)
    after: registry.Duration


class DeviceAnomalyConfig(config.Strict):
    event_type: str
    key_field: str = Field(pattern=registry.NAME.pattern)
    value_field: str = Field(pattern=registry.NAME.pattern)
    zscore: ZScoreRule
    silence: SilenceRule
    state_ttl: registry.Duration
    idle_timeout: registry.Duration
    output_topic: str

    @field_validator("output_topic")
    @classmethod
    def _alert_topic(cls, v: str) -> str:
        if not registry.TOPIC.match(v) or not v.startswith("alert_"):
            raise ValueError("a topic name starting with alert_")
        return v


@dataclass(frozen=True)
class Spec:
    """Everything the job needs, resolved from its config and the registry."""

    config_file: Path
    event_type: str
    silver_topic: str
    key_field: str
    value_field: str
    watermark_ms: int
    idle_timeout_ms: int
    state_ttl_ms: int
    zscore_rule_id: str
    k: float
    min_samples: int
    silence_rule_id: str
    silence_ms: int
    output_topic: str


def load(conf_dir: Path) -> Spec:
    """Load conf/streams/device_anomaly.yaml and check it against the onboarding registry."""
    path = conf_dir / CONFIG_FILE
    cfg = config.load(DeviceAnomalyConfig, path)
    reg = registry.load_registry(conf_dir)
    et = reg.event_types.get(cfg.event_type)
    if et is None:
        known = ", ".join(sorted(reg.event_types)) or "none"
        raise config.ConfigError(
            path, "event_type", f"a known event type ({known}), got {cfg.event_type!r}"
        )
    if cfg.silence.rule_id == cfg.zscore.rule_id:
        raise config.ConfigError(
            path,
            "silence.rule_id",
            f"a rule id other than zscore.rule_id, got {cfg.silence.rule_id!r}",
        )
    if registry.duration_ms(cfg.state_ttl) <= registry.duration_ms(cfg.silence.after):
        # A device's state would expire before its silence alert is due.
        raise config.ConfigError(
            path, "state_ttl", f"a duration longer than silence.after, got {cfg.state_ttl!r}"
        )
    fields = et.silver_fields()
    for key, want in (("key_field", _KEYLIKE), ("value_field", _NUMERIC)):
        name = getattr(cfg, key)
        spec = fields.get(name)
        if spec is None or spec.type not in want:
            have = ", ".join(n for n, f in fields.items() if f.type in want) or "none"
            raise config.ConfigError(
                path, key, f"a {'/'.join(want)} field of {et.event_type} ({have}), got {name!r}"
            )
    return Spec(
        config_file=path,
        event_type=et.event_type,
        silver_topic=et.topic,
        key_field=cfg.key_field,
        value_field=cfg.value_field,
        # The event type's bound: how far a device's readings can arrive out of order (its reason
        # is in the event type's file). Readings later than this are not applied, and counted.
        watermark_ms=registry.duration_ms(et.watermark.max_out_of_orderness),
        idle_timeout_ms=registry.duration_ms(cfg.idle_timeout),
        state_ttl_ms=registry.duration_ms(cfg.state_ttl),
        zscore_rule_id=cfg.zscore.rule_id,
        k=cfg.zscore.k,
        min_samples=cfg.zscore.min_samples,
        silence_rule_id=cfg.silence.rule_id,
        silence_ms=registry.duration_ms(cfg.silence.after),
        output_topic=cfg.output_topic,
    )
