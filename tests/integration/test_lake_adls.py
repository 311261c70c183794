"""The lake on ADLS Gen2 (abfss://), against the Azurite emulator's blob endpoint on loopback.

Credentials come from the environment through `${env:...}` references in conf/lake.yaml, never
from YAML. Azurite runs with telemetry off: nothing leaves the machine.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from deltalake import DeltaTable

from connectors import kafka
from streamlake.config import loader as config
from streamlake.config import paths
from streamlake.lake import landing as lake
from streamlake.lake.loader import Loader
from streamlake.lake.sink import read_delta
from tests.conftest import SilverConf

# Azurite's documented development account and key: public constants, not a secret.
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def azurite(tmp_path: Path) -> Iterator[str]:
    exe = paths.STACK / "node" / "node_modules" / ".bin" / "azurite-blob"
    assert exe.exists(), "run `make azurite` (make test does)"
    port = free_port()
    proc = subprocess.Popen(
        [
            str(exe),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--location",
            str(tmp_path / "azurite"),
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert proc.poll() is None and time.monotonic() < deadline, "Azurite did not start"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/{ACCOUNT}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_loader_writes_the_lake_to_adls_exactly_once(
    silver_conf: SilverConf, bootstrap: str, azurite: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sc = silver_conf
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", ACCOUNT)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", KEY)
    # object_store's emulator mode takes its endpoint from this variable.
    monkeypatch.setenv("AZURITE_BLOB_STORAGE_URL", azurite.rsplit("/", 1)[0])
    sc.edit(
        "lake.yaml",
        lake_root=f"abfss://lake@{ACCOUNT}.dfs.core.windows.net/t{sc.uid}",
        consumer_group=f"loader-{sc.uid}",
        instance_id=f"loader-{sc.uid}",
        storage_options={
            "azure_storage_account_name": "${env:AZURE_STORAGE_ACCOUNT_NAME}",
            "azure_storage_account_key": "${env:AZURE_STORAGE_ACCOUNT_KEY}",
            "azure_storage_use_emulator": "true",
        },
    )
    settings_, sinks = lake.all_sinks(sc.dir)  # creates the filesystem
    bronze = next(s for s in sinks if s.table == "bronze_events")
    kafka.create_topics(bootstrap, list(bronze.topics), partitions=2)
    records = [(None, json.dumps({"tenant_id": "acme", "n": i}).encode()) for i in range(500)]
    kafka.produce(bootstrap, sc.bronze("acme"), records)

    def load(group: str, instance_id: str) -> DeltaTable:
        Loader(
            bootstrap, group, [bronze], flush_rows=200, flush_ms=100, instance_id=instance_id
        ).run(idle_exit_s=2)
        return DeltaTable(bronze.uri, storage_options=dict(bronze.storage_options or {}))

    dt = load(settings_.consumer_group, settings_.instance_id)
    assert bronze.uri.startswith("abfss://lake@")
    assert read_delta(dt).num_rows == 500
    version = dt.version()
    # A replay from a NEW consumer group (no Kafka offsets: it starts from the earliest) reads
    # where the Delta log says the table stopped. With 100 more records sent meanwhile, it must
    # add exactly those: the 500 are not loaded again.
    more = [(None, json.dumps({"tenant_id": "acme", "n": i}).encode()) for i in range(500, 600)]
    kafka.produce(bootstrap, sc.bronze("acme"), more)
    dt = load(f"replay-{sc.uid}", f"replay-{sc.uid}")
    rows = read_delta(dt, ["raw_value", "kafka_partition", "kafka_offset"]).to_pylist()
    assert sorted(json.loads(r["raw_value"])["n"] for r in rows) == list(range(600))
    assert len({(r["kafka_partition"], r["kafka_offset"]) for r in rows}) == 600
    assert dt.version() > version
    version = dt.version()
    load(f"replay2-{sc.uid}", f"replay2-{sc.uid}")  # nothing new: no commit at all
    dt = DeltaTable(bronze.uri, storage_options=dict(bronze.storage_options or {}))
    assert (dt.version(), read_delta(dt).num_rows) == (version, 600)
    kafka.delete_topics(bootstrap, list(bronze.topics))


def test_a_secret_value_in_lake_yaml_is_refused(silver_conf: SilverConf) -> None:
    silver_conf.edit("lake.yaml", storage_options={"azure_storage_account_key": "abc123"})
    with pytest.raises(
        config.ConfigError, match=r"storage_options\.azure_storage_account_key: a reference"
    ):
        lake.all_sinks(silver_conf.dir)
