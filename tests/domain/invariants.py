"""Invariants of DESIGN.md section 3, checked against a database as it is now."""

from __future__ import annotations

from edge.domain import audit, batches
from edge.domain.lifecycle import State
from edge.store.database import Store


def check_invariants(store: Store) -> None:
    """Raise AssertionError naming the first invariant that does not hold."""
    conn = store.read()
    assert conn.execute("SELECT count(*) - count(DISTINCT serial) FROM codes").fetchone()[0] == 0
    # 1: whatever was ever reserved never returns to the pool
    assert conn.execute("SELECT count(*) FROM codes WHERE reservation_id IS NOT NULL "
                        "AND state IN (?, ?)", (int(State.AVAILABLE), int(State.REVOKED))
                        ).fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM codes WHERE printed_at IS NOT NULL AND state IN "
                        "(?, ?, ?)", (int(State.AVAILABLE), int(State.RESERVED), int(State.VOID))
                        ).fetchone()[0] == 0
    # 3: one level above, packed children commissioned or active like their parent
    bad_links = conn.execute(
        "SELECT count(*) FROM codes c JOIN codes p ON p.id = c.parent_id "
        "WHERE p.level != c.level + 1 OR c.state NOT IN (?, ?) OR c.state != p.state "
        "OR c.batch_id != p.batch_id",
        (int(State.COMMISSIONED), int(State.ACTIVE)),
    ).fetchone()[0]
    assert bad_links == 0, "a packed code breaks the parent rules"
    mismatched = conn.execute(
        "SELECT count(*) FROM containers k WHERE k.child_count != "
        "(SELECT count(*) FROM codes c WHERE c.parent_id = k.code_id) "
        "OR k.child_count > k.capacity"
    ).fetchone()[0]
    assert mismatched == 0, "a container's count differs from its children"
    # 4: ACTIVE is exactly the subtrees of confirmed shipments; while a confirm or a cancel
    # runs (or was interrupted), its shipment's subtree is part ACTIVE
    def subtrees(statuses: str) -> set[int]:
        return {r[0] for r in conn.execute(
            "WITH RECURSIVE tree(id) AS (SELECT sc.code_id FROM shipment_containers sc "
            f"JOIN shipments s ON s.id = sc.shipment_id WHERE s.status IN ({statuses}) "
            "UNION ALL SELECT c.id FROM codes c JOIN tree t ON c.parent_id = t.id) "
            "SELECT id FROM tree")}

    active = {r[0] for r in conn.execute("SELECT id FROM codes WHERE state = ?",
                                         (int(State.ACTIVE),))}
    shipped = subtrees("'confirmed'")
    assert shipped <= active, "a confirmed shipment holds a code that is not ACTIVE"
    assert active <= shipped | subtrees("'confirming', 'cancelling'"), \
        "a code is ACTIVE outside every shipment"
    if not conn.execute("SELECT count(*) FROM shipments WHERE status IN ('confirming', "
                        "'cancelling')").fetchone()[0]:
        assert active == shipped, "ACTIVE codes differ from the confirmed shipments' subtrees"
    # 6: an issued (frozen) manifest per confirmation, and per cancellation of a confirmed
    # shipment; only a confirm or cancel under way has one not yet frozen
    confirmed = conn.execute(
        "SELECT count(*) FROM shipments WHERE status IN ('confirmed', 'cancelling') OR "
        "(status = 'cancelled' AND confirmed_at IS NOT NULL)").fetchone()[0]
    undone = conn.execute("SELECT count(*) FROM shipments WHERE confirmed_at IS NOT NULL AND "
                          "status = 'cancelled'").fetchone()[0]
    kinds = dict(conn.execute("SELECT kind, count(*) FROM outbox WHERE frozen = 1 "
                              "GROUP BY kind").fetchall())
    assert kinds.get("activation", 0) == confirmed
    assert kinds.get("deactivation", 0) == undone
    assert conn.execute(
        "SELECT count(*) FROM outbox o JOIN shipments s ON s.id = o.shipment_id "
        "WHERE o.frozen = 0 AND s.status NOT IN ('confirming', 'cancelling')").fetchone()[0] == 0
    frozen = conn.execute(
        "SELECT count(*) FROM outbox o WHERE o.frozen = 1 AND o.code_count != "
        "(SELECT count(*) FROM manifest_codes m WHERE m.seq = o.seq)").fetchone()[0]
    assert frozen == 0, "a manifest's frozen code list differs from its count"
    for batch in batches.list_batches(conn):
        report = batches.report(conn, batch.id)
        assert report.reconciled, report.problems
    audit.verify(conn)
    assert audit.code_problems(conn) == [], "a code row disagrees with its history"


def finish_interrupted(store: Store) -> int:
    """Finish every confirm and cancel a kill interrupted, as the operator would by running
    the command again; how many there were."""
    from edge.domain import shipments

    rows = store.read().execute(
        "SELECT id, status FROM shipments WHERE status IN ('confirming', 'cancelling')"
    ).fetchall()
    for shipment_id, status in rows:
        if status == "confirming":
            shipments.confirm(store, shipment_id, operator="operator")
        else:
            shipments.cancel(store, shipment_id, operator="operator", reason="again")
    return len(rows)
