"""The life of a code: its states and the only transitions allowed between them.

Every change of a code's state goes through :func:`transition` (invariant 1's "never
printed twice" and invariant 4's "only a shipment activates" are both statements about this
table). A transition that finds a code in another state than expected refuses the whole
operation, so the caller's transaction rolls back untouched.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from enum import IntEnum

from edge.domain import history
from edge.domain.errors import CodeAlreadyUsed, InvalidTransition, NotCommissioned
from line_config.levels import LEVELS, Level


class State(IntEnum):
    """A code's state; the integers are what the database stores."""

    AVAILABLE = 0
    RESERVED = 1
    PRINTED = 2
    COMMISSIONED = 3
    ACTIVE = 4
    REJECTED = 5
    VOID = 6
    DECOMMISSIONED = 7
    REVOKED = 8


class Reason(IntEnum):
    """Why a code was rejected or voided; stored with the code."""

    NO_READ = 1
    MISREAD = 2
    DUPLICATE = 3
    UNKNOWN = 4
    GRADE = 5
    NO_VERDICT = 6
    UNCONFIRMED = 10
    PRINTER_RESET = 11
    BATCH_FORCE_CLOSED = 12
    OPERATOR = 13

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")


REJECT_REASONS = frozenset(
    {Reason.NO_READ, Reason.MISREAD, Reason.DUPLICATE, Reason.UNKNOWN, Reason.GRADE,
     Reason.NO_VERDICT, Reason.BATCH_FORCE_CLOSED}
)
VOID_REASONS = frozenset(
    {Reason.UNCONFIRMED, Reason.PRINTER_RESET, Reason.BATCH_FORCE_CLOSED, Reason.OPERATOR}
)

ALLOWED: dict[State, frozenset[State]] = {
    State.AVAILABLE: frozenset({State.RESERVED, State.REVOKED}),
    State.RESERVED: frozenset({State.PRINTED, State.VOID}),
    State.PRINTED: frozenset({State.COMMISSIONED, State.REJECTED}),
    State.COMMISSIONED: frozenset({State.ACTIVE, State.DECOMMISSIONED}),
    State.ACTIVE: frozenset({State.COMMISSIONED}),
    State.REJECTED: frozenset(),
    State.VOID: frozenset(),
    State.DECOMMISSIONED: frozenset(),
    State.REVOKED: frozenset(),
}

LEVEL_NUMBER: dict[Level, int] = {level: i for i, level in enumerate(LEVELS)}
LEVEL_NAME: dict[int, Level] = dict(enumerate(LEVELS))


IDS_PER_STATEMENT = 500


def transition(
    conn: sqlite3.Connection,
    code_ids: Sequence[int],
    source: State,
    target: State,
    *,
    reason: Reason | None = None,
    stamp: str | None = None,
    at: int | None = None,
    batch_id: int | None = None,
    level: Level | None = None,
    assign: dict[str, int] | None = None,
) -> None:
    """Move every code in ``code_ids`` from ``source`` to ``target``, or refuse them all.

    ``stamp`` names a timestamp column (``printed_at`` or ``verified_at``) set to ``at``;
    ``batch_id`` and ``level`` refuse codes of another batch or level; ``assign`` sets
    ``batch_id`` and ``reservation_id`` on reservation. Must run inside a transaction; on
    refusal it raises and the caller rolls back. The change enters the codes' history.
    """
    if target not in ALLOWED[source]:
        raise InvalidTransition("a code cannot go from {source_name} to {target_name}",
                                source_name=source.name, target_name=target.name)
    if not code_ids:
        return
    sets = "state = ?"
    if reason is not None:
        sets += ", reason = ?"
    if stamp is not None:
        if stamp not in ("printed_at", "verified_at"):
            raise ValueError(stamp)
        sets += f", {stamp} = ?"
    values: list[int] = [int(target)]
    if reason is not None:
        values.append(int(reason))
    if stamp is not None:
        values.append(int(at or 0))
    for column, value in (assign or {}).items():
        if column not in ("batch_id", "reservation_id"):
            raise ValueError(column)
        sets += f", {column} = ?"
        values.append(value)
    where = "state = ?"
    guard: tuple[int, ...] = (int(source),)
    if batch_id is not None:
        where += " AND batch_id = ?"
        guard += (batch_id,)
    if level is not None:
        where += " AND level = ?"
        guard += (LEVEL_NUMBER[level],)
    # One statement per chunk of ids, not one per code: fewer round trips into SQLite, and
    # fewer hand-overs of the GIL while the event loop runs beside the database thread.
    changed = 0
    for start in range(0, len(code_ids), IDS_PER_STATEMENT):
        chunk = code_ids[start:start + IDS_PER_STATEMENT]
        marks = ",".join("?" * len(chunk))
        cursor = conn.execute(f"UPDATE codes SET {sets} WHERE id IN ({marks}) AND {where}",
                              (*values, *chunk, *guard))
        changed += cursor.rowcount
    if changed != len(code_ids):
        raise refusal(conn, code_ids, source, target)
    history.record(conn, code_ids, int(target), at)


def refusal(
    conn: sqlite3.Connection, code_ids: Sequence[int], source: State, target: State
) -> InvalidTransition:
    """Why these codes cannot go from ``source`` to ``target``, naming up to five."""
    wrong: list[str] = []
    for code_id in code_ids:
        row = conn.execute("SELECT serial, state FROM codes WHERE id = ?", (code_id,)).fetchone()
        if row is None:
            wrong.append(f"#{code_id} (no such code)")
        elif row[1] != source:
            wrong.append(f"{row[0]} is {State(row[1]).name}")
        else:
            wrong.append(f"{row[0]} is of another batch or level")
        if len(wrong) >= 5:
            break
    if not wrong:
        wrong.append("a code appears twice in the request")
    detail = "; ".join(wrong)
    kind = (CodeAlreadyUsed if target is State.PRINTED or source is State.AVAILABLE
            else NotCommissioned if source is State.COMMISSIONED else InvalidTransition)
    return kind("cannot make codes {target} (need {source}): {detail}", target=target.name,
                source=source.name, detail=detail)
