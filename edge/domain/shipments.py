"""Shipments: the only way a code becomes ACTIVE (invariant 4).

Confirming a shipment activates the whole subtree of every pallet and case on it in one
transaction and queues one activation manifest in the outbox; cancelling a confirmed
shipment returns the subtree to COMMISSIONED and queues a deactivation manifest.
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from edge.domain import audit, events
from edge.domain.codes import CodeRow, code, code_by_id, open_shipment_holding
from edge.domain.errors import (
    MixedBatch,
    NotCommissioned,
    ReasonRequired,
    ShipmentError,
    UnknownShipment,
)
from edge.domain.lifecycle import State, transition_tree
from edge.store.database import Store, now_ms

PARTY = re.compile(r"^[^\x00-\x1f\x7f]{1,64}$")

Sealer = Callable[[sqlite3.Connection, int], None]
"""Digests and signs the manifest with this sequence number inside the issuing transaction
(``sync.manifest.sealer`` makes one from the site's signing key)."""


@dataclass(frozen=True)
class Shipment:
    """One row of ``shipments`` with its containers' count."""

    id: int
    distributor: str
    region: str
    status: str
    created_at: int
    confirmed_at: int | None
    cancel_reason: str | None
    code_count: int | None
    containers: int


def get(conn: sqlite3.Connection, shipment_id: int) -> Shipment:
    row = conn.execute(
        "SELECT id, distributor, region, status, created_at, confirmed_at, cancel_reason, "
        "code_count, (SELECT count(*) FROM shipment_containers WHERE shipment_id = s.id) "
        "FROM shipments s WHERE id = ?",
        (shipment_id,),
    ).fetchone()
    if row is None:
        raise UnknownShipment(f"no shipment {shipment_id}: `codeline ship list` shows them")
    return Shipment(*row)


def list_shipments(conn: sqlite3.Connection) -> list[Shipment]:
    ids = [r[0] for r in conn.execute("SELECT id FROM shipments ORDER BY id")]
    return [get(conn, i) for i in ids]


def create(store: Store, distributor: str, region: str, *, operator: str) -> Shipment:
    """Open a shipment to a distributor in a region."""
    for name, value in (("distributor", distributor), ("region", region)):
        if not PARTY.match(value):
            raise ShipmentError(f"{name} must be 1-64 printable characters")
    with store.transaction() as conn:
        cursor = conn.execute(
            "INSERT INTO shipments (distributor, region, status, created_at) "
            "VALUES (?, ?, 'open', ?)",
            (distributor, region, now_ms()),
        )
        shipment_id = int(cursor.lastrowid or 0)
        events.append(conn, "ship.create", shipment_id=shipment_id, distributor=distributor,
                      region=region)
        audit.record(conn, operator, "ship.create", f"shipment:{shipment_id}",
                     distributor=distributor, region=region)
        return get(conn, shipment_id)


def _require_open(conn: sqlite3.Connection, shipment_id: int) -> Shipment:
    shipment = get(conn, shipment_id)
    if shipment.status != "open":
        raise ShipmentError(f"shipment {shipment_id} is {shipment.status}, not open")
    return shipment


def add(
    store: Store, shipment_id: int, serial: str, *, operator: str, allow_mixed_batches: bool
) -> CodeRow:
    """Put a closed, commissioned, top-level pallet or case on an open shipment."""
    with store.transaction() as conn:
        _require_open(conn, shipment_id)
        c = code(conn, serial)
        if c.level == 0:
            raise ShipmentError(f"{serial} is an item code: ship the case or pallet holding it")
        if c.state is State.ACTIVE:
            raise ShipmentError(f"{c.level_name} {serial} is already shipped")
        if c.state is not State.COMMISSIONED:
            raise NotCommissioned(f"{c.level_name} {serial} is {c.state.name}, not COMMISSIONED")
        row = conn.execute("SELECT status FROM containers WHERE code_id = ?", (c.id,)).fetchone()
        if row is None or row[0] != "closed":
            raise ShipmentError(f"{c.level_name} {serial} is not a closed container")
        if c.parent_id is not None:
            raise ShipmentError(
                f"case {serial} is on pallet {code_by_id(conn, c.parent_id).serial}: ship the "
                "pallet, or unpack the case first"
            )
        other = open_shipment_holding(conn, c.id)
        if other is not None:
            raise ShipmentError(f"{serial} is already on open shipment {other}")
        if not allow_mixed_batches:
            batch_ids = {
                r[0]
                for r in conn.execute(
                    "SELECT DISTINCT c.batch_id FROM shipment_containers sc "
                    "JOIN codes c ON c.id = sc.code_id WHERE sc.shipment_id = ?",
                    (shipment_id,),
                )
            }
            if batch_ids and batch_ids != {c.batch_id}:
                raise MixedBatch(
                    f"{serial} is of batch {c.batch_id}, shipment {shipment_id} holds batch "
                    f"{', '.join(str(b) for b in sorted(batch_ids))}; the config forbids mixing"
                )
        conn.execute("INSERT INTO shipment_containers (shipment_id, code_id) VALUES (?, ?)",
                     (shipment_id, c.id))
        events.append(conn, "ship.add", shipment_id=shipment_id, code_id=c.id)
        audit.record(conn, operator, "ship.add", f"shipment:{shipment_id}", serial=serial)
        return c


def _collect_tree(conn: sqlite3.Connection, shipment_id: int) -> None:
    """Fill temp table ``ship_tree`` with every code under the shipment, level by level."""
    for table in ("ship_tree", "ship_frontier", "ship_next"):
        conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY)")
        conn.execute(f"DELETE FROM temp.{table}")
    conn.execute(
        "INSERT INTO ship_frontier SELECT code_id FROM shipment_containers WHERE shipment_id = ?",
        (shipment_id,),
    )
    while True:
        conn.execute("INSERT INTO ship_tree SELECT id FROM ship_frontier")
        # IN (subquery) probes codes_parent per container; a JOIN scans the index.
        conn.execute(
            "INSERT INTO ship_next SELECT id FROM codes "
            "WHERE parent_id IN (SELECT id FROM ship_frontier)"
        )
        if conn.execute("SELECT count(*) FROM ship_next").fetchone()[0] == 0:
            break
        conn.execute("DELETE FROM ship_frontier")
        conn.execute("INSERT INTO ship_frontier SELECT id FROM ship_next")
        conn.execute("DELETE FROM ship_next")


