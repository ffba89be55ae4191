"""The item flow's state changes: reserve, printed, verdicts, void, and recovery at start.

Invariant 1 lives here: a reserved code is committed (``synchronous=FULL``) before the caller
may send it to a printer, and a code that may have reached a printer without a positive
confirmation becomes VOID, never AVAILABLE again. Invariant 5: each call is one durable
transaction, so a verdict is on disk before the caller acts on it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from edge.domain import audit, batches, business_events, events, history
from edge.domain.errors import BatchStateError, CodeAlreadyUsed, PoolExhausted
from edge.domain.lifecycle import (
    LEVEL_NAME,
    LEVEL_NUMBER,
    REJECT_REASONS,
    VOID_REASONS,
    Reason,
    State,
    transition,
)
from edge.store.database import Store, now_ms
from line_config.levels import Level


@dataclass(frozen=True)
class ReservedCode:
    """A code that may now be sent to a printer."""

    id: int
    serial: str


@dataclass(frozen=True)
class Reservation:
    """A block of codes reserved for one station of a running batch."""

    id: int
    batch_id: int
    station_id: str
    level: Level
    codes: list[ReservedCode]


def reserve(store: Store, batch_id: int, station_id: str, level: Level, count: int) -> Reservation:
    """Reserve ``count`` AVAILABLE codes of the batch's line; durable before it returns."""
    if not 1 <= count <= 1_000_000:
        raise ValueError(f"a reservation holds 1 to 1,000,000 codes, not {count}")
    with store.transaction() as conn:
        batch = batches.get(conn, batch_id)
        if batch.state != "running":
            raise BatchStateError("batch {batch_id} is {batch_state}; codes are reserved only "
                                  "for a running batch", batch_id=batch_id,
                                  batch_state=batch.state)
        rows = conn.execute(
            "SELECT id, serial, reservation_id IS NOT NULL OR printed_at IS NOT NULL "
            "FROM codes WHERE state = 0 AND segment_id IN "
            "(SELECT id FROM segments WHERE line_id = ? AND level = ? AND loading IS NULL "
            "AND retired_at IS NULL) "
            "ORDER BY segment_id, id LIMIT ?",
            (batch.line_id, LEVEL_NUMBER[level], count),
        ).fetchall()
        used_before = set(history.ever_reserved(conn, [r[0] for r in rows]))
        traced = [r[1] for r in rows if r[2] or r[0] in used_before]
        if traced:
            raise CodeAlreadyUsed(
                "{traced}: back in the pool although its history shows it reserved before (a "
                "state changed by hand?): never printed again; see `codeline audit verify`",
                traced=', '.join(traced[:3]))
        if len(rows) < count:
            raise PoolExhausted(
                "line {batch_line_id} has {n_rows} {level} codes available, {count} needed: "
                "generate or import more (`codeline pool generate|import`)",
                batch_line_id=batch.line_id, n_rows=len(rows), level=level, count=count
            )
        at = now_ms()
        cursor = conn.execute(
            "INSERT INTO reservations (batch_id, station_id, level, count, at) "
            "VALUES (?, ?, ?, ?, ?)",
            (batch_id, station_id, LEVEL_NUMBER[level], count, at),
        )
        reservation_id = int(cursor.lastrowid or 0)
        transition(conn, [r[0] for r in rows], State.AVAILABLE, State.RESERVED,
                   assign={"batch_id": batch_id, "reservation_id": reservation_id})
        events.append(conn, "flow.reserve", line_id=batch.line_id, batch_id=batch_id,
                      count=count, at=at, level=level, station=station_id,
                      reservation=reservation_id)
    return Reservation(reservation_id, batch_id, station_id, level,
                       [ReservedCode(r[0], r[1]) for r in rows])


def mark_printed(store: Store, batch_id: int, level: Level, code_ids: Sequence[int]) -> None:
    """The printer confirmed these ``level`` codes printed (RESERVED → PRINTED)."""
    record_line(store, batch_id, level, code_ids, [])


@dataclass(frozen=True)
class Verdict:
    """The camera's judgement of one printed code: None = good, else the reject reason."""

    code_id: int
    reject: Reason | None = None


def record_verdicts(
    store: Store, batch_id: int, level: Level, verdicts: Sequence[Verdict]
) -> None:
    """Commission the good codes and reject the bad, all in one durable transaction."""
    record_line(store, batch_id, level, [], verdicts)


