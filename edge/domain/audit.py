"""The audit log: who did what, to what, why and when, each entry chained by SHA-256.

Each entry's hash covers its content and the previous entry's hash, so altering, removing or
reordering any entry breaks every hash after it; :func:`verify` finds the first break. A
chain rewritten whole, or cut short, verifies by itself: so every manifest carries the head
of the chain when it was issued (:func:`head`), signed with it, and the cloud keeps it;
:func:`check_anchor` holds the chain against such a checkpoint. :func:`code_problems` finds
code rows whose state no operation of the domain could have left (a state set by hand).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from edge.domain import history
from edge.domain.errors import AuditChainBroken
from edge.domain.lifecycle import State
from edge.store.database import now_ms

GENESIS = "0" * 64


def _digest(prev_hash: str, at: int, operator: str, action: str, target: str,
            reason: str | None, detail: str | None) -> str:
    body = json.dumps(
        [prev_hash, at, operator, action, target, reason, detail],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def record(
    conn: sqlite3.Connection,
    operator: str,
    action: str,
    target: str,
    *,
    reason: str | None = None,
    **detail: Any,
) -> None:
    """Append one entry; call inside the transaction that makes the change it describes."""
    row = conn.execute("SELECT hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    prev = row[0] if row else GENESIS
    at = now_ms()
    detail_text = json.dumps(detail, sort_keys=True, default=str) if detail else None
    digest = _digest(prev, at, operator, action, target, reason, detail_text)
    conn.execute(
        "INSERT INTO audit (at, operator, action, target, reason, detail, prev_hash, hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (at, operator, action, target, reason, detail_text, prev, digest),
    )


@dataclass(frozen=True)
class AuditReport:
    """The outcome of a verification walk."""

    entries: int
    last_hash: str


def verify(conn: sqlite3.Connection) -> AuditReport:
    """Walk the chain from the first entry; raise :class:`AuditChainBroken` at the first break."""
    prev = GENESIS
    count = 0
    cursor = conn.execute(
        "SELECT id, at, operator, action, target, reason, detail, prev_hash, hash "
        "FROM audit ORDER BY id"
    )
    for entry_id, at, operator, action, target, reason, detail, prev_hash, digest in cursor:
        if prev_hash != prev:
            raise AuditChainBroken(
                "audit entry {entry_id} does not follow the entry before it (an entry was "
                "removed or reordered)", entry_id=entry_id
            )
        if _digest(prev_hash, at, operator, action, target, reason, detail) != digest:
            raise AuditChainBroken("audit entry {entry_id} was altered after it was written",
                                   entry_id=entry_id)
        prev = digest
        count += 1
    return AuditReport(entries=count, last_hash=prev)


@dataclass(frozen=True)
class Anchor:
    """A checkpoint of the chain: the id and hash of its last entry at some moment."""

    seq: int
    hash: str


def head(conn: sqlite3.Connection) -> Anchor:
    """The chain's last entry now (id 0 and the genesis hash when it is empty)."""
    row = conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    return Anchor(int(row[0]), str(row[1])) if row else Anchor(0, GENESIS)


def check_anchor(conn: sqlite3.Connection, anchor: Anchor) -> None:
    """The chain still holds the checkpointed entry with the same hash: raise
    :class:`AuditChainBroken` if it was cut short before it or rewritten."""
    if anchor.seq == 0:
        return
    row = conn.execute("SELECT hash FROM audit WHERE id = ?", (anchor.seq,)).fetchone()
    if row is None:
        raise AuditChainBroken(
            "audit entry {anchor_seq}, checkpointed in a manifest, is gone: the log was cut "
            "short", anchor_seq=anchor.seq)
    if row[0] != anchor.hash:
        raise AuditChainBroken(
            "audit entry {anchor_seq} has hash {found}…, the manifest checkpointed "
            "{anchor_hash}…: the log was rewritten", anchor_seq=anchor.seq,
            found=str(row[0])[:16], anchor_hash=anchor.hash[:16])


def code_problems(conn: sqlite3.Connection, limit: int = 100) -> list[str]:
    """Code rows that disagree with their history (replayed from the append-only log), or
    in a state no operation leaves them in, each named: a code back in the pool although it
    was reserved or printed, ACTIVE outside every shipment being shipped, commissioned or
    shipped without being printed and verified, packed in a parent of another state."""
    checks = (
        ("back in the pool although it was reserved or printed (never to be reused)",
         "SELECT serial FROM codes WHERE state IN (0, 8) AND (reservation_id IS NOT NULL "
         "OR printed_at IS NOT NULL)"),
        ("ACTIVE but on no confirmed shipment",
         "WITH RECURSIVE tree(id) AS (SELECT sc.code_id FROM shipment_containers sc "
         "JOIN shipments s ON s.id = sc.shipment_id WHERE s.status IN ('confirmed', "
         "'confirming', 'cancelling') UNION ALL SELECT c.id FROM codes c JOIN tree t "
         "ON c.parent_id = t.id) "
         "SELECT serial FROM codes WHERE state = 4 AND id NOT IN (SELECT id FROM tree)"),
        ("commissioned or shipped but never printed and verified",
         "SELECT serial FROM codes WHERE state IN (3, 4) AND (printed_at IS NULL "
         "OR verified_at IS NULL)"),
        ("packed in a container of another state",
         "SELECT c.serial FROM codes c JOIN codes p ON p.id = c.parent_id "
         "WHERE c.state != p.state"),
    )
    problems = [f"{serial}: {State(row).name} in its row, its history says "
                f"{State(replayed).name}"
                for serial, row, replayed in history.disagreements(conn, limit)]
    for why, query in checks:
        for (serial,) in conn.execute(query + f" LIMIT {int(limit)}"):
            problems.append(f"{serial}: {why}")
    return problems[:limit]
