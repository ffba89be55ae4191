"""The history of every code's state: an append-only log, one row per state change of a
group of codes (their ids packed), written in the transaction of the change.

The code rows hold the current state; the history holds how each got there. A state set by
hand in the code rows (a code made ACTIVE, a VOID code put back in the pool) disagrees with
the history: :func:`disagreements` replays the history and names every such code, and
:func:`ever_reserved` lets the reserve path refuse a code that was handed out before,
whatever its row says now.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence

from edge.store.database import now_ms
from edge.store.idpack import pack, unpack


def record(conn: sqlite3.Connection, code_ids: Sequence[int], state: int,
           at: int | None = None) -> None:
    """These codes are now in ``state``; call in the transaction that changed them."""
    if code_ids:
        conn.execute("INSERT INTO code_history (at, state, lo, hi, codes) VALUES (?, ?, ?, ?, ?)",
                     (at or now_ms(), state, min(code_ids), max(code_ids), pack(code_ids)))


def ever_reserved(conn: sqlite3.Connection, code_ids: Sequence[int]) -> list[int]:
    """Those of ``code_ids`` the history shows reserved at some time."""
    if not code_ids:
        return []
    wanted = set(code_ids)
    found: set[int] = set()
    for (blob,) in conn.execute(
            "SELECT codes FROM code_history WHERE state = 1 AND hi >= ? AND lo <= ?",
            (min(code_ids), max(code_ids))):
        found.update(wanted.intersection(unpack(blob)))
    return sorted(found)


def replay(conn: sqlite3.Connection) -> Iterator[tuple[int, int]]:
    """(code id, state) in the order the changes happened."""
    for state, blob in conn.execute("SELECT state, codes FROM code_history ORDER BY id"):
        for code_id in unpack(blob):
            yield code_id, state


def disagreements(conn: sqlite3.Connection, limit: int = 100) -> list[tuple[str, int, int]]:
    """(serial, state in its row, state its history gives) of every code whose row
    disagrees with its history (a code with no history is AVAILABLE)."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS replayed (id INTEGER PRIMARY KEY, "
                 "state INTEGER NOT NULL)")
    conn.execute("DELETE FROM temp.replayed")
    batch: list[tuple[int, int]] = []
    for pair in replay(conn):
        batch.append(pair)
        if len(batch) >= 50_000:
            conn.executemany("INSERT OR REPLACE INTO temp.replayed VALUES (?, ?)", batch)
            batch = []
    conn.executemany("INSERT OR REPLACE INTO temp.replayed VALUES (?, ?)", batch)
    rows = conn.execute(
        "SELECT c.serial, c.state, coalesce(r.state, 0) FROM codes c "
        "LEFT JOIN temp.replayed r ON r.id = c.id WHERE c.state != coalesce(r.state, 0) "
        "ORDER BY c.id LIMIT ?", (limit,)).fetchall()
    conn.execute("DELETE FROM temp.replayed")
    return [(str(r[0]), int(r[1]), int(r[2])) for r in rows]
