"""A Delta table's files as they appear, and the ones its log commits: where a kill landed.

A crash between writing a commit's Parquet files and committing them leaves data files that no
commit of the log names. Watching the folder with inotify sees a file put in place within
microseconds, where a commit's files and its log entry are milliseconds apart, so a test can kill
a writer in that window and prove afterwards that the kill landed there.

(tests/integration/test_chaos.py still has its own copy of these; it should import them from
here.)
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from inotify_simple import INotify, flags


class Appearing:
    """Files and folders as they are put in place under `root` (inotify: seen within
    microseconds, where a Delta commit's files and its log entry, or a checkpoint's trigger and
    its completion, are milliseconds apart). Folders named in `skip` are not watched."""

    def __init__(self, root: Path, skip: tuple[str, ...] = ()) -> None:
        self.skip = skip
        self.ino = INotify()
        self.mask = flags.CREATE | flags.MOVED_TO
        self.dirs: dict[int, Path] = {}
        root.mkdir(parents=True, exist_ok=True)  # the writer makes the table at its first commit
        self.watch(root)

    def watch(self, d: Path) -> None:
        if d.name in self.skip or d in self.dirs.values():
            return
        try:
            self.dirs[self.ino.add_watch(str(d), self.mask)] = d
            subs = sorted(p for p in d.iterdir() if p.is_dir())
        except FileNotFoundError:  # gone already (a discarded checkpoint)
            return
        for sub in subs:
            self.watch(sub)

    def next(self, match: Callable[[Path, bool], bool], timeout_s: float) -> Path | None:
        """The next path put in place for which match(path, is_dir) holds, None after timeout_s."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            for ev in self.ino.read(timeout=max(1, int(left * 1000))):
                d = self.dirs.get(ev.wd)
                if d is None:
                    continue
                path, is_dir = d / str(ev.name), bool(ev.mask & flags.ISDIR)
                if is_dir:
                    self.watch(path)
                if match(path, is_dir):
                    return path
        return None

    def drain(self) -> None:
        """Forget what appeared so far (still watching the folders that were made)."""
        for ev in self.ino.read(timeout=0):
            d = self.dirs.get(ev.wd)
            if d is not None and ev.mask & flags.ISDIR:
                self.watch(d / str(ev.name))

    def close(self) -> None:
        self.ino.close()


def is_data_file(p: Path, is_dir: bool) -> bool:
    return not is_dir and p.suffix == ".parquet" and not p.name.startswith(".")


def committed_files(table_dir: Path) -> set[str]:
    """Every data file any commit of the table's log added (paths relative to the table)."""
    out: set[str] = set()
    for f in (table_dir / "_delta_log").glob("*.json"):
        for line in f.read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                out.add(urllib.parse.unquote(action["add"]["path"]))
    return out


def uncommitted_files(table_dir: Path) -> set[str]:
    """Data files under the table that no commit of its log names (relative paths)."""
    present = {
        str(p.relative_to(table_dir))
        for p in table_dir.rglob("*.parquet")
        if "_delta_log" not in p.parts and not p.name.startswith(".")
    }
    return present - committed_files(table_dir)
