"""Looking codes up: by serial or row id, and whether a container waits on a dock."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from edge.domain.errors import UnknownCode
from edge.domain.lifecycle import LEVEL_NAME, State


@dataclass(frozen=True)
class CodeRow:
    """The fields of a code the rules look at."""

    id: int
    serial: str
    level: int
    state: State
    batch_id: int | None
    parent_id: int | None

    @property
    def level_name(self) -> str:
        return LEVEL_NAME[self.level]


_SELECT = "SELECT id, serial, level, state, batch_id, parent_id FROM codes WHERE "


def code(conn: sqlite3.Connection, serial: str) -> CodeRow:
    """The code with ``serial``, or :class:`UnknownCode`."""
    row = conn.execute(_SELECT + "serial = ?", (serial,)).fetchone()
    if row is None:
        raise UnknownCode("{serial!r} is not a code of this site", serial=serial[:60])
    return CodeRow(row[0], row[1], row[2], State(row[3]), row[4], row[5])


def code_by_id(conn: sqlite3.Connection, code_id: int) -> CodeRow:
    """The code with row id ``code_id``, or :class:`UnknownCode`."""
    row = conn.execute(_SELECT + "id = ?", (code_id,)).fetchone()
    if row is None:
        raise UnknownCode("no code #{code_id}", code_id=code_id)
    return CodeRow(row[0], row[1], row[2], State(row[3]), row[4], row[5])


def open_shipment_holding(conn: sqlite3.Connection, code_id: int) -> int | None:
    """The open (or being confirmed) shipment this container was added to, if any."""
    row = conn.execute(
        "SELECT s.id FROM shipment_containers sc JOIN shipments s ON s.id = sc.shipment_id "
        "WHERE sc.code_id = ? AND s.status IN ('open', 'confirming')",
        (code_id,),
    ).fetchone()
    return int(row[0]) if row else None
