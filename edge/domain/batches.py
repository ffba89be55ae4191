"""Batches: a production lot on a line, from creation to a reconciled close.

Reconciliation compares two independent records of the same facts: the codes' states now,
and the event log's running totals of what was reserved, printed, commissioned, rejected and
voided. A batch closes only when both agree and nothing is left in a printer buffer or in
transit, unless an operator forces it with a reason.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edge.domain import audit, events
from edge.domain.business_events import Identity
from edge.domain.errors import (
    BatchStateError,
    DomainError,
    NotReconciled,
    ReasonRequired,
    UnknownBatch,
)
from edge.domain.lifecycle import LEVEL_NAME, Reason, State, transition
from edge.store.database import Store, now_ms
from line_config.levels import Level

if TYPE_CHECKING:
    from line_config.models import SiteConfig

LOT_PATTERN = re.compile(r"^[A-Za-z0-9./-]{1,20}$")


@dataclass(frozen=True)
class Batch:
    """One row of ``batches``."""

    id: int
    line_id: str
    product_id: str
    lot: str
    expiry: dt.date | None
    planned_qty: int | None
    items_per_case: int
    cases_per_pallet: int
    state: str
    created_at: int
    closed_at: int | None
    close_reason: str | None
    forced: bool
    started_at: int | None = None
    """When it last started (or resumed)."""
    stopped_at: int | None = None

    def capacity(self, level: Level) -> int:
        """Children a full container at ``level`` holds."""
        if level == "case":
            return self.items_per_case
        if level == "pallet":
            return self.cases_per_pallet
        raise DomainError("items are not containers")


_COLUMNS = (
    "id, line_id, product_id, lot, expiry, planned_qty, items_per_case, cases_per_pallet, "
    "state, created_at, closed_at, close_reason, forced, started_at, stopped_at"
)


def _from_row(row: tuple[Any, ...]) -> Batch:
    expiry = dt.date.fromisoformat(row[4]) if row[4] else None
    return Batch(row[0], row[1], row[2], row[3], expiry, row[5], row[6], row[7], row[8],
                 row[9], row[10], row[11], bool(row[12]), row[13], row[14])


def get(conn: sqlite3.Connection, batch_id: int) -> Batch:
    row = conn.execute(f"SELECT {_COLUMNS} FROM batches WHERE id = ?", (batch_id,)).fetchone()
    if row is None:
        raise UnknownBatch("no batch {batch_id}: `codeline batch list` shows the batches",
                           batch_id=batch_id)
    return _from_row(row)


def list_batches(conn: sqlite3.Connection, line_id: str | None = None) -> list[Batch]:
    if line_id is None:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM batches ORDER BY id").fetchall()
    else:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM batches WHERE line_id = ? ORDER BY id", (line_id,)
        ).fetchall()
    return [_from_row(r) for r in rows]


def running(conn: sqlite3.Connection, line_id: str) -> Batch | None:
    """The batch now running on ``line_id``, if any."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM batches WHERE line_id = ? AND state = 'running'", (line_id,)
    ).fetchone()
    return _from_row(row) if row else None


def create(
    store: Store,
    config: SiteConfig,
    line_id: str,
    product_id: str,
    lot: str,
    *,
    operator: str,
    expiry: dt.date | None = None,
    planned_qty: int | None = None,
) -> Batch:
    """Create a batch of ``product_id`` on ``line_id`` with the line's packaging counts."""
    try:
        line = config.line(line_id)
    except KeyError:
        known = ", ".join(x.id for x in config.lines)
        raise DomainError("no line {line_id!r} in the config (lines: {known})",
                          line_id=line_id, known=known) from None
    try:
        product = config.product(product_id)
    except KeyError:
        known = ", ".join(p.id for p in config.products) or "none"
        raise DomainError("no product {product_id!r} in the config (products: {known})",
                          product_id=product_id, known=known) from None
    if not LOT_PATTERN.match(lot):
        raise DomainError(
            "lot {lot!r} is not usable in a GS1 code: 1-20 letters, digits, '-', '.', '/'",
            lot=lot[:40]
        )
    if planned_qty is not None and not 1 <= planned_qty <= 100_000_000:
        raise DomainError("planned quantity must be between 1 and 100,000,000")
    if expiry is None and product.shelf_life_days:
        expiry = dt.date.today() + dt.timedelta(days=product.shelf_life_days)
    expiry_text = expiry.isoformat() if expiry else None
    identity = Identity.from_config(config, line_id, product_id, lot, expiry_text)
    with store.transaction() as conn:
        cursor = conn.execute(
            "INSERT INTO batches (line_id, product_id, lot, expiry, planned_qty, items_per_case, "
            "cases_per_pallet, state, created_at, forced, identity) VALUES (?, ?, ?, ?, ?, ?, "
            "?, 'created', ?, 0, ?)",
            (line_id, product_id, lot, expiry_text, planned_qty, line.packaging.items_per_case,
             line.packaging.cases_per_pallet, now_ms(), identity.to_json()),
        )
        batch_id = int(cursor.lastrowid or 0)
        events.append(conn, "batch.create", line_id=line_id, batch_id=batch_id, lot=lot)
        audit.record(conn, operator, "batch.create", f"batch:{batch_id}", line=line_id,
                     product=product_id, lot=lot)
        return get(conn, batch_id)


