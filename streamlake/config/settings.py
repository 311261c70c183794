"""Typed platform settings (conf/platform.yaml): the Kafka broker, the Flink cluster, job defaults."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from streamlake.config import loader as config
from streamlake.config import paths
from streamlake.config.registry import Duration, duration_ms

_ID = re.compile(r"^[a-z][a-z0-9_]{0,39}$")

# The one override of where things are: in the compose stack (docker/compose.yaml) each process runs
# in its own container, so the broker and the JobManager are other hosts of the compose network.
# The YAML stays the same for both stacks; these variables, unset on the local stack, name them.
ENV_KAFKA_BOOTSTRAP = "STREAMLAKE_KAFKA_BOOTSTRAP"  # e.g. broker:9092
ENV_FLINK_HOST = "STREAMLAKE_FLINK_HOST"  # the JobManager's host (RPC and REST), e.g. jobmanager
_MEM = re.compile(r"^[1-9][0-9]*[mg]$")
MemorySize = Annotated[str, config.matching(_MEM, "a memory size such as 1600m or 2g")]


class KafkaSettings(config.Strict):
    host: Literal["127.0.0.1", "localhost"] = "127.0.0.1"
    port: int = Field(9092, ge=1024, le=65535)
    controller_port: int = Field(9093, ge=1024, le=65535)
    heap: Annotated[str, config.matching(_MEM, "a JVM size such as 512m or 1g")] = "1g"
    default_partitions: int = Field(3, ge=1, le=64)
    # The broker refuses producers whose transaction.timeout.ms is above this (Kafka's default 15 min).
    transaction_max_timeout_ms: int = Field(900_000, ge=60_000)
    # The one record-size limit: the broker's message.max.bytes, max.message.bytes of every topic
    # the platform creates, and max.request.size of every Flink Kafka sink. The Silver job's config
    # is checked against it: its largest DLQ and Silver rows must fit.
    max_message_bytes: int = Field(8_388_608, ge=1_048_576, le=104_857_600)

    def topic_config(self) -> dict[str, str]:
        """Topic configs every topic the platform creates gets."""
        return {"max.message.bytes": str(self.max_message_bytes)}

    @property
    def bootstrap(self) -> str:
        return os.environ.get(ENV_KAFKA_BOOTSTRAP) or f"{self.host}:{self.port}"


class RestartSettings(config.Strict):
    """Flink's failure-rate restart strategy: a job failing more than max_failures_per_interval
    times within interval ends FAILED instead of restarting forever on the same record."""

    max_failures_per_interval: int = Field(3, ge=1, le=1000)
    interval: Duration = "5min"
    delay: Duration = "10s"

    @model_validator(mode="after")
    def _can_fail(self) -> RestartSettings:
        # Restarts are at least `delay` apart, so unless max+1 of them fit in one interval the
        # rate is never exceeded and a job failing on every start restarts forever.
        if (self.max_failures_per_interval + 1) * duration_ms(self.delay) >= duration_ms(
            self.interval
        ):
            raise ValueError(
                "an interval longer than (max_failures_per_interval + 1) x delay; otherwise a job "
                "that fails on every start never exceeds the rate and restarts forever"
            )
        return self

    def flink_options(self) -> dict[str, str]:
        return {
            "restart-strategy.type": "failure-rate",
            "restart-strategy.failure-rate.max-failures-per-interval": str(
                self.max_failures_per_interval
            ),
            "restart-strategy.failure-rate.failure-rate-interval": f"{duration_ms(self.interval)} ms",
            "restart-strategy.failure-rate.delay": f"{duration_ms(self.delay)} ms",
        }


class FlinkSettings(config.Strict):
    rest_port: int = Field(8081, ge=1024, le=65535)
    rpc_port: int = Field(6123, ge=1024, le=65535)
    task_slots: int = Field(2, ge=1, le=16)
    jobmanager_memory: MemorySize = "1600m"
    taskmanager_memory: MemorySize = "2048m"
    parallelism: int = Field(1, ge=1, le=64)
    checkpoint_interval_ms: int = Field(5_000, ge=100)
    state_backend: Literal["rocksdb", "hashmap"] = "rocksdb"
    # Prometheus reporter port; null keeps it off, because the reporter cannot bind to loopback only.
    prometheus_port: int | None = Field(None, ge=1024, le=65535)
    # Jobs on the cluster; the local executor (tests, `jobs run`) fails at the first failure.
    restart: RestartSettings = RestartSettings()

    @property
    def host(self) -> str:
        """The JobManager's address: loopback, or STREAMLAKE_FLINK_HOST in the compose stack."""
        return os.environ.get(ENV_FLINK_HOST) or "127.0.0.1"

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.rest_port}"


class SinkSettings(config.Strict):
    # Kafka transaction timeout of the Flink exactly-once sinks. Must exceed the longest time between
    # a checkpoint and its commit (checkpoint interval + recovery) and stay below the broker maximum.
    transaction_timeout_ms: int = Field(600_000, ge=10_000)
    # exactly-once (the default: Kafka transactions committed on checkpoints) or at-least-once
    # (no transactions; output is visible at once and may repeat after a failure). The benchmark
    # runs both to show what exactly-once costs.
    delivery_guarantee: Literal["exactly-once", "at-least-once"] = "exactly-once"


class SupervisorSettings(config.Strict):
    """`jobs up`'s supervisor: a process of the stack that dies is started again after a back-off
    that doubles from backoff_initial to backoff_max on every failure in a row, and falls back to
    backoff_initial once the process has stayed up for reset_after."""

    backoff_initial: Duration = "1s"
    backoff_max: Duration = "30s"
    reset_after: Duration = "60s"

    @model_validator(mode="after")
    def _ordered(self) -> SupervisorSettings:
        if duration_ms(self.backoff_initial) > duration_ms(self.backoff_max):
            raise ValueError("backoff_initial no longer than backoff_max")
        return self

    def backoff_s(self, failures_in_a_row: int) -> float:
        """Seconds to wait before the restart that follows the n-th failure in a row (n >= 1)."""
        ms = duration_ms(self.backoff_initial) * 2 ** max(0, min(failures_in_a_row - 1, 30))
        return float(min(ms, duration_ms(self.backoff_max))) / 1000


class PlatformSettings(config.Strict):
    pipeline_id: Annotated[
        str,
        config.matching(_ID, "lower-case letters, digits and _ (start with a letter, at most 40)"),
    ] = "streamlake"
    kafka: KafkaSettings = KafkaSettings()
    flink: FlinkSettings = FlinkSettings()
    sinks: SinkSettings = SinkSettings()
    supervisor: SupervisorSettings = SupervisorSettings()

    @model_validator(mode="after")
    def _timeouts(self) -> PlatformSettings:
        if self.sinks.transaction_timeout_ms > self.kafka.transaction_max_timeout_ms:
            raise ValueError(
                f"sinks.transaction_timeout_ms ({self.sinks.transaction_timeout_ms}) must not exceed "
                f"kafka.transaction_max_timeout_ms ({self.kafka.transaction_max_timeout_ms})"
            )
        if self.flink.checkpoint_interval_ms * 2 >= self.sinks.transaction_timeout_ms:
            raise ValueError(
                "sinks.transaction_timeout_ms must be well above flink.checkpoint_interval_ms "
                "(at least twice), or open transactions expire before their checkpoint commits"
            )
        return self


DEFAULT_FILE = paths.CONF_DIR / "platform.yaml"


def load_platform(path: Path | None = None) -> PlatformSettings:
    return config.load(PlatformSettings, path or DEFAULT_FILE)
