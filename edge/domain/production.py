"""A batch as a production report reads it: when it ran, for how long, at what rate, and who
started and closed it (from the event and audit logs)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from edge.store.database import now_ms


@dataclass(frozen=True)
class Production:
    """When a batch ran and who ran it."""

    first_start: int | None
    last_stop: int | None
    running_ms: int
    running_now: bool
    operators: dict[str, str]  # action (batch.start, batch.stop, batch.close) -> operator

    def average_rate(self, good_items: int) -> float | None:
        """Good items per second over the time the batch ran."""
        return good_items / (self.running_ms / 1000) if self.running_ms > 0 else None


def running_ms(marks: list[tuple[int, str]], now: int) -> int:
    """Time between each start and the stop after it; a start not yet stopped runs to now."""
    total, started = 0, None
    for at, kind in marks:
        if kind == "batch.start" and started is None:
            started = at
        elif kind == "batch.stop" and started is not None:
            total += at - started
            started = None
    return total + (now - started if started is not None else 0)


def production(conn: sqlite3.Connection, batch_id: int) -> Production:
    marks = [(int(at), str(kind)) for at, kind in conn.execute(
        "SELECT at, kind FROM events WHERE batch_id = ? AND kind IN ('batch.start', "
        "'batch.stop') ORDER BY id", (batch_id,))]
    starts = [at for at, kind in marks if kind == "batch.start"]
    stops = [at for at, kind in marks if kind == "batch.stop"]
    operators = {action: operator for action, operator in conn.execute(
        "SELECT action, operator FROM audit WHERE target = ? AND action IN ('batch.start', "
        "'batch.stop', 'batch.close') ORDER BY id", (f"batch:{batch_id}",))}
    running_now = bool(marks) and marks[-1][1] == "batch.start"
    return Production(starts[0] if starts else None, stops[-1] if stops else None,
                      running_ms(marks, now_ms()), running_now, operators)
