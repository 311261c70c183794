"""The lake's settings (conf/lake.yaml): where the Delta tables live, how the loader reads and
commits, and how often maintenance runs. Which topic lands in which table is
streamlake/lake/landing.py."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from streamlake.config import loader as config
from streamlake.config import paths
from streamlake.config.registry import Duration

_SECRET_KEY = ("key", "secret", "token", "password", "sas", "connection_string")


class LakeSettings(config.Strict):
    lake_root: str = "lake"
    # object_store options for a remote lake (abfss://...). Anything secret is an ${env:NAME}
    # reference, resolved at start; plain values are for non-secrets such as
    # azure_storage_use_emulator.
    storage_options: dict[str, str] = Field(default_factory=dict)
    consumer_group: str = "streamlake.loader"
    instance_id: str = "loader-0"
    flush_rows: int = Field(50_000, ge=1, le=1_000_000)
    flush_ms: int = Field(1000, ge=10, le=600_000)
    maintenance_every: Duration = "10min"
    vacuum_retention: Duration = "7d"

    def resolved_storage_options(self, file: Path) -> dict[str, str]:
        out = {}
        for k, v in self.storage_options.items():
            if v.startswith("${env:"):
                out[k] = config.resolve_secret(v, file, f"storage_options.{k}")
            elif any(word in k.lower() for word in _SECRET_KEY):
                raise config.ConfigError(
                    file,
                    f"storage_options.{k}",
                    "a reference like ${env:NAME}; secrets are never values in YAML",
                )
            else:
                out[k] = v
        return out

    def root(self) -> str:
        if "://" in self.lake_root:
            return self.lake_root
        return str((paths.REPO / self.lake_root).resolve())


def load_lake(conf_dir: Path | None = None) -> LakeSettings:
    return config.load(LakeSettings, (conf_dir or paths.CONF_DIR) / "lake.yaml")
