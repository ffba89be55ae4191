"""How a shipment's codes change state: the whole subtree of every pallet and case on it
moves (COMMISSIONED → ACTIVE when it is confirmed, back when a confirmed one is cancelled)
and one manifest lists them. A small shipment (up to ``AT_ONCE`` codes: a pallet or two) is
done in the caller's transaction; a big one in short steps that never hold the write lock
long while a line commits verdicts, and that finish when run again after a crash.
:mod:`edge.domain.shipments` decides when; this module does it.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from edge.domain import audit, business_events, events, history
from edge.domain.errors import ShipmentError
from edge.domain.lifecycle import State, refusal
from edge.store.database import Store, now_ms

Sealer = Callable[[sqlite3.Connection, int], tuple[str, str]]
"""The digest and signature of the manifest with this sequence number, computed while it is
issued (``sync.manifest.sealer`` makes one from the site's signing key); the confirm or
cancel stores them in the transaction that freezes the manifest."""


@dataclass(frozen=True)
class Step:
    """A confirm, or a cancel of a confirmed shipment."""

    doing: str  # the shipment's status while its codes move
    done: str
    kind: str  # of the manifest issued
    source: State
    target: State


CONFIRMING = Step("confirming", "confirmed", "activation", State.COMMISSIONED, State.ACTIVE)
CANCELLING = Step("cancelling", "cancelled", "deactivation", State.ACTIVE, State.COMMISSIONED)
CHUNK = 1_000
"""Codes changed per transaction of a big shipment: a few milliseconds of write lock each."""
AT_ONCE = 3_200
"""Up to this many codes (two pallets of 1,500), a shipment is done in one transaction: it
holds the write lock ~10 ms, less than the steps' pauses would cost."""
PAUSE_S = 0.01
"""Pause after each such transaction: SQLite's waiting writers poll for the lock, so a
running line's commit gets in between two chunks instead of waiting behind all of them."""

_TREE = ("WITH RECURSIVE tree(id, parent) AS (SELECT sc.code_id, c.parent_id FROM "
         "shipment_containers sc JOIN codes c ON c.id = sc.code_id WHERE sc.shipment_id = ? "
         "UNION ALL SELECT c.id, c.parent_id FROM tree t "
         "JOIN codes c INDEXED BY codes_parent ON c.parent_id = t.id{limit}) ")
"""Every code under a shipment (id, parent id): each step of the walk looks a container's
children up in ``codes_parent``, which holds both."""


class TooBig(Exception):
    """The tree outgrew ``AT_ONCE`` between its measure and the transaction: go in steps."""


def fits_at_once(store: Store, shipment_id: int) -> bool:
    """Whether the shipment's tree is small enough for one transaction. Reading it takes no
    lock and brings its rows into the cache, so that transaction does not wait on the disk
    with the write lock held; the walk stops after ``AT_ONCE + 1`` codes."""
    conn = store.read()
    with _reading(conn):
        touched = conn.execute(
            _TREE.format(limit=" LIMIT ?") + "SELECT count(c.state) FROM tree "
            "JOIN codes c ON c.id = tree.id", (shipment_id, AT_ONCE + 1)).fetchone()[0]
    return int(touched) <= AT_ONCE


def at_once(conn: sqlite3.Connection, shipment_id: int, step: Step, operator: str,
            seal: Sealer | None, reason: str | None) -> None:
    """The whole step in the caller's transaction: the manifest lists the tree, the codes it
    lists move, and it is issued. Raises TooBig (for the caller to roll back) when the tree
    has grown beyond ``AT_ONCE`` codes; refused when a code is not in the source state."""
    seq = _queue_manifest(conn, shipment_id, step, 0)
    listed = conn.execute(
        "INSERT INTO manifest_codes (seq, code_id, parent_id) " + _TREE.format(limit="")
        + "SELECT ?, id, parent FROM tree", (shipment_id, seq)).rowcount
    if listed > AT_ONCE:
        raise TooBig
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
    _issue(conn, shipment_id, step, seq, listed, sealed, operator, reason)


def run_steps(store: Store, shipment_id: int, step: Step, operator: str,
              seal: Sealer | None, reason: str | None) -> None:
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
        rows = conn.execute(
            _TREE.format(limit="") + "SELECT c.id, c.state FROM tree "
            "JOIN codes c ON c.id = tree.id ORDER BY c.id", (shipment_id,)).fetchall()
    stray = [r[0] for r in rows if r[1] not in (int(step.source), int(step.target))]
    if stray:
        raise refusal(conn, stray[:5], step.source, step.target)
    with store.transaction() as conn:
        seq = _queue_manifest(conn, shipment_id, step, len(rows))
    for first in range(0, len(rows), CHUNK):
        with store.transaction() as conn:
            _move(conn, [r[0] for r in rows[first:first + CHUNK]], step, seq)
        time.sleep(PAUSE_S)
    sealed = seal(store.read(), seq) if seal is not None else None
    with store.transaction() as conn:
        _issue(conn, shipment_id, step, seq, len(rows), sealed, operator, reason)


def _queue_manifest(conn: sqlite3.Connection, shipment_id: int, step: Step, count: int) -> int:
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


def _move(conn: sqlite3.Connection, ids: list[int], step: Step, seq: int) -> None:
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


def _issue(conn: sqlite3.Connection, shipment_id: int, step: Step, seq: int, count: int,
           sealed: tuple[str, str] | None, operator: str, reason: str | None) -> None:
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
        reason = reason or conn.execute("SELECT cancel_reason FROM shipments WHERE id = ?",
                                        (shipment_id,)).fetchone()[0]
        conn.execute("UPDATE shipments SET status = 'cancelled' WHERE id = ?", (shipment_id,))
        business_events.shipped(conn, shipment_id, at, void=True)
        events.append(conn, "ship.cancel", shipment_id=shipment_id, count=count, at=at,
                      reason=reason)
        audit.record(conn, operator, "ship.cancel", f"shipment:{shipment_id}",
                     reason=reason, deactivated=count)


@contextmanager
def _reading(conn: sqlite3.Connection) -> Iterator[None]:
    """One consistent snapshot for several reads; takes no write lock."""
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