def start_by_reference(store: Store, line_id: str, ref: str, *, operator: str) -> Batch:
    """Start the batch of ``line_id`` named by id or lot (the latest of that lot); one
    already running is returned as it is."""
    found = [b for b in list_batches(store.read(), line_id) if str(b.id) == ref or b.lot == ref]
    if not found:
        raise DomainError("no batch {ref!r} on line {line}", ref=ref, line=line_id)
    batch = found[-1]
    if batch.state == "running":
        return batch
    return start(store, batch.id, operator=operator)


def start(store: Store, batch_id: int, *, operator: str) -> Batch:
    """Run the batch; a line runs one batch at a time."""
    with store.transaction() as conn:
        batch = get(conn, batch_id)
        if batch.state not in ("created", "stopped"):
            raise BatchStateError("batch {batch_id} is {batch_state}; only a created or "
                                  "stopped batch can start", batch_id=batch_id,
                                  batch_state=batch.state)
        other = running(conn, batch.line_id)
        if other is not None:
            raise BatchStateError(
                "batch {other_id} is running on line {batch_line_id}: stop it first",
                other_id=other.id, batch_line_id=batch.line_id
            )
        conn.execute("UPDATE batches SET state = 'running', started_at = ? WHERE id = ?",
                     (now_ms(), batch_id))
        events.append(conn, "batch.start", line_id=batch.line_id, batch_id=batch_id)
        audit.record(conn, operator, "batch.start", f"batch:{batch_id}")
        return get(conn, batch_id)


def stop(store: Store, batch_id: int, *, operator: str) -> Batch:
    """Stop the batch; it can start again or close."""
    with store.transaction() as conn:
        batch = get(conn, batch_id)
        if batch.state != "running":
            raise BatchStateError("batch {batch_id} is {batch_state}, not running",
                                  batch_id=batch_id, batch_state=batch.state)
        conn.execute("UPDATE batches SET state = 'stopped', stopped_at = ? WHERE id = ?",
                     (now_ms(), batch_id))
        events.append(conn, "batch.stop", line_id=batch.line_id, batch_id=batch_id)
        audit.record(conn, operator, "batch.stop", f"batch:{batch_id}")
        return get(conn, batch_id)


@dataclass
class LevelCounts:
    """One level's figures of a batch."""

    reserved: int = 0
    in_buffer: int = 0
    void: int = 0
    printed: int = 0
    in_transit: int = 0
    commissioned: int = 0
    rejected: int = 0
    packed: int = 0
    active: int = 0
    decommissioned: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)


@dataclass
class BatchReport:
    """Reconciliation of a batch: figures per level and what does not balance."""

    batch: Batch
    levels: dict[str, LevelCounts]
    problems: list[str]
    containment: list[str] = field(default_factory=list)

    @property
    def reconciled(self) -> bool:
        """The counts balance (what the batch close requires)."""
        return not self.problems

    @property
    def contained(self) -> bool:
        """Every commissioned code below the top level sits in a closed container."""
        return not self.containment


_LOGGED = {
    "flow.reserve": "reserved",
    "flow.print": "printed",
    "flow.commission": "commissioned",
    "flow.reject": "rejected",
    "flow.void": "void",
}


def report(conn: sqlite3.Connection, batch_id: int) -> BatchReport:
    """Figures and reconciliation of ``batch_id`` as of now."""
    batch = get(conn, batch_id)
    levels: dict[str, LevelCounts] = {}
    for level_no, state, reason, n in conn.execute(
        "SELECT level, state, reason, count(*) FROM codes WHERE batch_id = ? "
        "GROUP BY level, state, reason",
        (batch_id,),
    ):
        c = levels.setdefault(LEVEL_NAME[level_no], LevelCounts())
        c.reserved += n
        st = State(state)
        if st is State.RESERVED:
            c.in_buffer += n
        elif st is State.VOID:
            c.void += n
        else:
            c.printed += n
            if st is State.PRINTED:
                c.in_transit += n
            elif st is State.REJECTED:
                c.rejected += n
                label = Reason(reason).label if reason else "unspecified"
                c.rejected_by_reason[label] = c.rejected_by_reason.get(label, 0) + n
            else:
                c.commissioned += n
                c.active += n if st is State.ACTIVE else 0
                c.decommissioned += n if st is State.DECOMMISSIONED else 0
    for level_no, n in conn.execute(
        "SELECT level, count(*) FROM codes WHERE batch_id = ? AND parent_id IS NOT NULL "
        "GROUP BY level",
        (batch_id,),
    ):
        levels.setdefault(LEVEL_NAME[level_no], LevelCounts()).packed = n
    logged: dict[tuple[str, str], int] = {}
    for kind, detail_level, total in conn.execute(
        "SELECT kind, json_extract(detail, '$.level'), sum(count) FROM events "
        "WHERE batch_id = ? AND kind LIKE 'flow.%' GROUP BY kind, json_extract(detail, '$.level')",
        (batch_id,),
    ):
        if kind in _LOGGED:
            logged[(detail_level, _LOGGED[kind])] = int(total or 0)
    problems: list[str] = []
    for level, c in levels.items():
        for figure in _LOGGED.values():
            have = getattr(c, figure)
            said = logged.get((level, figure), 0)
            if have != said:
                problems.append(
                    f"{level}: {figure} is {have} by code state but {said} by the event log"
                )
        if c.reserved != c.printed + c.void + c.in_buffer:
            problems.append(f"{level}: reserved {c.reserved} != printed + void + in buffer")
        if c.printed != c.commissioned + c.rejected + c.in_transit:
            problems.append(f"{level}: printed {c.printed} != commissioned + rejected + in transit")
    return BatchReport(batch, levels, problems, _containment(conn, batch_id))


