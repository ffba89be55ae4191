"""Aggregation: items into cases, cases onto pallets (invariant 3).

A code has at most one parent, exactly one level above it; only COMMISSIONED codes are
packed, only into an open container of the same batch, never past its capacity. A closed
container changes only through rework (unpack, replace, reopen), each with a reason in the
audit log, and never once it is in a shipment.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from edge.domain import audit, batches, business_events, events
from edge.domain.codes import CodeRow, code, code_by_id, open_shipment_holding
from edge.domain.errors import (
    AggregationError,
    AlreadyPacked,
    ContainerClosed,
    ContainerFull,
    MixedBatch,
    NotCommissioned,
    ReasonRequired,
    ShipmentError,
    WrongLevel,
)
from edge.domain.lifecycle import State, transition
from edge.store.database import Store, now_ms


@dataclass(frozen=True)
class Container:
    """A case or pallet code in its role as a container."""

    code: CodeRow
    capacity: int
    child_count: int
    status: str
    partial_reason: str | None


def container(conn: sqlite3.Connection, serial: str) -> Container | None:
    """The container of ``serial``, or None if nothing was ever packed into it."""
    c = code(conn, serial)
    row = conn.execute(
        "SELECT capacity, child_count, status, partial_reason FROM containers WHERE code_id = ?",
        (c.id,),
    ).fetchone()
    return Container(c, row[0], row[1], row[2], row[3]) if row else None


def _open_container(conn: sqlite3.Connection, parent: CodeRow) -> Container:
    if parent.level == 0:
        raise WrongLevel("{parent_serial} is an item code; items hold nothing",
                         parent_serial=parent.serial)
    if parent.state is not State.COMMISSIONED:
        raise NotCommissioned(
            "{parent_level_name} {parent_serial} is {parent_state_name}; a container's own "
            "code must be COMMISSIONED (printed and verified) before anything is packed in it",
            parent_level_name=parent.level_name, parent_serial=parent.serial,
            parent_state_name=parent.state.name
        )
    row = conn.execute(
        "SELECT capacity, child_count, status, partial_reason FROM containers WHERE code_id = ?",
        (parent.id,),
    ).fetchone()
    if row is None:
        if parent.batch_id is None:
            raise AggregationError("{parent_serial} belongs to no batch",
                                   parent_serial=parent.serial)
        batch = batches.get(conn, parent.batch_id)
        capacity = batch.capacity(parent.level_name)  # type: ignore[arg-type]
        conn.execute(
            "INSERT INTO containers (code_id, level, capacity, child_count, status, opened_at) "
            "VALUES (?, ?, ?, 0, 'open', ?)",
            (parent.id, parent.level, capacity, now_ms()),
        )
        return Container(parent, capacity, 0, "open", None)
    return Container(parent, row[0], row[1], row[2], row[3])


def _not_shipping(conn: sqlite3.Connection, top: CodeRow) -> None:
    """Refuse rework on anything shipped or waiting on a dock."""
    node: CodeRow | None = top
    while node is not None:
        if node.state is State.ACTIVE:
            raise ShipmentError("{node_serial} is shipped (ACTIVE); cancel the shipment first",
                                node_serial=node.serial)
        on_dock = open_shipment_holding(conn, node.id)
        if on_dock is not None:
            raise ShipmentError(
                "{node_serial} is on open shipment {on_dock}; remove it from the shipment first",
                node_serial=node.serial, on_dock=on_dock
            )
        node = code_by_id(conn, node.parent_id) if node.parent_id is not None else None


def pack(store: Store, container_serial: str, child_serials: list[str], *, operator: str,
         close: bool = False) -> Container:
    """Pack children into an open container; with ``close``, close it when it is full."""
    with store.transaction() as conn:
        return pack_in(conn, container_serial, child_serials, operator=operator, close=close)


def pack_in(conn: sqlite3.Connection, container_serial: str, child_serials: list[str], *,
          operator: str, close: bool) -> Container:
    if not child_serials:
        raise AggregationError("nothing to pack")
    if len(set(child_serials)) != len(child_serials):
        raise AggregationError("the same code appears twice in one pack request")
    parent = code(conn, container_serial)
    box = _open_container(conn, parent)
    if box.status != "open":
        raise ContainerClosed(
            "{parent_level_name} {parent_serial} is closed; reopen it with a reason first",
            parent_level_name=parent.level_name, parent_serial=parent.serial
        )
    if box.child_count + len(child_serials) > box.capacity:
        raise ContainerFull(
            "{parent_level_name} {parent_serial} holds {box_child_count} of {box_capacity}; "
            "{n_child_serials} more do not fit", parent_level_name=parent.level_name,
            parent_serial=parent.serial, box_child_count=box.child_count,
            box_capacity=box.capacity, n_child_serials=len(child_serials)
        )
    ids: list[int] = []
    for serial in child_serials:
        child = code(conn, serial)
        if child.level != parent.level - 1:
            raise WrongLevel(
                "{child_level_name} {child_serial} cannot go into a {parent_level_name}: a "
                "child is exactly one level below its parent",
                child_level_name=child.level_name, child_serial=child.serial,
                parent_level_name=parent.level_name
            )
        if child.state is not State.COMMISSIONED:
            raise NotCommissioned(
                "{child_level_name} {child_serial} is {child_state_name}; only COMMISSIONED "
                "codes are packed", child_level_name=child.level_name,
                child_serial=child.serial, child_state_name=child.state.name
            )
        if child.parent_id is not None:
            holder = code_by_id(conn, child.parent_id)
            raise AlreadyPacked("{child_serial} is already in {holder_serial}",
                                child_serial=child.serial, holder_serial=holder.serial)
        if child.batch_id != parent.batch_id:
            raise MixedBatch(
                "{child_serial} is of batch {child_batch_id}, {parent_serial} of batch "
                "{parent_batch_id}", child_serial=child.serial,
                child_batch_id=child.batch_id, parent_serial=parent.serial,
                parent_batch_id=parent.batch_id
            )
        if child.level > 0:
            inner = conn.execute(
                "SELECT status FROM containers WHERE code_id = ?", (child.id,)
            ).fetchone()
            if inner is None or inner[0] != "closed":
                raise AggregationError("case {child_serial} is not closed; close it first",
                                       child_serial=child.serial)
        ids.append(child.id)
    before = conn.total_changes
    conn.executemany(
        "UPDATE codes SET parent_id = ? WHERE id = ? AND parent_id IS NULL AND state = ?",
        ((parent.id, i, int(State.COMMISSIONED)) for i in ids),
    )
    if conn.total_changes - before != len(ids):  # pragma: no cover - guarded above
        raise AggregationError("a child changed while packing; nothing was packed")
    count = box.child_count + len(ids)
    status = "closed" if close and count == box.capacity else "open"
    at = now_ms()
    conn.execute(
        "UPDATE containers SET child_count = ?, status = ?, closed_at = ? WHERE code_id = ?",
        (count, status, at if status == "closed" else None, parent.id),
    )
    business_events.aggregated(conn, parent.id, ids, at, packed=True)
    events.append(conn, "agg.pack", batch_id=parent.batch_id, code_id=parent.id,
                  count=len(ids), closed=status == "closed")
    audit.record(conn, operator, "agg.pack", parent.serial, count=len(ids),
                 closed=status == "closed")
    return Container(parent, box.capacity, count, status, None)


def close(store: Store, container_serial: str, *, operator: str,
          reason: str | None = None) -> Container:
    """Close a container: full, or partial with a reason (e.g. end of batch)."""
    with store.transaction() as conn:
        box = container(conn, container_serial)
        if box is None or box.child_count == 0:
            raise AggregationError("{container_serial} holds nothing; an empty container is "
                                   "not closed", container_serial=container_serial)
        if box.status == "closed":
            raise ContainerClosed("{container_serial} is already closed",
                                  container_serial=container_serial)
        partial = box.child_count < box.capacity
        if partial and not (reason and reason.strip()):
            raise ReasonRequired(
                "{container_serial} holds {box_child_count} of {box_capacity}: closing it "
                "partial needs a reason", container_serial=container_serial,
                box_child_count=box.child_count, box_capacity=box.capacity
            )
        conn.execute(
            "UPDATE containers SET status = 'closed', closed_at = ?, partial_reason = ? "
            "WHERE code_id = ?",
            (now_ms(), reason if partial else None, box.code.id),
        )
        events.append(conn, "agg.close", batch_id=box.code.batch_id, code_id=box.code.id,
                      count=box.child_count, partial=partial)
        audit.record(conn, operator, "agg.close", container_serial,
                     reason=reason if partial else None, children=box.child_count)
        return Container(box.code, box.capacity, box.child_count, "closed",
                         reason if partial else None)


def _reason(reason: str | None, what: str) -> str:
    if not (reason and reason.strip()):
        raise ReasonRequired("{what} is rework and needs a reason", what=what)
    return reason.strip()


def reopen(store: Store, container_serial: str, *, operator: str, reason: str | None) -> None:
    """Reopen a closed container for rework."""
    why = _reason(reason, "reopening a container")
    with store.transaction() as conn:
        box = container(conn, container_serial)
        if box is None or box.status != "closed":
            raise AggregationError("{container_serial} is not a closed container",
                                   container_serial=container_serial)
        _not_shipping(conn, box.code)
        conn.execute(
            "UPDATE containers SET status = 'open', closed_at = NULL, partial_reason = NULL "
            "WHERE code_id = ?",
            (box.code.id,),
        )
        events.append(conn, "agg.reopen", batch_id=box.code.batch_id, code_id=box.code.id,
                      reason=why)
        audit.record(conn, operator, "agg.reopen", container_serial, reason=why)


def unpack(store: Store, child_serial: str, *, operator: str, reason: str | None) -> str:
    """Take a code out of its container (rework); a closed container is reopened by it."""
    why = _reason(reason, "unpacking")
    with store.transaction() as conn:
        child = code(conn, child_serial)
        if child.parent_id is None:
            raise AggregationError("{child_serial} is not packed in anything",
                                   child_serial=child_serial)
        parent = code_by_id(conn, child.parent_id)
        _not_shipping(conn, parent)
        conn.execute("UPDATE codes SET parent_id = NULL WHERE id = ?", (child.id,))
        conn.execute(
            "UPDATE containers SET child_count = child_count - 1, status = 'open', "
            "closed_at = NULL, partial_reason = NULL WHERE code_id = ?",
            (parent.id,),
        )
        business_events.aggregated(conn, parent.id, [child.id], now_ms(), packed=False,
                                   reason=why)
        events.append(conn, "agg.unpack", batch_id=parent.batch_id, code_id=child.id,
                      container=parent.serial, reason=why)
        audit.record(conn, operator, "agg.unpack", child_serial, reason=why,
                     container=parent.serial)
        return parent.serial


def replace(store: Store, old_serial: str, new_serial: str, *, operator: str,
            reason: str | None) -> str:
    """Put ``new_serial`` in the place of ``old_serial`` in its container (rework)."""
    why = _reason(reason, "replacing")
    with store.transaction() as conn:
        old = code(conn, old_serial)
        new = code(conn, new_serial)
        if old.parent_id is None:
            raise AggregationError("{old_serial} is not packed in anything",
                                   old_serial=old_serial)
        parent = code_by_id(conn, old.parent_id)
        _not_shipping(conn, parent)
        if new.level != old.level:
            raise WrongLevel("{new_serial} is a {new_level_name}, {old_serial} a "
                             "{old_level_name}", new_serial=new_serial,
                             new_level_name=new.level_name, old_serial=old_serial,
                             old_level_name=old.level_name)
        if new.state is not State.COMMISSIONED:
            raise NotCommissioned("{new_serial} is {new_state_name}; only COMMISSIONED codes "
                                  "are packed", new_serial=new_serial,
                                  new_state_name=new.state.name)
        if new.parent_id is not None:
            holder = code_by_id(conn, new.parent_id)
            raise AlreadyPacked("{new_serial} is already in {holder_serial}",
                                new_serial=new_serial, holder_serial=holder.serial)
        if new.batch_id != parent.batch_id:
            raise MixedBatch("{new_serial} is of batch {new_batch_id}, the container of batch "
                             "{parent_batch_id}", new_serial=new_serial,
                             new_batch_id=new.batch_id, parent_batch_id=parent.batch_id)
        conn.execute("UPDATE codes SET parent_id = NULL WHERE id = ?", (old.id,))
        conn.execute("UPDATE codes SET parent_id = ? WHERE id = ?", (parent.id, new.id))
        at = now_ms()
        business_events.aggregated(conn, parent.id, [old.id], at, packed=False, reason=why)
        business_events.aggregated(conn, parent.id, [new.id], at, packed=True, reason=why)
        events.append(conn, "agg.replace", batch_id=parent.batch_id, code_id=new.id,
                      old=old_serial, container=parent.serial, reason=why)
        events.append(conn, "agg.replace", batch_id=parent.batch_id, code_id=old.id,
                      new=new_serial, container=parent.serial, reason=why)
        audit.record(conn, operator, "agg.replace", parent.serial, reason=why, old=old_serial,
                     new=new_serial)
        return parent.serial


def decommission(store: Store, serial: str, *, operator: str, reason: str | None) -> None:
    """Take a commissioned code out of circulation (sample, damage): DECOMMISSIONED."""
    why = _reason(reason, "decommissioning")
    with store.transaction() as conn:
        c = code(conn, serial)
        if c.parent_id is not None:
            raise AggregationError(
                "{serial} is in {holder}; unpack it first", serial=serial,
                holder=code_by_id(conn, c.parent_id).serial
            )
        row = conn.execute("SELECT child_count FROM containers WHERE code_id = ?",
                           (c.id,)).fetchone()
        if row is not None and row[0] > 0:
            raise AggregationError("{serial} still holds {children} codes; unpack them first",
                                   serial=serial, children=row[0])
        _not_shipping(conn, c)
        transition(conn, [c.id], State.COMMISSIONED, State.DECOMMISSIONED)
        if c.batch_id is not None:
            business_events.decommissioned(conn, c.batch_id, [c.id], now_ms(), why)
        events.append(conn, "code.decommission", batch_id=c.batch_id, code_id=c.id, reason=why)
        audit.record(conn, operator, "code.decommission", serial, reason=why)


def decommission_unpacked(store: Store, batch_id: int, *, operator: str, reason: str) -> int:
    """Commissioned item codes of the batch that are in no case: DECOMMISSIONED.

    For a line whose case station packs every good item, once the batch has finished and
    its last case is sealed: such an item is no longer on the line (rejected at the gate for
    want of a verdict after a controller restart, or taken off by hand) and will never ship.
    Returns how many codes were decommissioned."""
    with store.transaction() as conn:
        ids = [r[0] for r in conn.execute(
            "SELECT id FROM codes WHERE batch_id = ? AND level = 0 AND state = ? "
            "AND parent_id IS NULL", (batch_id, int(State.COMMISSIONED)))]
        if not ids:
            return 0
        transition(conn, ids, State.COMMISSIONED, State.DECOMMISSIONED, batch_id=batch_id,
                   level="item")
        business_events.decommissioned(conn, batch_id, ids, now_ms(), reason)
        events.append(conn, "code.decommission", batch_id=batch_id, count=len(ids),
                      level="item", reason=reason)
        audit.record(conn, operator, "batch.decommission-unpacked", f"batch:{batch_id}",
                     reason=reason, count=len(ids))
        return len(ids)
