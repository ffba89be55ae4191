"""A scratch table on disk for a bulk load: the serials of a file, each once, with the line
it came from, read back in serial order. Memory stays flat whatever the file's size, and the
site's database is not touched (nor locked) while the file is read."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path


class Staging:
    """Serials staged for one import, in a temporary SQLite file removed on close."""

    def __init__(self, folder: Path | None = None, cache_mb: int = 16) -> None:
        handle, name = tempfile.mkstemp(prefix="codeline-import-", suffix=".db", dir=folder)
        os.close(handle)
        self.path = Path(name)
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        # Scratch data: nothing to recover after a crash, so no journal and no fsync.
        self.conn.execute("PRAGMA journal_mode=OFF")
        self.conn.execute("PRAGMA synchronous=OFF")
        self.conn.execute(f"PRAGMA cache_size={-1024 * cache_mb}")
        self.conn.execute("CREATE TABLE staged (serial TEXT PRIMARY KEY, line_no INTEGER "
                          "NOT NULL) WITHOUT ROWID")
        self.count = 0

    def add(self, rows: list[tuple[str, int]]) -> list[tuple[str, int, int]]:
        """Stage (serial, line number) rows; the repeats among them, as (serial, line
        number, the line it was first seen on)."""
        self.conn.execute("BEGIN")
        before = self.conn.total_changes
        self.conn.executemany("INSERT OR IGNORE INTO staged VALUES (?, ?)", rows)
        added = self.conn.total_changes - before
        repeats: list[tuple[str, int, int]] = []
        if added != len(rows):
            first: dict[str, int] = {}
            for start in range(0, len(rows), 500):
                part = [s for s, _ in rows[start:start + 500]]
                marks = ",".join("?" * len(part))
                first.update(self.conn.execute(
                    f"SELECT serial, line_no FROM staged WHERE serial IN ({marks})", part))
            repeats = [(s, n, first[s]) for s, n in rows if first[s] != n]
        self.conn.execute("COMMIT")
        self.count += added
        return repeats

    def chunks(self, size: int) -> Iterator[list[tuple[str, int]]]:
        """The staged rows in serial order, ``size`` at a time."""
        last = ""
        while True:
            chunk: list[tuple[str, int]] = self.conn.execute(
                "SELECT serial, line_no FROM staged WHERE serial > ? ORDER BY serial LIMIT ?",
                (last, size)).fetchall()
            if not chunk:
                return
            yield chunk
            last = chunk[-1][0]

    def close(self) -> None:
        self.conn.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
