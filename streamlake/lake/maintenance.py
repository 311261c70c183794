"""Delta table maintenance: compaction, log checkpoints, vacuum. The loader runs them between its
own commits; `python -m jobs lake optimize|vacuum|checkpoint` runs them by hand."""

from __future__ import annotations

from deltalake import DeltaTable

from streamlake.lake.sink import DeltaSink


def maintain(sink: DeltaSink, action: str, retention_hours: int = 168) -> str:
    """optimize (compact small files), checkpoint (Delta log), or vacuum (safe retention)."""
    dt = DeltaTable(sink.uri, storage_options=dict(sink.storage_options or {}))
    if action == "optimize":
        metrics = dt.optimize.compact()
        return f"{sink.table}: optimize {metrics.get('numFilesRemoved', 0)} files -> {metrics.get('numFilesAdded', 0)}"
    if action == "checkpoint":
        dt.create_checkpoint()
        return f"{sink.table}: checkpoint at version {dt.version()}"
    if action == "vacuum":
        removed = dt.vacuum(
            retention_hours=retention_hours, enforce_retention_duration=True, dry_run=False
        )
        return f"{sink.table}: vacuum removed {len(removed)} files older than {retention_hours} h"
    raise ValueError(action)
