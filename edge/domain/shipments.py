"""Shipments: the only way a code becomes ACTIVE (invariant 4).

Confirming a shipment activates the whole subtree of every pallet and case on it and issues
one activation manifest; cancelling a confirmed shipment returns the subtree to COMMISSIONED
and issues a deactivation manifest. Both run in short steps (a big shipment never holds the
write lock long while a line commits verdicts) and finish when called again after a crash.
"""

from __future__ import annotations

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
"""Codes changed per transaction: a few milliseconds of write lock each."""
PAUSE_S = 0.01
"""Pause after each such transaction: SQLite's waiting writers poll for the lock, so a
running line's commit gets in between two chunks instead of waiting behind all of them."""


def confirm(store: Store, shipment_id: int, *, operator: str, seal: Sealer | None = None
            ) -> Shipment:
    """Activate every code under the shipment and issue its activation manifest, sealed
    when a ``seal`` is given. See :func:`_run_steps` for how it is done without holding the
    write lock for long; an interrupted confirm (``confirming``) is finished by calling it
    again."""
    with store.transaction() as conn:
        shipment = get(conn, shipment_id)
        if shipment.status == "open":
            if shipment.containers == 0:
                raise ShipmentError("shipment {shipment_id} holds nothing; add pallets or cases",
                                    shipment_id=shipment_id)
            conn.execute("UPDATE shipments SET status = 'confirming', confirmed_at = ? "
                         "WHERE id = ?", (now_ms(), shipment_id))
        elif shipment.status != "confirming":
            raise ShipmentError("shipment {shipment_id} is {shipment_status}, not open",
                                shipment_id=shipment_id,
                                shipment_status=shipment.status)
    return _run_steps(store, shipment_id, CONFIRMING, operator, seal, None)


def cancel(store: Store, shipment_id: int, *, operator: str, reason: str | None,
           seal: Sealer | None = None) -> Shipment:
    """Cancel: an open shipment is discarded; a confirmed one is deactivated (in steps, as
    a confirm; an interrupted cancel, ``cancelling``, is finished by calling it again)."""
    if not (reason and reason.strip()):
        raise ReasonRequired("cancelling a shipment needs a reason")
    with store.transaction() as conn:
        shipment = get(conn, shipment_id)
        at = now_ms()
        if shipment.status == "cancelled":
            raise ShipmentError("shipment {shipment_id} is already cancelled",
                                shipment_id=shipment_id)
        if shipment.status == "confirming":
            raise ShipmentError("shipment {shipment_id} is being confirmed (interrupted?): "
                                "finish with `ship confirm`, then cancel",
                                shipment_id=shipment_id)
        if shipment.status == "open":
            conn.execute(
                "UPDATE shipments SET status = 'cancelled', cancelled_at = ?, "
                "cancel_reason = ? WHERE id = ?", (at, reason, shipment_id))
            events.append(conn, "ship.cancel", shipment_id=shipment_id, count=0, at=at,
                          reason=reason)
            audit.record(conn, operator, "ship.cancel", f"shipment:{shipment_id}",
                         reason=reason, deactivated=0)
            return get(conn, shipment_id)
        if shipment.status == "confirmed":
            conn.execute(
                "UPDATE shipments SET status = 'cancelling', cancelled_at = ?, "
                "cancel_reason = ? WHERE id = ?", (at, reason, shipment_id))
    return _run_steps(store, shipment_id, CANCELLING, operator, seal, reason)


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
        _collect_tree(conn, shipment_id)
        rows = conn.execute(
            "SELECT c.id, c.parent_id, c.state FROM ship_tree t JOIN codes c ON c.id = t.id "
            "ORDER BY c.id").fetchall()
    stray = [r[0] for r in rows if r[2] not in (int(step.source), int(step.target))]
    if stray:
        raise refusal(conn, stray[:5], step.source, step.target)
    with store.transaction() as conn:
        row = conn.execute(
            "SELECT seq FROM outbox WHERE shipment_id = ? AND kind = ? AND frozen = 0",
            (shipment_id, step.kind)).fetchone()
        if row is None:
            anchor = audit.head(conn)
            row = conn.execute(
                "INSERT INTO outbox (manifest_id, kind, shipment_id, created_at, code_count, "
                "frozen, audit_seq, audit_hash) VALUES (?, ?, ?, ?, ?, 0, ?, ?) RETURNING seq",
                (str(uuid.uuid4()), step.kind, shipment_id, now_ms(), len(rows), anchor.seq,
                 anchor.hash)).fetchone()
        seq = int(row[0])
    for first in range(0, len(rows), CHUNK):
        chunk = rows[first:first + CHUNK]
        with store.transaction() as conn:
            ids = [r[0] for r in chunk]
            marks = ",".join("?" * len(ids))
            conn.execute(f"UPDATE codes SET state = ? WHERE id IN ({marks}) AND state = ?",
                         (int(step.target), *ids, int(step.source)))
            wrong = [r[0] for r in conn.execute(
                f"SELECT id FROM codes WHERE id IN ({marks}) AND state != ? LIMIT 5",
                (*ids, int(step.target)))]
            if wrong:  # changed by hand since step 2
                raise refusal(conn, wrong, step.source, step.target)
            history.record(conn, ids, int(step.target))
            conn.executemany(
                "INSERT OR IGNORE INTO manifest_codes (seq, code_id, parent_id) VALUES (?, ?, ?)",
                [(seq, r[0], r[1]) for r in chunk])
        time.sleep(PAUSE_S)
    sealed = seal(store.read(), seq) if seal is not None else None
    with store.transaction() as conn:
        listed = conn.execute("SELECT count(*) FROM manifest_codes WHERE seq = ?",
                              (seq,)).fetchone()[0]
        if listed != len(rows):
            raise ShipmentError("manifest {seq} of shipment {shipment_id} lists {listed} "
                                "codes, {n_rows} were moved: its list was altered by hand; it "
                                "is not issued", seq=seq, shipment_id=shipment_id,
                                listed=listed, n_rows=len(rows))
        conn.execute("UPDATE outbox SET frozen = 1 WHERE seq = ?", (seq,))
        if sealed is not None:
            conn.execute("UPDATE outbox SET digest = ?, signature = ? WHERE seq = ?",
                         (*sealed, seq))
        at = now_ms()
        count = len(rows)
        if step is CONFIRMING:
            conn.execute("UPDATE shipments SET status = 'confirmed', code_count = ? "
                         "WHERE id = ?", (count, shipment_id))
            business_events.shipped(conn, shipment_id, at, void=False)
            events.append(conn, "ship.confirm", shipment_id=shipment_id, count=count, at=at)
            audit.record(conn, operator, "ship.confirm", f"shipment:{shipment_id}",
                         codes=count)
        else:
            reason = reason or get(conn, shipment_id).cancel_reason
            conn.execute("UPDATE shipments SET status = 'cancelled' WHERE id = ?",
                         (shipment_id,))
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
