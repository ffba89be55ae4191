"""Everything known about one code: state, history, parent, children, batch, shipment."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from edge.domain import batches, shipments
from edge.domain.codes import code, code_by_id
from edge.domain.lifecycle import LEVEL_NAME, Reason, State

CHILDREN_SHOWN = 100


@dataclass
class CodeView:
    """A code as the operator sees it."""

    serial: str
    level: str
    state: str
    reason: str | None
    batch: dict[str, Any] | None
    parent: str | None
    children: list[str]
    children_total: int
    container: dict[str, Any] | None
    shipment: dict[str, Any] | None
    history: list[dict[str, Any]] = field(default_factory=list)


def inspect(conn: sqlite3.Connection, serial: str) -> CodeView:
    """Gather the view of ``serial`` (raises UnknownCode)."""
    c = code(conn, serial)
    row = conn.execute(
        "SELECT reason, reservation_id, printed_at, verified_at, segment_id FROM codes "
        "WHERE id = ?",
        (c.id,),
    ).fetchone()
    reason, reservation_id, printed_at, verified_at, segment_id = row
    batch_info = None
    if c.batch_id is not None:
        b = batches.get(conn, c.batch_id)
        batch_info = {"id": b.id, "line": b.line_id, "product": b.product_id, "lot": b.lot,
                      "state": b.state}
    parent = code_by_id(conn, c.parent_id).serial if c.parent_id is not None else None
    children = [r[0] for r in conn.execute(
        "SELECT serial FROM codes WHERE parent_id = ? ORDER BY id LIMIT ?",
        (c.id, CHILDREN_SHOWN))]
    total = int(conn.execute("SELECT count(*) FROM codes WHERE parent_id = ?",
                             (c.id,)).fetchone()[0])
    box = conn.execute("SELECT capacity, child_count, status, partial_reason FROM containers "
                       "WHERE code_id = ?", (c.id,)).fetchone()
    container = (
        {"capacity": box[0], "children": box[1], "status": box[2], "partial_reason": box[3]}
        if box else None
    )
    ship = shipments.shipment_of(conn, c)
    ship_info = (
        {"id": ship.id, "distributor": ship.distributor, "region": ship.region,
         "status": ship.status}
        if ship else None
    )
    history: list[dict[str, Any]] = []
    seg = conn.execute("SELECT source, origin, created_at FROM segments WHERE id = ?",
                       (segment_id,)).fetchone()
    if seg:
        history.append({"at": seg[2], "what": f"{seg[0]} into the pool"
                        + (f" from {seg[1]}" if seg[1] else "")})
    if reservation_id is not None:
        res = conn.execute("SELECT at, station_id FROM reservations WHERE id = ?",
                           (reservation_id,)).fetchone()
        history.append({"at": res[0], "what": f"reserved for batch {c.batch_id} at station "
                        f"{res[1]}"})
    if printed_at:
        history.append({"at": printed_at, "what": "printed"})
    if verified_at:
        what = "rejected" if c.state is State.REJECTED else "verified, commissioned"
        history.append({"at": verified_at, "what": what})
    for at, kind, detail, shipment_id, count in conn.execute(
        "SELECT at, kind, detail, shipment_id, count FROM events WHERE code_id = ? ORDER BY id",
        (c.id,)
    ):
        info = json.loads(detail) if detail else {}
        if shipment_id is not None:
            info["shipment"] = shipment_id
        if count is not None:
            info["count"] = count
        history.append({"at": at, "what": in_words(kind, info), "event": kind, **info})
    history.sort(key=lambda h: h["at"])
    return CodeView(
        serial=c.serial,
        level=LEVEL_NAME[c.level],
        state=c.state.name,
        reason=Reason(reason).label if reason else None,
        batch=batch_info,
        parent=parent,
        children=children,
        children_total=total,
        container=container,
        shipment=ship_info,
        history=history,
    )


def in_words(kind: str, info: dict[str, Any]) -> str:
    """What an event did to a code, as a sentence for a person."""
    why = f": {info['reason']}" if info.get("reason") else ""
    if kind == "agg.pack":
        return (f"{info.get('count', 0)} packed in"
                + (", closed" if info.get("closed") else ""))
    if kind == "agg.close":
        partial = info.get("partial")
        return (f"closed holding {info.get('count', 0)}"
                + (f" (partial: {partial})" if isinstance(partial, str) and partial else ""))
    if kind == "agg.reopen":
        return f"reopened{why}"
    if kind == "agg.unpack":
        return f"taken out of {info.get('container', '?')}{why}"
    if kind == "agg.replace":
        if "old" in info:
            return f"put in {info.get('container', '?')} in place of {info['old']}{why}"
        return f"replaced in {info.get('container', '?')} by {info.get('new', '?')}{why}"
    if kind == "code.decommission":
        return f"decommissioned{why}"
    if kind == "flow.reject":
        return f"rejected{why}"
    if kind == "ship.add":
        return f"put on shipment {info.get('shipment', '?')}"
    if kind == "ship.remove":
        return f"taken off shipment {info.get('shipment', '?')}"
    return kind + why
