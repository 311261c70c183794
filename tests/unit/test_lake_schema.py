"""Delta schema evolution in the loader: additive changes evolve the table, type changes are
refused with an error that names the table, the column and both types."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from streamlake.lake.sink import DeltaSink, SchemaChangeRefused, read_delta


class Msg:
    def __init__(self, offset: int, value: dict[str, Any]) -> None:
        self._o, self._v = offset, json.dumps(value).encode()

    def topic(self) -> str:
        return "silver_x"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._o

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_767_225_600_000 + self._o)

    def value(self) -> bytes:
        return self._v

    def key(self) -> None:
        return None


def sink(path: Path, *cols: tuple[str, pa.DataType]) -> DeltaSink:
    return DeltaSink("silver_x", ("silver_x",), str(path), pa.schema(list(cols)), ("tenant_id",))


def test_additive_change_evolves_and_type_change_is_refused(tmp_path: Path) -> None:
    uri = tmp_path / "silver_x"
    v1 = sink(uri, ("tenant_id", pa.string()), ("amount", pa.int64()))
    v1.commit([Msg(0, {"tenant_id": "acme", "amount": 5})])
    v2 = sink(uri, ("tenant_id", pa.string()), ("amount", pa.int64()), ("channel", pa.string()))
    v2.commit([Msg(1, {"tenant_id": "acme", "amount": 6, "channel": "web"})])
    table = read_delta(str(uri))
    assert "channel" in table.column_names and table.num_rows == 2
    assert DeltaTable(str(uri)).transaction_version("kafka:silver_x:0") == 1

    v3 = sink(uri, ("tenant_id", pa.string()), ("amount", pa.string()))
    with pytest.raises(
        SchemaChangeRefused, match=r"column 'amount' is int64 in the table but string"
    ):
        v3.commit([Msg(2, {"tenant_id": "acme", "amount": "7"})])
    assert read_delta(str(uri)).num_rows == 2  # nothing half-written


def test_replayed_offsets_are_skipped_before_writing(tmp_path: Path) -> None:
    s = sink(tmp_path / "t", ("tenant_id", pa.string()), ("amount", pa.int64()))
    msgs = [Msg(i, {"tenant_id": "acme", "amount": i}) for i in range(3)]
    assert s.commit(msgs) is not None
    version = DeltaTable(str(tmp_path / "t")).version()
    assert s.commit(msgs) is None  # all recorded: no write, no new version
    assert s.commit([*msgs, Msg(3, {"tenant_id": "acme", "amount": 3})]).num_rows == 1  # type: ignore[union-attr]
    assert DeltaTable(str(tmp_path / "t")).version() == version + 1


def test_maintenance_compacts_checkpoints_and_vacuums_safely(tmp_path: Path) -> None:
    from streamlake.lake.maintenance import maintain

    s = sink(tmp_path / "m", ("tenant_id", pa.string()), ("amount", pa.int64()))
    for i in range(6):
        s.commit([Msg(i, {"tenant_id": "acme", "amount": i})])
    before = len(DeltaTable(s.uri).file_uris())
    assert "optimize 6 files -> 1" in maintain(s, "optimize")
    assert len(DeltaTable(s.uri).file_uris()) == 1 < before
    maintain(s, "checkpoint")
    assert (tmp_path / "m" / "_delta_log" / "_last_checkpoint").exists()
    # Vacuum keeps what a reader of the last 7 days may still need: the compacted-away files stay.
    assert "removed 0 files" in maintain(s, "vacuum", retention_hours=168)
    t = DeltaTable(s.uri)
    assert read_delta(t).num_rows == 6
    assert t.transaction_version("kafka:silver_x:0") == 5  # app transactions survive compaction


def test_a_row_larger_than_pyarrows_default_block_is_loaded(tmp_path: Path) -> None:
    # pyarrow.json refuses a row straddling two 1 MiB blocks; a Silver row can be several MiB.
    s = sink(tmp_path / "silver_x", ("tenant_id", pa.string()), ("note", pa.string()))
    big = "x" * 3_000_000
    s.commit(
        [Msg(i, {"tenant_id": "acme", "note": "y"}) for i in range(3)]
        + [
            Msg(3, {"tenant_id": "acme", "note": big}),
            Msg(4, {"tenant_id": "acme", "note": "z"}),
        ]
    )
    notes = read_delta(str(tmp_path / "silver_x")).column("note").to_pylist()
    assert sorted(notes) == sorted(["y", "y", "y", big, "z"])