def void(
    store: Store, batch_id: int, level: Level, code_ids: Sequence[int], reason: Reason, *,
    operator: str,
) -> None:
    """Codes that may have reached a printer without a confirmed print: VOID, forever."""
    if reason not in VOID_REASONS:
        raise ValueError(f"{reason.label} is not a void reason")
    if not code_ids:
        return
    with store.transaction() as conn:
        transition(conn, code_ids, State.RESERVED, State.VOID, reason=reason, batch_id=batch_id,
                   level=level)
        events.append(conn, "flow.void", batch_id=batch_id, count=len(code_ids), level=level,
                      reason=reason.label)
        audit.record(conn, operator, "flow.void", f"batch:{batch_id}", reason=reason.label,
                     count=len(code_ids))


def record_line(
    store: Store, batch_id: int, level: Level, printed: Sequence[int], verdicts: Sequence[Verdict]
) -> None:
    """A line's group commit: print confirmations, then verdicts, in one durable transaction.

    A verdict may name a code confirmed in the same call; the line acts on none of them until
    this returns (invariant 5).
    """
    if not printed and not verdicts:
        return
    with store.transaction() as conn:
        at = now_ms()
        if printed:
            transition(conn, printed, State.RESERVED, State.PRINTED, stamp="printed_at", at=at,
                       batch_id=batch_id, level=level)
            events.append(conn, "flow.print", batch_id=batch_id, count=len(printed), at=at,
                          level=level)
        _verdicts(conn, batch_id, level, verdicts, at)


def _verdicts(conn: sqlite3.Connection, batch_id: int, level: Level,
              verdicts: Sequence[Verdict], at: int) -> None:
    good = [v.code_id for v in verdicts if v.reject is None]
    bad: dict[Reason, list[int]] = {}
    for v in verdicts:
        if v.reject is not None:
            if v.reject not in REJECT_REASONS:
                raise ValueError(f"{v.reject.label} is not a reject reason")
            bad.setdefault(v.reject, []).append(v.code_id)
    transition(conn, good, State.PRINTED, State.COMMISSIONED, stamp="verified_at", at=at,
               batch_id=batch_id, level=level)
    if good:
        events.append(conn, "flow.commission", batch_id=batch_id, count=len(good), at=at,
                      level=level)
        business_events.commissioned(conn, batch_id, good, at)
    for reason, ids in bad.items():
        transition(conn, ids, State.PRINTED, State.REJECTED, reason=reason,
                   stamp="verified_at", at=at, batch_id=batch_id)
        events.append(conn, "flow.reject", batch_id=batch_id, count=len(ids), at=at,
                      level=level, reason=reason.label,
                      code_id=ids[0] if len(ids) == 1 else None)


@dataclass(frozen=True)
class RecoveryReport:
    """What :func:`recover` settled."""

    voided: int
    rejected: int


def recover(store: Store, *, operator: str = "system") -> RecoveryReport:
    """Settle codes of unknown fate after a stop or crash; run before a line starts.

    RESERVED codes may sit in a printer's buffer or have been printed unseen: VOID.
    PRINTED codes lost their place in the in-transit queue; the gate rejects an item with no
    verdict, so they are REJECTED with reason no-verdict.
    """
    with store.transaction() as conn:
        totals = {State.RESERVED: 0, State.PRINTED: 0}
        groups = conn.execute(
            "SELECT batch_id, level, state, count(*) FROM codes WHERE state IN (?, ?) "
            "GROUP BY batch_id, level, state",
            (int(State.RESERVED), int(State.PRINTED)),
        ).fetchall()
        at = now_ms()
        for batch_id, level_no, state_no, _ in groups:
            state = State(state_no)
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM codes WHERE batch_id = ? AND level = ? AND state = ?",
                    (batch_id, level_no, state_no),
                )
            ]
            level = LEVEL_NAME[level_no]
            if state is State.RESERVED:
                transition(conn, ids, state, State.VOID, reason=Reason.UNCONFIRMED)
                events.append(conn, "flow.void", batch_id=batch_id, count=len(ids), at=at,
                              level=level, reason=Reason.UNCONFIRMED.label)
            else:
                transition(conn, ids, state, State.REJECTED, reason=Reason.NO_VERDICT,
                           stamp="verified_at", at=at)
                events.append(conn, "flow.reject", batch_id=batch_id, count=len(ids), at=at,
                              level=level, reason=Reason.NO_VERDICT.label)
            totals[state] += len(ids)
        report = RecoveryReport(voided=totals[State.RESERVED], rejected=totals[State.PRINTED])
        if report.voided or report.rejected:
            audit.record(conn, operator, "flow.recover", "site", voided=report.voided,
                         rejected=report.rejected)
        return report
