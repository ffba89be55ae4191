"""Shipments: the only way a code becomes ACTIVE (invariant 4).

Confirming a shipment activates the whole subtree of every pallet and case on it and issues
one activation manifest; cancelling a confirmed shipment returns the subtree to COMMISSIONED
and issues a deactivation manifest. A small shipment (a pallet or a few) is done in one
transaction; a big one in short steps (it never holds the write lock long while a line
commits verdicts), which finish when called again after a crash.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from stdnum import ean

from edge.domain import audit, business_events, events, history
from edge.domain.codes import CodeRow, code, code_by_id, open_shipment_holding
from edge.domain.errors import (
    MixedBatch,
    NotCommissioned,
    ReasonRequired,
    ShipmentError,
    UnknownShipment,
)
from edge.domain.lifecycle import State, refusal
from edge.store.database import Store, now_ms

PARTY = re.compile(r"^[^\x00-\x1f\x7f]{1,64}$")
GLN = re.compile(r"^[0-9]{13}$")
REFERENCE = re.compile(r"^[A-Za-z0-9._/-]{1,35}$")
REFERENCE_TYPES = ("desadv", "po", "inv", "bol")
"""CBV 2.0 business transaction types a shipment may reference: despatch advice, purchase
order, invoice, bill of lading."""

Sealer = Callable[[sqlite3.Connection, int], tuple[str, str]]
"""The digest and signature of the manifest with this sequence number, computed while it is
issued (``sync.manifest.sealer`` makes one from the site's signing key); the confirm or
cancel stores them in the transaction that freezes the manifest."""


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


@dataclass(frozen=True)
class _Step:
    """What a confirm or a cancel of a confirmed shipment does, in steps."""

    doing: str  # the shipment's status while the steps run
    done: str
    kind: str  # of the manifest issued
    source: State
    target: State


CONFIRMING = _Step("confirming", "confirmed", "activation", State.COMMISSIONED, State.ACTIVE)
CANCELLING = _Step("cancelling", "cancelled", "deactivation", State.ACTIVE, State.COMMISSIONED)
CHUNK = 1_000
"""Codes changed per transaction of a big shipment: a few milliseconds of write lock each."""
AT_ONCE = 3_200
"""Up to this many codes (two pallets of 1,500), a shipment is done in one transaction: it
holds the write lock ~10 ms, less than the steps' pauses would cost."""
PAUSE_S = 0.01
"""Pause after each such transaction: SQLite's waiting writers poll for the lock, so a
running line's commit gets in between two chunks instead of waiting behind all of them."""


class _TooBig(Exception):
    """The tree outgrew ``AT_ONCE`` between its measure and the transaction: go in steps."""


def confirm(store: Store, shipment_id: int, *, operator: str, seal: Sealer | None = None
            ) -> Shipment:
    """Activate every code under the shipment and issue its activation manifest, sealed
    when a ``seal`` is given. A shipment of up to ``AT_ONCE`` codes is confirmed in one
    transaction (:func:`_at_once`); a bigger one in steps (:func:`_run_steps`) so as never
    to hold the write lock for long; an interrupted confirm (``confirming``) is finished by
    calling it again."""
    if _fits_at_once(store, shipment_id):
        with contextlib.suppress(_TooBig), store.transaction() as conn:
            if _begin_confirm(conn, shipment_id):
                return _at_once(conn, shipment_id, CONFIRMING, operator, seal, None)
    with store.transaction() as conn:
        _begin_confirm(conn, shipment_id)
    return _run_steps(store, shipment_id, CONFIRMING, operator, seal, None)


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
    if _fits_at_once(store, shipment_id):
        with contextlib.suppress(_TooBig), store.transaction() as conn:
            begun = _begin_cancel(conn, shipment_id, operator, reason)
            if isinstance(begun, Shipment):
                return begun
            if begun:
                return _at_once(conn, shipment_id, CANCELLING, operator, seal, reason)
    with store.transaction() as conn:
        begun = _begin_cancel(conn, shipment_id, operator, reason)
        if isinstance(begun, Shipment):
            return begun
    return _run_steps(store, shipment_id, CANCELLING, operator, seal, reason)


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


def _tree_rows(conn: sqlite3.Connection, shipment_id: int) -> list[tuple[int, int, int]]:
    """(id, parent id, state) of every code under the shipment, by id. Each step of the
    walk looks a container's children up in ``codes_parent``."""
    return conn.execute(
        "WITH RECURSIVE tree(id) AS (SELECT code_id FROM shipment_containers "
        "WHERE shipment_id = ? UNION ALL SELECT c.id FROM tree t "
        "JOIN codes c INDEXED BY codes_parent ON c.parent_id = t.id) "
        "SELECT c.id, c.parent_id, c.state FROM tree JOIN codes c ON c.id = tree.id "
        "ORDER BY c.id", (shipment_id,)).fetchall()


def _fits_at_once(store: Store, shipment_id: int) -> bool:
    """Whether the shipment's tree is small enough for one transaction. Reading it takes no
    lock and brings its pages into the cache, so that transaction does not wait on the
    disk with the write lock held."""
    conn = store.read()
    with _reading(conn):
        return len(_tree_rows(conn, shipment_id)) <= AT_ONCE


def _check(conn: sqlite3.Connection, rows: list[tuple[int, int, int]], step: _Step) -> None:
    """Every code in the step's source state, or already in its target (a run finished)."""
    stray = [r[0] for r in rows if r[2] not in (int(step.source), int(step.target))]
    if stray:
        raise refusal(conn, stray[:5], step.source, step.target)


def _queue_manifest(conn: sqlite3.Connection, shipment_id: int, step: _Step, count: int) -> int:
    """The sequence number of the shipment's manifest being issued, queued unfrozen (neither
    pushed nor pulled) with the audit log's head, unless an interrupted run queued it."""
    row = conn.execute(
        "SELECT seq FROM outbox WHERE shipment_id = ? AND kind = ? AND frozen = 0",
        (shipment_id, step.kind)).fetchone()
    if row is None:
        anchor = audit.head(conn)
        row = conn.execute(
            "INSERT INTO outbox (manifest_id, kind, shipment_id, created_at, code_count, "
            "frozen, audit_seq, audit_hash) VALUES (?, ?, ?, ?, ?, 0, ?, ?) RETURNING seq",
            (str(uuid.uuid4()), step.kind, shipment_id, now_ms(), count, anchor.seq,
             anchor.hash)).fetchone()
    return int(row[0])


def _move(conn: sqlite3.Connection, ids: list[int], step: _Step, seq: int) -> None:
    """These codes to the step's target state, listed on manifest ``seq``; refused (for the
    caller to roll back) when one is in neither state."""
    marks = ",".join("?" * len(ids))
    conn.execute(f"UPDATE codes SET state = ? WHERE id IN ({marks}) AND state = ?",
                 (int(step.target), *ids, int(step.source)))
    wrong = [r[0] for r in conn.execute(
        f"SELECT id FROM codes WHERE id IN ({marks}) AND state != ? LIMIT 5",
        (*ids, int(step.target)))]
    if wrong:  # changed by hand since the tree was read
        raise refusal(conn, wrong, step.source, step.target)
    history.record(conn, ids, int(step.target))
    conn.execute("INSERT OR IGNORE INTO manifest_codes (seq, code_id, parent_id) "
                 f"SELECT ?, id, parent_id FROM codes WHERE id IN ({marks})", (seq, *ids))


def _at_once(conn: sqlite3.Connection, shipment_id: int, step: _Step, operator: str,
             seal: Sealer | None, reason: str | None) -> Shipment:
    """The whole step in the caller's transaction: the manifest lists the tree straight from
    ``codes_parent``, the codes it lists move, and it is issued. Raises _TooBig (for the
    caller to roll back) when the tree has grown beyond ``AT_ONCE`` codes."""
    seq = _queue_manifest(conn, shipment_id, step, 0)
    listed = conn.execute(
        "INSERT INTO manifest_codes (seq, code_id, parent_id) "
        "WITH RECURSIVE tree(id, parent) AS (SELECT sc.code_id, c.parent_id FROM "
        "shipment_containers sc JOIN codes c ON c.id = sc.code_id WHERE sc.shipment_id = ? "
        "UNION ALL SELECT c.id, c.parent_id FROM tree t "
        "JOIN codes c INDEXED BY codes_parent ON c.parent_id = t.id) "
        "SELECT ?, id, parent FROM tree", (shipment_id, seq)).rowcount
    if listed > AT_ONCE:
        raise _TooBig
    conn.execute("UPDATE outbox SET code_count = ? WHERE seq = ?", (listed, seq))
    moved = [r[0] for r in conn.execute(
        "UPDATE codes SET state = ? WHERE id IN (SELECT code_id FROM manifest_codes "
        "WHERE seq = ?) AND state = ? RETURNING id",
        (int(step.target), seq, int(step.source)))]
    if len(moved) != listed:
        raise refusal(conn, [r[0] for r in conn.execute(
            "SELECT m.code_id FROM manifest_codes m JOIN codes c ON c.id = m.code_id "
            "WHERE m.seq = ? AND c.state != ? LIMIT 5", (seq, int(step.target)))],
            step.source, step.target)
    history.record(conn, moved, int(step.target))
    sealed = seal(conn, seq) if seal is not None else None
    return _issue(conn, shipment_id, step, seq, listed, sealed, operator, reason)


def _run_steps(store: Store, shipment_id: int, step: _Step, operator: str,
               seal: Sealer | None, reason: str | None) -> Shipment:
    """Move the shipment's codes from ``step.source`` to ``step.target`` and issue the
    manifest, with no transaction holding the write lock for more than a few milliseconds:

    1. (done by the caller) the shipment is marked ``step.doing``: from then on nothing can
       be added to it or reworked under it, so its tree is fixed;
    2. the tree is read (no write lock) and every code checked to be in the source state
       (or already moved, when an interrupted run is finished);
    3. the manifest row is queued, not yet frozen: neither pushed nor pulled; it carries
       the audit log's head (a checkpoint the cloud keeps);
    4. the codes move and the manifest lists them, ``CHUNK`` codes per transaction, with a
       pause after each for the other writers;
    5. the manifest is digested and signed with no write lock held (its list can no longer
       change, but by a hand-made INSERT: step 6 finds that by its count);
    6. one short transaction checks the list holds exactly the codes moved, freezes and
       seals the manifest and marks the shipment ``step.done``.

    Killed at any instant, the shipment stays ``step.doing`` and calling again finishes it;
    the cloud sees nothing of it before step 6."""
    conn = store.read()
    with _reading(conn):
        rows = _tree_rows(conn, shipment_id)
    _check(conn, rows, step)
    with store.transaction() as conn:
        seq = _queue_manifest(conn, shipment_id, step, len(rows))
    for first in range(0, len(rows), CHUNK):
        with store.transaction() as conn:
            _move(conn, [r[0] for r in rows[first:first + CHUNK]], step, seq)
        time.sleep(PAUSE_S)
    sealed = seal(store.read(), seq) if seal is not None else None
    with store.transaction() as conn:
        return _issue(conn, shipment_id, step, seq, len(rows), sealed, operator, reason)


def _issue(conn: sqlite3.Connection, shipment_id: int, step: _Step, seq: int, count: int,
           sealed: tuple[str, str] | None, operator: str, reason: str | None) -> Shipment:
    """Check the manifest lists exactly the ``count`` codes moved, freeze (and seal) it and
    mark the shipment ``step.done``."""
    listed = conn.execute("SELECT count(*) FROM manifest_codes WHERE seq = ?",
                          (seq,)).fetchone()[0]
    if listed != count:
        raise ShipmentError("manifest {seq} of shipment {shipment_id} lists {listed} "
                            "codes, {n_rows} were moved: its list was altered by hand; it "
                            "is not issued", seq=seq, shipment_id=shipment_id,
                            listed=listed, n_rows=count)
    conn.execute("UPDATE outbox SET frozen = 1 WHERE seq = ?", (seq,))
    if sealed is not None:
        conn.execute("UPDATE outbox SET digest = ?, signature = ? WHERE seq = ?",
                     (*sealed, seq))
    at = now_ms()
    if step is CONFIRMING:
        conn.execute("UPDATE shipments SET status = 'confirmed', code_count = ? "
                     "WHERE id = ?", (count, shipment_id))
        business_events.shipped(conn, shipment_id, at, void=False)
        events.append(conn, "ship.confirm", shipment_id=shipment_id, count=count, at=at)
        audit.record(conn, operator, "ship.confirm", f"shipment:{shipment_id}", codes=count)
    else:
        reason = reason or get(conn, shipment_id).cancel_reason
        conn.execute("UPDATE shipments SET status = 'cancelled' WHERE id = ?", (shipment_id,))
        business_events.shipped(conn, shipment_id, at, void=True)
        events.append(conn, "ship.cancel", shipment_id=shipment_id, count=count, at=at,
                      reason=reason)
        audit.record(conn, operator, "ship.cancel", f"shipment:{shipment_id}",
                     reason=reason, deactivated=count)
    return get(conn, shipment_id)


@contextmanager
def _reading(conn: sqlite3.Connection) -> Iterator[None]:
    """One consistent snapshot for several reads; takes no write lock."""
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")


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
