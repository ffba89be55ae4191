"""A consistent copy of the live database while the line runs: SQLite's online backup API.

Copying the database file alone is not a backup: recent commits live in its ``-wal`` file
until a checkpoint, and a copy without it loses them (or is torn mid-write). The backup API
copies every page in one step, which in WAL mode is one read transaction: a consistent
snapshot that the line's commits never wait for (copied in small steps instead, it would
restart at each commit of a running line and might never finish). The copy is made
self-contained (journal mode DELETE: no ``-wal`` needed, opens on read-only media) and
checked with ``PRAGMA integrity_check`` before it takes its final name.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from edge.store.database import DB_MODE, StoreError


@dataclass(frozen=True)
class BackupCopy:
    """What a backup wrote."""

    path: Path
    bytes: int
    pages: int
    seconds: float
    schema_version: int


class BackupFailed(StoreError):
    """The copy could not be made or did not check out; nothing was left at the target."""


def copy(source: Path, target: Path) -> BackupCopy:
    """Copy the database at ``source`` to the new file ``target`` (refused if it exists)."""
    if target.exists():
        raise BackupFailed(f"{target} exists: a backup never overwrites a file; name another")
    if not target.parent.is_dir():
        raise BackupFailed(f"no folder {target.parent} for the backup")
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    started = time.monotonic()
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 DB_MODE)
    os.close(fd)
    try:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=10.0)
        try:
            dst = sqlite3.connect(partial, isolation_level=None)
            try:
                src.backup(dst)
                dst.execute("PRAGMA journal_mode=DELETE")
                checked = dst.execute("PRAGMA integrity_check").fetchall()
                if checked != [("ok",)]:
                    raise BackupFailed(
                        f"the copy of {source} fails SQLite's integrity check: "
                        + "; ".join(str(row[0]) for row in checked[:5]))
                pages = int(dst.execute("PRAGMA page_count").fetchone()[0])
                version = int(dst.execute("PRAGMA user_version").fetchone()[0])
            finally:
                dst.close()
        finally:
            src.close()
        with open(partial, "rb") as f:
            os.fsync(f.fileno())
        os.rename(partial, target)
        folder = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise BackupFailed(f"backup of {source} to {target} failed: {exc}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    return BackupCopy(target, target.stat().st_size, pages, time.monotonic() - started,
                      version)
