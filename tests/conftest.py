"""Shared fixtures. Tiers by folder: tests/unit (no JVM), tests/job (local executor + real broker),
tests/integration (the running stack). Every test gets its own topics, group ids and config."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors import kafka
from streamlake.config import paths, settings
from streamlake.config.settings import PlatformSettings

_TIERS = ("unit", "job", "integration")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = Path(str(item.fspath)).parent.name
        if tier in _TIERS:
            item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def platform() -> PlatformSettings:
    return settings.load_platform()


@pytest.fixture(scope="session")
def bootstrap(platform: PlatformSettings) -> str:
    """The real local broker. Its absence is a failure, not a skip: `make test` starts it."""
    if not kafka.broker_ready(platform.kafka.bootstrap, timeout_s=5):
        pytest.fail(
            f"no Kafka broker at {platform.kafka.bootstrap}: run `make up` (make test does)"
        )
    return platform.kafka.bootstrap


@pytest.fixture
def uid() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def topic_factory(bootstrap: str, uid: str) -> Iterator[Callable[..., str]]:
    """Create uniquely named topics for one test; delete them afterwards."""
    made: list[str] = []

    def make(prefix: str, partitions: int = 3) -> str:
        name = f"{prefix}_t{uid}_{len(made)}"
        kafka.create_topics(bootstrap, [name], partitions=partitions)
        made.append(name)
        return name

    yield make
    kafka.delete_topics(bootstrap, made)


@pytest.fixture
def conf_dir(tmp_path: Path, uid: str) -> Callable[..., Path]:
    """A private copy of conf/ with a per-test pipeline id (so group and transactional ids) and
    the demo job's topics overridden by keyword."""

    def make(**job_overrides: str) -> Path:
        d = tmp_path / "conf"
        if d.exists():
            shutil.rmtree(d)
        shutil.copytree(paths.CONF_DIR, d)
        plat = yaml.safe_load((d / "platform.yaml").read_text())
        plat["pipeline_id"] = f"t{uid}"
        (d / "platform.yaml").write_text(yaml.safe_dump(plat))
        job_file = d / "jobs" / "demo_event_counts.yaml"
        job = yaml.safe_load(job_file.read_text())
        job.update(job_overrides)
        job_file.write_text(yaml.safe_dump(job))
        return d

    return make


@dataclass
class SilverConf:
    """A private copy of conf/ for one test: its own topics, groups and transactional ids."""

    dir: Path
    uid: str

    def topic(self, base: str) -> str:
        return f"{base}_t{self.uid}"

    @property
    def dlq(self) -> str:
        return self.topic("dlq_events")

    @property
    def audit(self) -> str:
        return self.topic("audit_silver_counts")

    def bronze(self, tenant: str) -> str:
        return self.topic(f"bronze_{tenant}_events")

    def silver(self, event_type: str) -> str:
        return self.topic(f"silver_{event_type}")

    def edit(self, rel: str, **changes: Any) -> None:
        p = self.dir / rel
        data = yaml.safe_load(p.read_text()) if p.exists() else {}
        data.update(changes)
        p.write_text(yaml.safe_dump(data, sort_keys=False))


def make_silver_conf(base: Path, uid: str) -> SilverConf:
    d = base / "conf"
    shutil.copytree(paths.CONF_DIR, d)
    sc = SilverConf(d, uid)
    sc.edit("platform.yaml", pipeline_id=f"t{uid}")
    for f in sorted((d / "tenants").glob("*.yaml")):
        sc.edit(f"tenants/{f.name}", topics=[sc.bronze(f.stem)])
    for f in sorted((d / "event_types").glob("*.yaml")):
        sc.edit(f"event_types/{f.name}", silver_topic=sc.silver(f.stem))
    sc.edit("silver.yaml", dlq_topic=sc.dlq, audit_topic=sc.audit)
    return sc


@pytest.fixture(scope="session", autouse=True)
def _pii_hash_key() -> Iterator[None]:
    """The Silver job resolves its keyed-hash secret from the environment, as in production."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STREAMLAKE_PII_HASH_KEY", "test-key")
        yield


@pytest.fixture
def silver_conf(tmp_path: Path, uid: str) -> SilverConf:
    return make_silver_conf(tmp_path, uid)
