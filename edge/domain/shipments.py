"""Shipments: the only way a code becomes ACTIVE (invariant 4).

Confirming a shipment activates the whole subtree of every pallet and case on it and issues
one activation manifest; cancelling a confirmed shipment returns the subtree to COMMISSIONED
and issues a deactivation manifest. This module keeps the shipment and decides; how the
codes move (at once, or in steps that finish when called again after a crash) is
:mod:`edge.domain.activation`.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from stdnum import ean

from edge.domain import activation, audit, events
from edge.domain.activation import Sealer
from edge.domain.codes import CodeRow, code, code_by_id, open_shipment_holding
from edge.domain.errors import (
    MixedBatch,
    NotCommissioned,
    ReasonRequired,
    ShipmentError,
    UnknownShipment,
)
from edge.domain.lifecycle import State
from edge.store.database import Store, now_ms

PARTY = re.compile(r"^[^\x00-\x1f\x7f]{1,64}$")
GLN = re.compile(r"^[0-9]{13}$")
REFERENCE = re.compile(r"^[A-Za-z0-9._/-]{1,35}$")
REFERENCE_TYPES = ("desadv", "po", "inv", "bol")
"""CBV 2.0 business transaction types a shipment may reference: despatch advice, purchase
order, invoice, bill of lading."""



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
    reference: str | None = None
    reference_type: str | None = None
    distributor_gln: str | None = None


def get(conn: sqlite3.Connection, shipment_id: int) -> Shipment:
    row = conn.execute(
        "SELECT id, distributor, region, status, created_at, confirmed_at, cancel_reason, "
        "code_count, (SELECT count(*) FROM shipment_containers WHERE shipment_id = s.id), "
        "reference, reference_type, distributor_gln FROM shipments s WHERE id = ?",
        (shipment_id,),
    ).fetchone()
    if row is None:
        raise UnknownShipment("no shipment {shipment_id}: `codeline ship list` shows them",
                              shipment_id=shipment_id)
    return Shipment(*row)


def list_shipments(conn: sqlite3.Connection) -> list[Shipment]:
    ids = [r[0] for r in conn.execute("SELECT id FROM shipments ORDER BY id")]
    return [get(conn, i) for i in ids]


def create(store: Store, distributor: str, region: str, *, operator: str,
           distributor_gln: str | None = None, reference: str | None = None,
           reference_type: str = "desadv") -> Shipment:
    """Open a shipment to a distributor in a region; ``reference`` is the number of its
    despatch advice (or order, or invoice: ``reference_type``), which its shipping event
    names as business transaction."""
    for name, value in (("distributor", distributor), ("region", region)):
        if not PARTY.match(value):
            raise ShipmentError("{name} must be 1-64 printable characters", name=name)
    if distributor_gln is not None and not (GLN.match(distributor_gln)
                                            and ean.is_valid(distributor_gln)):
        raise ShipmentError("distributor GLN {distributor_gln!r} is not a GLN: 13 digits with "
                            "a valid check digit", distributor_gln=distributor_gln[:20])
    if reference is not None and not REFERENCE.match(reference):
        raise ShipmentError("the reference must be 1-35 letters, digits, '-', '.', '/' or '_'")
    if reference_type not in REFERENCE_TYPES:
        raise ShipmentError("reference type {reference_type!r} is not one of {known}",
                            reference_type=reference_type[:20],
                            known=', '.join(REFERENCE_TYPES))
    with store.transaction() as conn:
        cursor = conn.execute(
            "INSERT INTO shipments (distributor, region, status, created_at, distributor_gln, "
            "reference, reference_type) VALUES (?, ?, 'open', ?, ?, ?, ?)",
            (distributor, region, now_ms(), distributor_gln, reference, reference_type),
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
        raise ShipmentError("shipment {shipment_id} is {shipment_status}, not open",
                            shipment_id=shipment_id, shipment_status=shipment.status)
    return shipment


def add(
    store: Store, shipment_id: int, serial: str, *, operator: str, allow_mixed_batches: bool
) -> CodeRow:
    """Put a closed, commissioned, top-level pallet or case on an open shipment."""
    return add_all(store, shipment_id, [serial], operator=operator,
                   allow_mixed_batches=allow_mixed_batches)[0]


def add_all(store: Store, shipment_id: int, serials: list[str], *, operator: str,
            allow_mixed_batches: bool) -> list[CodeRow]:
    """Put several pallets or cases on an open shipment, all or none: the first one refused
    refuses the lot, and the error names it."""
    with store.transaction() as conn:
        _require_open(conn, shipment_id)
        return [_add(conn, shipment_id, serial, operator, allow_mixed_batches)
                for serial in serials]


def remove(store: Store, shipment_id: int, serial: str, *, operator: str) -> CodeRow:
    """Take a pallet or case off an open shipment (scanned by mistake, or not loaded)."""
    with store.transaction() as conn:
        _require_open(conn, shipment_id)
        c = code(conn, serial)
        removed = conn.execute(
            "DELETE FROM shipment_containers WHERE shipment_id = ? AND code_id = ?",
            (shipment_id, c.id)).rowcount
        if not removed:
            raise ShipmentError("{level_name} {serial} is not on shipment {shipment_id}",
                                level_name=c.level_name, serial=serial,
                                shipment_id=shipment_id)
        events.append(conn, "ship.remove", shipment_id=shipment_id, code_id=c.id)
        audit.record(conn, operator, "ship.remove", f"shipment:{shipment_id}", serial=serial)
        return c


def _add(conn: sqlite3.Connection, shipment_id: int, serial: str, operator: str,
         allow_mixed_batches: bool) -> CodeRow:
    c = code(conn, serial)
    if c.level == 0:
        raise ShipmentError("{serial} is an item code: ship the case or pallet holding it",
                            serial=serial)
    if c.state is State.ACTIVE:
        raise ShipmentError("{level_name} {serial} is already shipped",
                            level_name=c.level_name, serial=serial)
    if c.state is not State.COMMISSIONED:
        raise NotCommissioned("{level_name} {serial} is {state_name}, not COMMISSIONED",
                              level_name=c.level_name, serial=serial,
                              state_name=c.state.name)
    row = conn.execute("SELECT status FROM containers WHERE code_id = ?", (c.id,)).fetchone()
    if row is None or row[0] != "closed":
        raise ShipmentError("{level_name} {serial} is not a closed container",
                            level_name=c.level_name, serial=serial)
    if c.parent_id is not None:
        raise ShipmentError(
            "case {serial} is on pallet {holder}: ship the pallet, or unpack the "
            "case first", serial=serial, holder=code_by_id(conn, c.parent_id).serial
        )
    other = open_shipment_holding(conn, c.id)
    if other is not None:
        raise ShipmentError("{serial} is already on open shipment {other}",
                            serial=serial, other=other)
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
                "{serial} is of batch {batch_id}, shipment {shipment_id} holds batch {held}; "
                "the config forbids mixing", serial=serial, batch_id=c.batch_id,
                shipment_id=shipment_id,
                held=", ".join(str(b) for b in sorted(batch_ids))
            )
    conn.execute("INSERT INTO shipment_containers (shipment_id, code_id) VALUES (?, ?)",
                 (shipment_id, c.id))
    events.append(conn, "ship.add", shipment_id=shipment_id, code_id=c.id)
    audit.record(conn, operator, "ship.add", f"shipment:{shipment_id}", serial=serial)
    return c


def confirm(store: Store, shipment_id: int, *, operator: str, seal: Sealer | None = None
            ) -> Shipment:
    """Activate every code under the shipment and issue its activation manifest, sealed
    when a ``seal`` is given: at once up to ``activation.AT_ONCE`` codes, else in steps
    (:mod:`edge.domain.activation`); an interrupted confirm (``confirming``) is finished by
    calling it again."""
    return _settle(store, shipment_id, activation.CONFIRMING,
                   lambda conn: _begin_confirm(conn, shipment_id), operator, seal, None)


def _begin_confirm(conn: sqlite3.Connection, shipment_id: int) -> bool:
    """Mark an open shipment ``confirming`` (True); False when it already is (an
    interrupted confirm); refused otherwise."""
    shipment = get(conn, shipment_id)
    if shipment.status == "confirming":
        return False
    if shipment.status != "open":
        raise ShipmentError("shipment {shipment_id} is {shipment_status}, not open",
                            shipment_id=shipment_id, shipment_status=shipment.status)
    if shipment.containers == 0:
        raise ShipmentError("shipment {shipment_id} holds nothing; add pallets or cases",
                            shipment_id=shipment_id)
    conn.execute("UPDATE shipments SET status = 'confirming', confirmed_at = ? WHERE id = ?",
                 (now_ms(), shipment_id))
    return True


def cancel(store: Store, shipment_id: int, *, operator: str, reason: str | None,
           seal: Sealer | None = None) -> Shipment:
    """Cancel: an open shipment is discarded; a confirmed one is deactivated (as a confirm:
    at once when small, else in steps; an interrupted cancel, ``cancelling``, is finished by
    calling it again)."""
    if not (reason and reason.strip()):
        raise ReasonRequired("cancelling a shipment needs a reason")
    return _settle(store, shipment_id, activation.CANCELLING,
                   lambda conn: _begin_cancel(conn, shipment_id, operator, reason),
                   operator, seal, reason)


def _begin_cancel(conn: sqlite3.Connection, shipment_id: int, operator: str, reason: str
                  ) -> Shipment | bool:
    """An open shipment: discarded, and returned. A confirmed one: marked ``cancelling``
    (True); False when it already is (an interrupted cancel). Refused otherwise."""
    shipment = get(conn, shipment_id)
    at = now_ms()
    if shipment.status == "cancelled":
        raise ShipmentError("shipment {shipment_id} is already cancelled",
                            shipment_id=shipment_id)
    if shipment.status == "confirming":
        raise ShipmentError("shipment {shipment_id} is being confirmed (interrupted?): "
                            "finish with `ship confirm`, then cancel", shipment_id=shipment_id)
    if shipment.status == "open":
        conn.execute("UPDATE shipments SET status = 'cancelled', cancelled_at = ?, "
                     "cancel_reason = ? WHERE id = ?", (at, reason, shipment_id))
        events.append(conn, "ship.cancel", shipment_id=shipment_id, count=0, at=at,
                      reason=reason)
        audit.record(conn, operator, "ship.cancel", f"shipment:{shipment_id}",
                     reason=reason, deactivated=0)
        return get(conn, shipment_id)
    if shipment.status == "cancelling":
        return False
    conn.execute("UPDATE shipments SET status = 'cancelling', cancelled_at = ?, "
                 "cancel_reason = ? WHERE id = ?", (at, reason, shipment_id))
    return True


def _settle(store: Store, shipment_id: int, step: activation.Step,
            begin: Callable[[sqlite3.Connection], Shipment | bool], operator: str,
            seal: Sealer | None, reason: str | None) -> Shipment:
    """``begin`` the confirm or cancel (it returns the shipment when nothing is left to do,
    True when it marked the shipment ``step.doing`` now, False when it already was), then
    move its codes: in the same transaction when the tree is small and the run new, else in
    steps."""
    if activation.fits_at_once(store, shipment_id):
        with contextlib.suppress(activation.TooBig), store.transaction() as conn:
            begun = begin(conn)
            if isinstance(begun, Shipment):
                return begun
            if begun:
                activation.at_once(conn, shipment_id, step, operator, seal, reason)
                return get(conn, shipment_id)
    with store.transaction() as conn:
        begun = begin(conn)
        if isinstance(begun, Shipment):
            return begun
    activation.run_steps(store, shipment_id, step, operator, seal, reason)
    return get(store.read(), shipment_id)


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
