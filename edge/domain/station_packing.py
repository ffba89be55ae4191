"""Packing at the line's stations (invariant 3 as the case and pallet stations meet it): a
verified container is sealed with the children read in it, cases arriving on the pallet
are recorded, and the stations ask what is still open or unpacked. Operator rework is in
:mod:`edge.domain.aggregation`."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from edge.domain import audit, business_events, events
from edge.domain.aggregation import Container, pack_in
from edge.domain.codes import code_by_id
from edge.domain.errors import AggregationError, AlreadyPacked, ReasonRequired, WrongLevel
from edge.domain.lifecycle import LEVEL_NUMBER, State, transition
from edge.store.database import Store, now_ms


def seal(store: Store, container_id: int, child_serials: list[str], *, operator: str,
         partial_reason: str | None = None) -> Container:
    """A station's verified container: its printed label code becomes COMMISSIONED, the
    children are packed and the container closed, all in one transaction (full, or partial
    with a reason). Any refusal leaves everything as it was."""
    with store.transaction() as conn:
        label = code_by_id(conn, container_id)
        if label.level == 0:
            raise WrongLevel("{label_serial} is an item code; items hold nothing",
                             label_serial=label.serial)
        at = now_ms()
        transition(conn, [container_id], State.PRINTED, State.COMMISSIONED, stamp="verified_at",
                   at=at, batch_id=label.batch_id, level=label.level_name)  # type: ignore[arg-type]
        events.append(conn, "flow.commission", batch_id=label.batch_id, count=1, at=at,
                      level=label.level_name)
        if label.batch_id is not None:
            business_events.commissioned(conn, label.batch_id, [container_id], at)
        box = pack_in(conn, label.serial, child_serials, operator=operator, close=True)
        if box.status == "open":
            if not (partial_reason and partial_reason.strip()):
                raise ReasonRequired(
                    "{label_level_name} {label_serial} holds {box_child_count} of "
                    "{box_capacity}: sealing it partial needs a reason",
                    label_level_name=label.level_name, label_serial=label.serial,
                    box_child_count=box.child_count, box_capacity=box.capacity
                )
            conn.execute(
                "UPDATE containers SET status = 'closed', closed_at = ?, partial_reason = ? "
                "WHERE code_id = ?",
                (at, partial_reason, container_id),
            )
            events.append(conn, "agg.close", batch_id=label.batch_id, code_id=container_id,
                          count=box.child_count, partial=True)
            audit.record(conn, operator, "agg.close", label.serial, reason=partial_reason,
                         children=box.child_count)
            box = Container(box.code, box.capacity, box.child_count, "closed", partial_reason)
        return box


def check_children(conn: sqlite3.Connection, batch_id: int, parent_level: int,
                   serials: list[str]) -> list[str]:
    """Why these codes cannot be packed into a new container of the batch (empty: they can)."""
    problems: list[str] = []
    if len(set(serials)) != len(serials):
        problems.append("the same code was read twice")
    for serial in serials:
        row = conn.execute(
            "SELECT level, state, batch_id, parent_id FROM codes WHERE serial = ?", (serial,)
        ).fetchone()
        if row is None:
            problems.append(f"{serial}: not a code of this site")
        elif row[0] != parent_level - 1:
            problems.append(f"{serial}: wrong level")
        elif row[1] != int(State.COMMISSIONED):
            problems.append(f"{serial}: {State(row[1]).name}, not COMMISSIONED")
        elif row[3] is not None:
            problems.append(f"{serial}: already packed")
        elif row[2] != batch_id:
            problems.append(f"{serial}: of batch {row[2]}, not {batch_id}")
        elif parent_level == LEVEL_NUMBER["pallet"] and conn.execute(
                "SELECT k.arrived_at FROM codes c JOIN containers k ON k.code_id = c.id "
                "WHERE c.serial = ?", (serial,)).fetchone()[0] is None:
            problems.append(f"{serial}: not seen arriving on the pallet")
    return problems


def record_arrival(store: Store, case_serial: str, *, station: str) -> None:
    """The pallet station saw sealed case ``case_serial`` arrive on the pallet it builds."""
    with store.transaction() as conn:
        row = conn.execute(
            "SELECT k.status, c.parent_id, k.arrived_at FROM codes c JOIN containers k "
            "ON k.code_id = c.id WHERE c.serial = ? AND c.level = 1", (case_serial,)).fetchone()
        if row is None or row[0] != "closed":
            raise AggregationError("case {case_serial} is not a sealed case: it cannot arrive "
                                   "on a pallet ({station})", case_serial=case_serial,
                                   station=station)
        if row[1] is not None:
            raise AlreadyPacked("case {case_serial} is already on a pallet ({station})",
                                case_serial=case_serial, station=station)
        if row[2] is None:
            conn.execute("UPDATE containers SET arrived_at = ? WHERE code_id = "
                         "(SELECT id FROM codes WHERE serial = ?)", (now_ms(), case_serial))


@dataclass(frozen=True)
class OpenPallet:
    """Sealed cases of a batch on no pallet yet: seen on the open pallet, or still awaited
    (released towards it, or at the case station), each in the order they were sealed."""

    arrived: list[str]
    awaited: list[str]


def open_pallet(conn: sqlite3.Connection, batch_id: int) -> OpenPallet:
    rows = conn.execute(
        "SELECT c.serial, k.arrived_at IS NOT NULL FROM codes c JOIN containers k "
        "ON k.code_id = c.id WHERE c.batch_id = ? AND c.level = 1 AND c.parent_id IS NULL "
        "AND k.status = 'closed' ORDER BY k.closed_at, c.id", (batch_id,)).fetchall()
    return OpenPallet([r[0] for r in rows if r[1]], [r[0] for r in rows if not r[1]])


def unpacked_count(conn: sqlite3.Connection, batch_id: int, level: int) -> int:
    """COMMISSIONED codes of the batch at ``level`` that are in no container yet."""
    return int(conn.execute(
        "SELECT count(*) FROM codes WHERE batch_id = ? AND level = ? AND state = ? "
        "AND parent_id IS NULL", (batch_id, level, int(State.COMMISSIONED))).fetchone()[0])


def sealed_together(conn: sqlite3.Connection, serials: list[str]) -> str | None:
    """The closed container holding exactly these codes and no other, if there is one (a
    case sealed before a restart and never released)."""
    if not serials:
        return None
    marks = ",".join("?" * len(serials))
    rows = conn.execute(
        f"SELECT DISTINCT parent_id FROM codes WHERE serial IN ({marks})", serials).fetchall()
    if len(rows) != 1 or rows[0][0] is None:
        return None
    parent = conn.execute(
        "SELECT c.serial, k.child_count, k.status FROM codes c JOIN containers k "
        "ON k.code_id = c.id WHERE c.id = ?", (rows[0][0],)).fetchone()
    if parent is None or parent[2] != "closed" or parent[1] != len(serials):
        return None
    return str(parent[0])
