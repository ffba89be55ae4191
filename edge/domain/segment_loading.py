"""Loading a segment of codes without stalling a running line.

A bulk command (``pool generate``, ``pool import``) writes its codes in short transactions,
each sized to hold the write lock about 30 ms, into a segment marked *loading* (with the
process id that loads it): no line reserves from a loading segment. One short commit then
publishes it, with its event and audit record. A load that fails or is interrupted removes
its rows again, in short transactions; one whose process was killed is removed by the next
bulk command or controller start (:func:`purge_abandoned`). Either way the operator sees all
of it or none of it, and the site's serials stay unique throughout (the unique index covers
loading segments too).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass

from edge.domain.lifecycle import LEVEL_NUMBER
from edge.store.database import Store, now_ms
from line_config.models import Level

log = logging.getLogger("codeline.pool")

TARGET_HOLD_S = 0.03
# Between two of its transactions a load leaves the write lock free this long: a line's
# commit, which asks for the lock every millisecond (Store.transaction), gets in.
PAUSE_S = 0.003
MIN_ROWS, MAX_ROWS = 256, 200_000
DELETE_ROWS = 20_000

# Serials of one width, concatenated in one BLOB, inserted by SQLite itself: a byte-indexed
# substr per row, no Python per row. The recursive CTE counts the rows.
_INSERT_FIXED = (
    "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
    "INSERT INTO codes (serial, level, state, segment_id, seq) "
    "SELECT CAST(substr(?, i * ? + 1, ?) AS TEXT), ?, 0, ?, ? + i FROM n WHERE 1 "
    "ON CONFLICT(serial) DO NOTHING")


@dataclass
class LoadFigures:
    """How a load went: rows written, transactions, and the longest write-lock hold."""

    rows: int = 0
    transactions: int = 0
    longest_hold_s: float = 0.0


class SegmentLoad:
    """One segment being loaded; use as a context manager (an exception removes it)."""

    def __init__(self, store: Store, line_id: str, level: Level, source: str, origin: str,
                 external_id: str | None = None, figures: LoadFigures | None = None) -> None:
        self.store = store
        self.level_no = LEVEL_NUMBER[level]
        self.figures = figures if figures is not None else LoadFigures()
        self.rows_per_transaction = 4096
        self.published = False
        self.autocheckpoint = int(store.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
        store.conn.execute("PRAGMA wal_autocheckpoint=0")
        with self._hold() as conn:
            cursor = conn.execute(
                "INSERT INTO segments (line_id, level, source, origin, created_at, count, "
                "external_id, loading) VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
                (line_id, self.level_no, source, origin, now_ms(), external_id, os.getpid()))
            self.segment = int(cursor.lastrowid or 0)

    def __enter__(self) -> SegmentLoad:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        try:
            if kind is not None and not self.published:
                remove(self.store, self.segment)
        finally:
            self.store.conn.execute(f"PRAGMA wal_autocheckpoint={self.autocheckpoint}")

    @contextlib.contextmanager
    def _hold(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction, timed."""
        started = time.perf_counter()
        with self.store.transaction() as conn:
            yield conn
        held = time.perf_counter() - started
        self.figures.transactions += 1
        self.figures.longest_hold_s = max(self.figures.longest_hold_s, held)
        self._adapt(held)
        time.sleep(PAUSE_S)
        # The WAL's pages go to the database file here, with the lock free, rather than in
        # SQLite's automatic checkpoint at the end of a COMMIT.
        self.store.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()

    def _adapt(self, held: float) -> None:
        scale = min(1.3, max(0.25, TARGET_HOLD_S / max(held, 1e-4)))
        self.rows_per_transaction = int(min(MAX_ROWS, max(MIN_ROWS,
                                                          self.rows_per_transaction * scale)))

    def add_fixed(self, serials: bytes, width: int, first_seq: int) -> int:
        """Insert serials of ``width`` characters, concatenated (sorted: the index fills in
        order), numbered from ``first_seq``; those already known are skipped. How many were
        new."""
        total = len(serials) // width
        added = done = 0
        while done < total:
            count = min(self.rows_per_transaction, total - done)
            part = serials[done * width:(done + count) * width]
            with self._hold() as conn:
                before = conn.total_changes
                conn.execute(_INSERT_FIXED, (count - 1, part, width, width, self.level_no,
                                             self.segment, first_seq + done))
                added += conn.total_changes - before
            done += count
        self.figures.rows += added
        return added

    def add_rows(self, rows: list[tuple[str, int]]) -> list[str]:
        """Insert (serial, sequence number) rows sorted by serial; the serials that were
        already known to the site (not inserted)."""
        known: list[str] = []
        done = 0
        while done < len(rows):
            part = rows[done:done + self.rows_per_transaction]
            with self._hold() as conn:
                before = conn.total_changes
                conn.executemany(
                    "INSERT INTO codes (serial, level, state, segment_id, seq) "
                    "VALUES (?, ?, 0, ?, ?) ON CONFLICT(serial) DO NOTHING",
                    ((s, self.level_no, self.segment, n) for s, n in part))
                added = conn.total_changes - before
                if added != len(part):
                    known.extend(_known_elsewhere(conn, [s for s, _ in part], self.segment))
            self.figures.rows += added
            done += len(part)
        return known

    @contextlib.contextmanager
    def publishing(self, count: int) -> Iterator[sqlite3.Connection]:
        """The one short commit that makes the segment usable: what the caller records in
        it (event, audit) commits with it."""
        with self._hold() as conn:
            conn.execute("UPDATE segments SET loading = NULL, count = ? WHERE id = ?",
                         (count, self.segment))
            yield conn
        self.published = True


