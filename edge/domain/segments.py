"""The segments of a line's pool (码段): listed with what is left of them, and withdrawn when
one was added by mistake."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from edge.domain import audit, events
from edge.domain.errors import DomainError, ReasonRequired
from edge.domain.lifecycle import LEVEL_NAME
from edge.domain.segment_loading import delete_codes
from edge.store.database import Store, now_ms
from line_config.levels import Level


@dataclass(frozen=True)
class Retired:
    """What ``retire`` withdrew."""

    segment_id: int
    line_id: str
    level: Level
    codes: int


def retire(store: Store, segment_id: int, *, operator: str, reason: str | None) -> Retired:
    """Withdraw a segment added by mistake (wrong file, wrong line, wrong level): its codes
    leave the pool and may be imported again where they belong. Refused, changing nothing,
    once any of its codes was reserved: those may be printed, so they stay on record.

    The withdrawal commits at once (no line reserves from a withdrawn segment); its codes are
    then deleted in short transactions beside running lines, and what an interrupted
    deletion leaves is finished by the next bulk command or controller start."""
    if not reason or not reason.strip():
        raise ReasonRequired("say why the segment is withdrawn: --reason TEXT")
    with store.transaction() as conn:
        row = conn.execute("SELECT line_id, level, source, origin, retired_at FROM segments "
                           "WHERE id = ? AND loading IS NULL", (segment_id,)).fetchone()
        if row is None:
            raise DomainError("no segment {segment_id}: `codeline pool stats` and the audit "
                              "log name the segments", segment_id=segment_id)
        line_id, level_no, source, origin, retired_at = row
        if retired_at is not None:
            raise DomainError("segment {segment_id} was already withdrawn",
                              segment_id=segment_id)
        used = conn.execute("SELECT count(*) FROM codes WHERE segment_id = ? AND state != 0",
                            (segment_id,)).fetchone()[0]
        if used:
            raise DomainError(
                "segment {segment_id} cannot be withdrawn: {used:,} of its codes were already "
                "reserved for printing (they stay on record; revoke them at the cloud instead)",
                segment_id=segment_id, used=used)
        codes = conn.execute("SELECT count(*) FROM codes WHERE segment_id = ?",
                             (segment_id,)).fetchone()[0]
        conn.execute("UPDATE segments SET retired_at = ?, retire_reason = ? WHERE id = ?",
                     (now_ms(), reason, segment_id))
        level = LEVEL_NAME[level_no]
        events.append(conn, "pool.retire", line_id=line_id, count=codes, level=level,
                      segment=segment_id)
        audit.record(conn, operator, "pool.retire", f"{line_id}/{level}", reason=reason,
                     segment=segment_id, codes=codes, source=source, origin=origin)
    delete_codes(store, segment_id)
    return Retired(segment_id, line_id, level, codes)


@dataclass(frozen=True)
class Segment:
    """A segment of a line's pool: where its codes came from and how many are left."""

    id: int
    line_id: str
    level: Level
    source: str
    origin: str
    external_id: str | None
    created_at: int
    codes: int
    available: int
    retired_at: int | None
    retire_reason: str | None


def segments(conn: sqlite3.Connection) -> list[Segment]:
    """Every published segment, oldest first (one still loading is not in the pool yet)."""
    counts = {seg: (total, avail) for seg, total, avail in conn.execute(
        "SELECT segment_id, count(*), sum(state = 0) FROM codes GROUP BY segment_id")}
    return [Segment(i, line, LEVEL_NAME[lv], src, origin or "", ext, at,
                    *counts.get(i, (0, 0)), retired, why)
            for i, line, lv, src, origin, ext, at, retired, why in conn.execute(
                "SELECT id, line_id, level, source, origin, external_id, created_at, "
                "retired_at, retire_reason FROM segments WHERE loading IS NULL ORDER BY id")]
