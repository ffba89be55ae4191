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
from edge.domain.segment_loading import LoadFigures, SegmentLoad, purge_abandoned
from edge.domain.serials import SerialScheme, SsccScheme
from edge.store.database import Store
from line_config.models import Level, Line

CHUNK = 20_000
DRAW_BLOCK = 250_000  # a progress bar moves every quarter million
Progress = Callable[[int], None]
"""Called with the number of codes just handled, for progress bars."""


def _no_progress(_: int) -> None:
    return None


def generate(
    store: Store,
    line: Line,
    level: Level,
    count: int,
    *,
    operator: str,
    progress: Progress = _no_progress,
    figures: LoadFigures | None = None,
) -> int:
    """Add ``count`` new codes for ``level`` of ``line`` to the pool; returns the segment id.
    Loaded in short transactions beside a running line, published in one commit (how it
    went: into ``figures``, if given)."""
    if not 1 <= count <= 100_000_000:
        raise DomainError("count must be between 1 and 100,000,000, got {count}",
                          count=count)
    fmt = line.codes.for_level(level)
    purge_abandoned(store)
    if fmt.symbology == "sscc":
        scheme = SsccScheme.from_config(fmt)
        start = _take_sscc_range(store, scheme, count)
        with SegmentLoad(store, line.id, level, "generated", "", figures=figures) as load:
            width = 18
            block = "".join(scheme.make(ref) for ref in range(start, start + count))
            added = load.add_fixed(block.encode("ascii"), width, 1)
            if added != count:
                raise DomainError(
                    "{taken} SSCCs of the range starting at reference {start} already exist: "
                    "another system issued them; check the company prefix and extension digit",
                    taken=count - added, start=start)
            progress(count)
            return _publish(load, line, level, count, operator)
    serials = SerialScheme.from_config(fmt.serial)
    with SegmentLoad(store, line.id, level, "generated", "", figures=figures) as load:
        remaining, drawn = count, 0
        while remaining:
            take = min(remaining, DRAW_BLOCK)
            added = load.add_fixed(serials.draw_sorted(take), serials.total_length, drawn + 1)
            drawn += take
            remaining -= added  # a collision with an old serial is simply drawn again
            progress(added)
        return _publish(load, line, level, count, operator)


def _publish(load: SegmentLoad, line: Line, level: Level, count: int, operator: str) -> int:
    with load.publishing(count) as conn:
        events.append(conn, "pool.generate", line_id=line.id, count=count, level=level,
                      segment=load.segment)
        audit.record(conn, operator, "pool.generate", f"{line.id}/{level}", count=count,
                     segment=load.segment)
    return load.segment


def _take_sscc_range(store: Store, scheme: SsccScheme, count: int) -> int:
    """Claim the next ``count`` serial references of the company prefix (never reissued,
    even if the load that claimed them fails); the first of them."""
    name = f"sscc:{scheme.extension_digit}{scheme.company_prefix}"
    with store.transaction() as conn:
        row = conn.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        start = int(row[0]) if row else 0
        if start + count > scheme.capacity:
            raise DomainError(
                "company prefix {scheme_company_prefix} has room for {scheme_capacity:,} "
                "SSCCs; {start:,} are used and {count:,} more were asked for",
                scheme_company_prefix=scheme.company_prefix,
                scheme_capacity=scheme.capacity, start=start, count=count
            )
        conn.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            (name, start + count),
        )
    return start


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
        "JOIN segments s ON s.id = c.segment_id WHERE s.loading IS NULL AND s.retired_at IS NULL "
        "GROUP BY s.line_id, c.level, c.state"
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
        "(SELECT id FROM segments WHERE line_id = ? AND level = ? AND loading IS NULL "
        "AND retired_at IS NULL)",
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
