"""The code pool: codes AVAILABLE to print, generated here or imported as code segments.

Every serial ever seen by the site stays in ``codes`` (used, voided, revoked alike) behind a
unique index, so a new or imported serial can never repeat an old one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from edge.domain import audit, events
from edge.domain.errors import DomainError
from edge.domain.lifecycle import LEVEL_NAME, LEVEL_NUMBER, State
from edge.domain.serials import SerialScheme, SsccScheme
from edge.store.database import Store, now_ms
from line_config.models import Level, Line

CHUNK = 20_000
Progress = Callable[[int], None]
"""Called with the number of codes just handled, for progress bars."""


def _no_progress(_: int) -> None:
    return None


def new_segment(
    conn: sqlite3.Connection, line_id: str, level: Level, source: str, origin: str,
    external_id: str | None = None,
) -> int:
    cursor = conn.execute(
        "INSERT INTO segments (line_id, level, source, origin, created_at, count, external_id) "
        "VALUES (?, ?, ?, ?, ?, 0, ?)",
        (line_id, LEVEL_NUMBER[level], source, origin, now_ms(), external_id),
    )
    return int(cursor.lastrowid or 0)


def insert_new(conn: sqlite3.Connection, serials: list[tuple[str, int]], level: int,
                segment: int) -> int:
    """Insert (serial, sequence number in the segment) pairs not seen before (sorted by
    serial, for B-tree locality); returns how many."""
    serials.sort()
    before = conn.total_changes
    conn.executemany(
        "INSERT INTO codes (serial, level, state, segment_id, seq) VALUES (?, ?, 0, ?, ?) "
        "ON CONFLICT(serial) DO NOTHING",
        ((s, level, segment, n) for s, n in serials),
    )
    return conn.total_changes - before


def generate(
    store: Store,
    line: Line,
    level: Level,
    count: int,
    *,
    operator: str,
    progress: Progress = _no_progress,
) -> int:
    """Add ``count`` new codes for ``level`` of ``line`` to the pool; returns the segment id."""
    if not 1 <= count <= 100_000_000:
        raise DomainError("count must be between 1 and 100,000,000, got {count}",
                          count=count)
    fmt = line.codes.for_level(level)
    level_no = LEVEL_NUMBER[level]
    with store.transaction() as conn:
        segment = new_segment(conn, line.id, level, "generated", "")
        if fmt.symbology == "sscc":
            _generate_sscc(conn, SsccScheme.from_config(fmt), count, level_no, segment, progress)
        else:
            scheme = SerialScheme.from_config(fmt.serial)
            remaining = count
            drawn = 0
            while remaining:
                batch = [(s, drawn + k + 1) for k, s in enumerate(scheme.draw(min(remaining,
                                                                              CHUNK)))]
                drawn += len(batch)
                added = insert_new(conn, batch, level_no, segment)
                remaining -= added  # a collision with an old serial is simply drawn again
                progress(added)
        conn.execute("UPDATE segments SET count = ? WHERE id = ?", (count, segment))
        events.append(conn, "pool.generate", line_id=line.id, count=count, level=level,
                      segment=segment)
        audit.record(conn, operator, "pool.generate", f"{line.id}/{level}", count=count,
                     segment=segment)
    return segment


def _generate_sscc(
    conn: sqlite3.Connection, scheme: SsccScheme, count: int, level: int, segment: int,
    progress: Progress,
) -> None:
    name = f"sscc:{scheme.extension_digit}{scheme.company_prefix}"
    row = conn.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
    start = int(row[0]) if row else 0
    if start + count > scheme.capacity:
        raise DomainError(
            "company prefix {scheme_company_prefix} has room for {scheme_capacity:,} SSCCs; "
            "{start:,} are used and {count:,} more were asked for",
            scheme_company_prefix=scheme.company_prefix,
            scheme_capacity=scheme.capacity, start=start, count=count
        )
    serials = [(scheme.make(ref), ref - start + 1) for ref in range(start, start + count)]
    added = insert_new(conn, serials, level, segment)
    if added != count:
        raise DomainError(
            "{taken} SSCCs of the range starting at reference {start} already exist: another "
            "system issued them; check the company prefix and extension digit",
            taken=count - added, start=start
        )
    conn.execute(
        "INSERT INTO counters (name, value) VALUES (?, ?) "
        "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
        (name, start + count),
    )
    progress(count)


@dataclass(frozen=True)
class PoolLevelStats:
    """Counts of one line's codes at one level, by state."""

    line_id: str
    level: Level
    by_state: dict[str, int]
    low_water: int

    @property
    def available(self) -> int:
        return self.by_state.get(State.AVAILABLE.name, 0)

    @property
    def low(self) -> bool:
        return self.available < self.low_water


def stats(store: Store, lines: list[Line]) -> list[PoolLevelStats]:
    """Per line and level: codes by state, and whether AVAILABLE is under the low-water mark."""
    counts: dict[tuple[str, int], dict[str, int]] = {}
    for line_id, level, state, n in store.read().execute(
        "SELECT s.line_id, c.level, c.state, count(*) FROM codes c "
        "JOIN segments s ON s.id = c.segment_id GROUP BY s.line_id, c.level, c.state"
    ):
        counts.setdefault((line_id, level), {})[State(state).name] = n
    out = []
    for line in lines:
        for level_no, level in LEVEL_NAME.items():
            out.append(
                PoolLevelStats(line.id, level, counts.get((line.id, level_no), {}),
                               line.low_water(level))
            )
    return out


def available_count(conn: sqlite3.Connection, line_id: str, level: Level) -> int:
    """How many codes ``line_id`` can still reserve at ``level``."""
    row = conn.execute(
        "SELECT count(*) FROM codes WHERE state = 0 AND segment_id IN "
        "(SELECT id FROM segments WHERE line_id = ? AND level = ?)",
        (line_id, LEVEL_NUMBER[level]),
    ).fetchone()
    return int(row[0])


def needed_for(line: Line, items_left: int) -> dict[Level, int]:
    """Codes per level that ``items_left`` more good items take, packed by the line's
    packaging (rejects take more: this is the least)."""
    cases = -(-items_left // line.packaging.items_per_case)
    return {"item": items_left, "case": cases,
            "pallet": -(-cases // line.packaging.cases_per_pallet)}


def runway_warnings(line: Line, available: dict[Level, int], items_left: int | None
                    ) -> dict[Level, str]:
    """Per level, why the pool needs codes before the line runs out: fewer left than the
    running batch still needs (``items_left`` to its plan), or under the low-water mark."""
    needed = needed_for(line, items_left) if items_left is not None else {}
    out: dict[Level, str] = {}
    for level, left in available.items():
        need, mark = needed.get(level, 0), line.low_water(level)
        fix = f"add {level} codes (`codeline pool generate` or `pool import --level {level}`)"
        if left < need:
            out[level] = (f"{level} pool runs dry before the batch ends: {left:,} codes left, "
                          f"the plan needs {need:,}: {fix}")
        elif left < mark:
            out[level] = f"{level} pool low: {left:,} codes left (low-water mark {mark:,}): {fix}"
    return out