def _containment(conn: sqlite3.Connection, batch_id: int) -> list[str]:
    """What the counts do not show: commissioned codes outside any container, and
    containers left open (the line's packing did not finish)."""
    top = max(LEVEL_NAME)
    found: list[str] = []
    for level_no, n in conn.execute(
        "SELECT level, count(*) FROM codes WHERE batch_id = ? AND state = ? AND level < ? "
        "AND parent_id IS NULL GROUP BY level ORDER BY level",
        (batch_id, int(State.COMMISSIONED), top),
    ):
        found.append(f"{LEVEL_NAME[level_no]}: {n:,} commissioned outside any "
                     f"{LEVEL_NAME[level_no + 1]}")
    for level_no, n in conn.execute(
        "SELECT c.level, count(*) FROM containers k JOIN codes c ON c.id = k.code_id "
        "WHERE c.batch_id = ? AND k.status = 'open' GROUP BY c.level ORDER BY c.level",
        (batch_id,),
    ):
        found.append(f"{LEVEL_NAME[level_no]}: {n:,} open")
    return found


def close(
    store: Store, batch_id: int, *, operator: str, force: bool = False, reason: str | None = None
) -> BatchReport:
    """Close a stopped batch whose counts reconcile with nothing in buffers or in transit.

    ``force`` (with a reason) closes anyway: codes still RESERVED are voided (they may have
    reached a printer) and codes still PRINTED are rejected (no verdict will come).
    """
    if force and not (reason and reason.strip()):
        raise ReasonRequired("closing a batch with --force needs --reason")
    with store.transaction() as conn:
        batch = get(conn, batch_id)
        if batch.state != "stopped":
            raise BatchStateError("batch {batch_id} is {batch_state}; stop it before closing",
                                  batch_id=batch_id, batch_state=batch.state)
        rep = report(conn, batch_id)
        pending = [
            f"{level}: {c.in_buffer} in printer buffers, {c.in_transit} in transit"
            for level, c in rep.levels.items()
            if c.in_buffer or c.in_transit
        ]
        if (rep.problems or pending) and not force:
            raise NotReconciled("batch {batch_id} does not reconcile: {problems}. Finish or "
                                "void the open codes, or close with --force --reason",
                                batch_id=batch_id, problems="; ".join(rep.problems + pending))
        if force:
            _settle(conn, batch)
        conn.execute(
            "UPDATE batches SET state = 'closed', closed_at = ?, close_reason = ?, forced = ? "
            "WHERE id = ?",
            (now_ms(), reason, int(force), batch_id),
        )
        events.append(conn, "batch.close", line_id=batch.line_id, batch_id=batch_id,
                      forced=force, reason=reason)
        audit.record(conn, operator, "batch.close", f"batch:{batch_id}", reason=reason,
                     forced=force, problems=rep.problems + pending)
        return report(conn, batch_id)


def _settle(conn: sqlite3.Connection, batch: Batch) -> None:
    """Void what is still reserved and reject what is still in transit (forced close)."""
    for state, target, kind in (
        (State.RESERVED, State.VOID, "flow.void"),
        (State.PRINTED, State.REJECTED, "flow.reject"),
    ):
        for level_no, in conn.execute(
            "SELECT DISTINCT level FROM codes WHERE batch_id = ? AND state = ?",
            (batch.id, int(state)),
        ).fetchall():
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM codes WHERE batch_id = ? AND level = ? AND state = ?",
                    (batch.id, level_no, int(state)),
                )
            ]
            transition(conn, ids, state, target, reason=Reason.BATCH_FORCE_CLOSED,
                       stamp="verified_at" if target is State.REJECTED else None,
                       at=now_ms())
            events.append(conn, kind, line_id=batch.line_id, batch_id=batch.id,
                          count=len(ids), level=LEVEL_NAME[level_no],
                          reason=Reason.BATCH_FORCE_CLOSED.label)