def remove(store: Store, segment: int) -> int:
    """Delete a loading segment and its codes in short transactions; how many codes."""
    removed = delete_codes(store, segment)
    with store.transaction() as conn:
        conn.execute("DELETE FROM segments WHERE id = ? AND loading IS NOT NULL",
                     (segment,))
    return removed


def delete_codes(store: Store, segment: int) -> int:
    """Delete a segment's codes, all still AVAILABLE, in short transactions; how many."""
    removed = 0
    while True:
        with store.transaction() as conn:
            deleted = conn.execute(
                "DELETE FROM codes WHERE id IN (SELECT id FROM codes WHERE segment_id = ? "
                "AND state = 0 LIMIT ?)", (segment, DELETE_ROWS)).rowcount
        removed += deleted
        if deleted < DELETE_ROWS:
            return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def purge_abandoned(store: Store) -> int:
    """Remove the loading segments whose process is gone (killed mid-load), and the codes a
    withdrawal (``pool retire``) did not finish deleting; how many codes."""
    conn = store.read()
    abandoned = [segment for segment, pid in conn.execute(
        "SELECT id, loading FROM segments WHERE loading IS NOT NULL")
        if pid != os.getpid() and not _alive(int(pid))]
    for (segment,) in conn.execute(
            "SELECT id FROM segments s WHERE retired_at IS NOT NULL AND EXISTS "
            "(SELECT 1 FROM codes WHERE segment_id = s.id AND state = 0)").fetchall():
        log.warning("removed the codes of a withdrawal that was interrupted",
                    extra={"segment": segment, "codes": delete_codes(store, segment)})
    removed = 0
    for segment in abandoned:
        codes = remove(store, segment)
        removed += codes
        log.warning("removed the codes of a load whose process was killed",
                    extra={"segment": segment, "codes": codes})
    return removed


def _known_elsewhere(conn: sqlite3.Connection, serials: list[str], segment: int) -> list[str]:
    known: list[str] = []
    for start in range(0, len(serials), 500):
        part = serials[start:start + 500]
        marks = ",".join("?" * len(part))
        known.extend(row[0] for row in conn.execute(
            f"SELECT serial FROM codes WHERE serial IN ({marks}) AND segment_id != ?",
            (*part, segment)))
    return known
