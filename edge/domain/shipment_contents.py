"""What is on a shipment, as the dock sees it: each pallet and case, and the codes under it
counted per level."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from edge.domain.codes import CodeRow, code_by_id
from edge.domain.shipments import Shipment, get
from line_config.levels import LEVELS, Level


@dataclass(frozen=True)
class Loaded:
    """One pallet or case put on the shipment, with the codes under it (itself included)."""

    serial: str
    level: Level
    batch_id: int | None
    lot: str | None
    codes: dict[Level, int]

    @property
    def total(self) -> int:
        return sum(self.codes.values())


@dataclass(frozen=True)
class Contents:
    """A shipment and what it holds."""

    shipment: Shipment
    loaded: list[Loaded] = field(default_factory=list)

    @property
    def per_level(self) -> dict[Level, int]:
        totals: dict[Level, int] = dict.fromkeys(LEVELS, 0)
        for row in self.loaded:
            for level, n in row.codes.items():
                totals[level] += n
        return totals


def subtree_counts(conn: sqlite3.Connection, code_id: int) -> dict[Level, int]:
    """The codes under a container, itself included, per level."""
    counts: dict[Level, int] = dict.fromkeys(LEVELS, 0)
    for level, n in conn.execute(
            "WITH RECURSIVE tree(id, level) AS (SELECT id, level FROM codes WHERE id = ? "
            "UNION ALL SELECT c.id, c.level FROM codes c JOIN tree t ON c.parent_id = t.id) "
            "SELECT level, count(*) FROM tree GROUP BY level", (code_id,)):
        counts[LEVELS[level]] = int(n)
    return counts


def loaded(conn: sqlite3.Connection, row: CodeRow) -> Loaded:
    """A container on a shipment, with its lot and the codes under it."""
    lot = conn.execute("SELECT lot FROM batches WHERE id = ?", (row.batch_id,)).fetchone()
    return Loaded(row.serial, LEVELS[row.level], row.batch_id, lot[0] if lot else None,
                  subtree_counts(conn, row.id))


def contents(conn: sqlite3.Connection, shipment_id: int) -> Contents:
    """The shipment and every container on it: pallets first, then cases, by serial."""
    shipment = get(conn, shipment_id)
    ids = [r[0] for r in conn.execute(
        "SELECT c.id FROM shipment_containers sc JOIN codes c ON c.id = sc.code_id "
        "WHERE sc.shipment_id = ? ORDER BY c.level DESC, c.serial", (shipment_id,))]
    return Contents(shipment, [loaded(conn, code_by_id(conn, i)) for i in ids])
