"""The append-only event log: one row per operation (a block, a case, a shipment)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from edge.store.database import now_ms


def append(
    conn: sqlite3.Connection,
    kind: str,
    *,
    line_id: str | None = None,
    batch_id: int | None = None,
    code_id: int | None = None,
    shipment_id: int | None = None,
    count: int | None = None,
    at: int | None = None,
    **detail: Any,
) -> None:
    """Record that ``kind`` happened; ``detail`` is kept as JSON."""
    conn.execute(
        "INSERT INTO events (at, kind, line_id, batch_id, code_id, shipment_id, count, detail) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            at or now_ms(),
            kind,
            line_id,
            batch_id,
            code_id,
            shipment_id,
            count,
            json.dumps(detail, sort_keys=True, default=str) if detail else None,
        ),
    )
