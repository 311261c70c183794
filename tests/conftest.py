"""Shared fixtures. Tiers by folder: tests/unit (no JVM), tests/job (local executor + real broker),
tests/integration (the running stack). Every test gets its own topics, group ids and config."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from connectors import kafka
from jobs import paths, settings
from jobs.settings import PlatformSettings

_TIERS = {"unit": "unit", "job": "job", "integration": "integration"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = Path(str(item.fspath)).parent.name
        if tier in _TIERS:
            item.add_marker(getattr(pytest.mark, _TIERS[tier]))


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
    """A private copy of conf/ with per-test pipeline id (so group and transactional ids) and
    topics; `edit(path, key, value)` changes one YAML key."""

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
