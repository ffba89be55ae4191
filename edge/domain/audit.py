"""The audit log: who did what, to what, why and when, each entry chained by SHA-256.

Each entry's hash covers its content and the previous entry's hash, so altering, removing or
reordering any entry breaks every hash after it; :func:`verify` finds the first break.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from edge.domain.errors import AuditChainBroken
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
                f"audit entry {entry_id} does not follow the entry before it "
                "(an entry was removed or reordered)"
            )
        if _digest(prev_hash, at, operator, action, target, reason, detail) != digest:
            raise AuditChainBroken(f"audit entry {entry_id} was altered after it was written")
        prev = digest
        count += 1
    return AuditReport(entries=count, last_hash=prev)