def confirm(store: Store, shipment_id: int, *, operator: str, seal: Sealer | None = None
            ) -> Shipment:
    """Activate every code under the shipment and issue its activation manifest (sealed
    in the same transaction when a ``seal`` is given)."""
    with store.transaction() as conn:
        shipment = _require_open(conn, shipment_id)
        if shipment.containers == 0:
            raise ShipmentError(f"shipment {shipment_id} holds nothing; add pallets or cases")
        _collect_tree(conn, shipment_id)
        count = transition_tree(conn, "ship_tree", State.COMMISSIONED, State.ACTIVE)
        at = now_ms()
        conn.execute(
            "UPDATE shipments SET status = 'confirmed', confirmed_at = ?, code_count = ? "
            "WHERE id = ?",
            (at, count, shipment_id),
        )
        _issue(conn, "activation", shipment_id, at, seal)
        events.append(conn, "ship.confirm", shipment_id=shipment_id, count=count, at=at)
        audit.record(conn, operator, "ship.confirm", f"shipment:{shipment_id}", codes=count)
        return get(conn, shipment_id)


def cancel(store: Store, shipment_id: int, *, operator: str, reason: str | None,
           seal: Sealer | None = None) -> Shipment:
    """Cancel: an open shipment is discarded; a confirmed one is deactivated."""
    if not (reason and reason.strip()):
        raise ReasonRequired("cancelling a shipment needs a reason")
    with store.transaction() as conn:
        shipment = get(conn, shipment_id)
        at = now_ms()
        if shipment.status == "cancelled":
            raise ShipmentError(f"shipment {shipment_id} is already cancelled")
        deactivated = 0
        if shipment.status == "confirmed":
            _collect_tree(conn, shipment_id)
            deactivated = transition_tree(conn, "ship_tree", State.ACTIVE, State.COMMISSIONED)
            _issue(conn, "deactivation", shipment_id, at, seal)
        conn.execute(
            "UPDATE shipments SET status = 'cancelled', cancelled_at = ?, cancel_reason = ? "
            "WHERE id = ?",
            (at, reason, shipment_id),
        )
        events.append(conn, "ship.cancel", shipment_id=shipment_id, count=deactivated, at=at,
                      reason=reason)
        audit.record(conn, operator, "ship.cancel", f"shipment:{shipment_id}", reason=reason,
                     deactivated=deactivated)
        return get(conn, shipment_id)


def _issue(conn: sqlite3.Connection, kind: str, shipment_id: int, at: int,
           seal: Sealer | None) -> None:
    """Queue a manifest for the cloud and freeze what it covers (the codes in ``ship_tree``
    with their parents now); its sequence number is the outbox row's. The row is frozen
    before the transaction ends (no code can be added to it afterwards) and, given a
    ``seal``, digested and signed in the same transaction."""
    count = int(conn.execute("SELECT count(*) FROM ship_tree").fetchone()[0])
    cursor = conn.execute(
        "INSERT INTO outbox (manifest_id, kind, shipment_id, created_at, code_count, frozen) "
        "VALUES (?, ?, ?, ?, ?, 0)",
        (str(uuid.uuid4()), kind, shipment_id, at, count),
    )
    seq = int(cursor.lastrowid or 0)
    conn.execute(
        "INSERT INTO manifest_codes (seq, code_id, parent_id) "
        "SELECT ?, c.id, c.parent_id FROM ship_tree t JOIN codes c ON c.id = t.id",
        (seq,),
    )
    conn.execute("UPDATE outbox SET frozen = 1 WHERE seq = ?", (seq,))
    if seal is not None:
        seal(conn, seq)


def shipment_of(conn: sqlite3.Connection, code_row: CodeRow) -> Shipment | None:
    """The confirmed or open shipment holding ``code_row`` or one of its ancestors."""
    node: CodeRow | None = code_row
    while node is not None:
        row = conn.execute(
            "SELECT s.id FROM shipment_containers sc JOIN shipments s ON s.id = sc.shipment_id "
            "WHERE sc.code_id = ? AND s.status != 'cancelled' ORDER BY s.id DESC LIMIT 1",
            (node.id,),
        ).fetchone()
        if row is not None:
            return get(conn, row[0])
        node = code_by_id(conn, node.parent_id) if node.parent_id is not None else None
    return None
