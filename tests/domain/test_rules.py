"""The domain's refusals: each names the problem and leaves the database exactly as it was."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from edge.domain import (
    aggregation,
    audit,
    batches,
    flow,
    inspection,
    pool,
    pool_import,
    shipments,
    station_packing,
)
from edge.domain.errors import (
    AlreadyPacked,
    AuditChainBroken,
    BatchStateError,
    CodeAlreadyUsed,
    ContainerClosed,
    ContainerFull,
    DomainError,
    ImportRejected,
    MixedBatch,
    NotCommissioned,
    NotReconciled,
    PoolExhausted,
    ReasonRequired,
    ShipmentError,
    UnknownCode,
    WrongLevel,
)
from edge.domain.lifecycle import Reason, State
from edge.domain.serials import SerialScheme
from edge.store.database import Store
from line_config.models import SiteConfig
from tests.conftest import commissioned, fingerprint, packed_pallet, running_batch


def refused(store: Store, error: type[Exception], call: object, *args: object,
            **kwargs: object) -> str:
    """Run a call that must be refused; assert nothing changed; return the message."""
    before = fingerprint(store)
    with pytest.raises(error) as info:
        call(*args, **kwargs)  # type: ignore[operator]
    assert fingerprint(store) == before
    return str(info.value)


def state_of(store: Store, serial: str) -> State:
    return State(store.read().execute("SELECT state FROM codes WHERE serial = ?",
                                      (serial,)).fetchone()[0])


def test_reserved_code_is_never_reserved_again(store: Store, site: SiteConfig) -> None:
    batch = running_batch(store, site, items=10)
    first = flow.reserve(store, batch, "p", "item", 6)
    second = flow.reserve(store, batch, "p", "item", 4)
    assert not {c.serial for c in first.codes} & {c.serial for c in second.codes}
    refused(store, PoolExhausted, flow.reserve, store, batch, "p", "item", 1)


def test_recover_voids_unconfirmed_and_rejects_unverified(store: Store, site: SiteConfig) -> None:
    batch = running_batch(store, site, items=10)
    block = flow.reserve(store, batch, "p", "item", 5)
    ids = [c.id for c in block.codes]
    flow.mark_printed(store, batch, "item", ids[:2])
    report = flow.recover(store)
    assert (report.voided, report.rejected) == (3, 2)
    states = [state_of(store, c.serial) for c in block.codes]
    assert states == [State.REJECTED] * 2 + [State.VOID] * 3
    refused(store, CodeAlreadyUsed, flow.mark_printed, store, batch, "item", ids[2:3])
    assert flow.recover(store) == flow.RecoveryReport(0, 0)


def test_print_confirmation_for_another_batch_is_refused(store: Store, site: SiteConfig) -> None:
    batch = running_batch(store, site, items=10)
    block = flow.reserve(store, batch, "p", "item", 2)
    refused(store, CodeAlreadyUsed, flow.mark_printed, store, batch + 1, "item",
            [block.codes[0].id])


def test_reserve_needs_a_running_batch(store: Store, site: SiteConfig) -> None:
    batch = running_batch(store, site, items=10)
    batches.stop(store, batch, operator="t")
    refused(store, BatchStateError, flow.reserve, store, batch, "p", "item", 1)


def test_one_batch_runs_per_line(store: Store, site: SiteConfig) -> None:
    running_batch(store, site, items=4)
    other = batches.create(store, site, "L1", "p1", "LOT2", operator="t")
    assert "stop it first" in refused(store, BatchStateError, batches.start, store, other.id,
                                      operator="t")


def test_batch_close_refuses_until_counts_reconcile(store: Store, site: SiteConfig) -> None:
    batch = running_batch(store, site, items=10)
    block = flow.reserve(store, batch, "p", "item", 4)
    flow.mark_printed(store, batch, "item", [c.id for c in block.codes[:3]])
    batches.stop(store, batch, operator="t")
    message = refused(store, NotReconciled, batches.close, store, batch, operator="t")
    assert "1 in printer buffers, 3 in transit" in message
    refused(store, ReasonRequired, batches.close, store, batch, operator="t", force=True)
    report = batches.close(store, batch, operator="t", force=True, reason="line teardown")
    assert report.reconciled
    item = report.levels["item"]
    assert (item.void, item.rejected) == (1, 3)
    assert report.batch.forced


def test_reconciliation_detects_a_state_changed_behind_the_domain(store: Store,
                                                                   site: SiteConfig) -> None:
    batch = running_batch(store, site, items=8)
    commissioned(store, batch, "item", 4)
    with store.transaction() as conn:
        conn.execute("UPDATE codes SET state = ? WHERE id = (SELECT min(id) FROM codes "
                     "WHERE state = ?)", (int(State.COMMISSIONED), int(State.AVAILABLE)))
        conn.execute("UPDATE codes SET batch_id = ? WHERE state = ? AND batch_id IS NULL",
                     (batch, int(State.COMMISSIONED)))
    report = batches.report(store.read(), batch)
    assert not report.reconciled
    assert any("by the event log" in p for p in report.problems)


def test_pack_rules(store: Store, site: SiteConfig) -> None:
    batch = running_batch(store, site, items=40)
    items = commissioned(store, batch, "item", 9)
    cases = commissioned(store, batch, "case", 3)
    pallets = commissioned(store, batch, "pallet", 1)
    refused(store, WrongLevel, aggregation.pack, store, pallets[0], items[:1], operator="t")
    refused(store, WrongLevel, aggregation.pack, store, items[0], items[1:2], operator="t")
    refused(store, ContainerFull, aggregation.pack, store, cases[0], items[:5], operator="t")
    aggregation.pack(store, cases[0], items[:4], operator="t", close=True)
    refused(store, AlreadyPacked, aggregation.pack, store, cases[1], items[:1], operator="t")
    refused(store, ContainerClosed, aggregation.pack, store, cases[0], items[4:5], operator="t")
    printed_only = flow.reserve(store, batch, "p", "item", 1).codes[0].serial
    refused(store, NotCommissioned, aggregation.pack, store, cases[1], [printed_only],
            operator="t")
    refused(store, UnknownCode, aggregation.pack, store, cases[1], ["NOPE"], operator="t")
    refused(store, DomainError, aggregation.pack, store, pallets[0], [cases[1]], operator="t")
    refused(store, DomainError, aggregation.close, store, cases[1], operator="t")
    aggregation.pack(store, cases[1], items[4:6], operator="t")
    assert "needs a reason" in refused(store, ReasonRequired, aggregation.close, store,
                                       cases[1], operator="t")
    assert aggregation.close(store, cases[1], operator="t", reason="end of batch").status == \
        "closed"


def test_batch_end_decommissions_only_loose_items_of_that_batch(store: Store,
                                                                 site: SiteConfig) -> None:
    batch = running_batch(store, site, items=40)
    items = commissioned(store, batch, "item", 6)
    cases = commissioned(store, batch, "case", 1)
    aggregation.pack(store, cases[0], items[:4], operator="t", close=True)
    in_transit = flow.reserve(store, batch, "p", "item", 1).codes[0].serial
    assert aggregation.decommission_unpacked(store, batch, operator="line", reason="r") == 2
    assert [state_of(store, s) for s in items] == [State.COMMISSIONED] * 4 + \
        [State.DECOMMISSIONED] * 2
    assert state_of(store, cases[0]) is State.COMMISSIONED  # only items, never containers
    assert state_of(store, in_transit) is State.RESERVED
    assert aggregation.decommission_unpacked(store, batch, operator="line", reason="r") == 0
    report = batches.report(store.read(), batch)
    assert report.levels["item"].decommissioned == 2 and report.reconciled


def test_rework_is_audited_and_refused_once_shipped(store: Store, site: SiteConfig) -> None:
    batch = running_batch(store, site, items=40)
    items = commissioned(store, batch, "item", 9)
    case = commissioned(store, batch, "case", 1)[0]
    aggregation.pack(store, case, items[:4], operator="t", close=True)
    refused(store, ReasonRequired, aggregation.replace, store, items[0], items[4], operator="t",
            reason=" ")
    aggregation.replace(store, items[0], items[4], operator="alice", reason="bottle cracked")
    view = inspection.inspect(store.read(), case)
    assert items[4] in view.children and items[0] not in view.children
    last = store.read().execute("SELECT operator, action, reason FROM audit ORDER BY id DESC "
                                "LIMIT 1").fetchone()
    assert last == ("alice", "agg.replace", "bottle cracked")
    shipment = shipments.create(store, "D1", "east", operator="t")
    shipments.add(store, shipment.id, case, operator="t", allow_mixed_batches=False)
    refused(store, ShipmentError, aggregation.unpack, store, items[1], operator="t",
            reason="rework")
    shipments.confirm(store, shipment.id, operator="t")
    refused(store, ShipmentError, aggregation.reopen, store, case, operator="t", reason="x")


def test_shipment_activates_the_whole_subtree_and_only_it(store: Store, site: SiteConfig) -> None:
    batch = running_batch(store, site, items=40)
    items = commissioned(store, batch, "item", 16)
    cases = commissioned(store, batch, "case", 4)
    pallets = commissioned(store, batch, "pallet", 2)
    for k, case in enumerate(cases):
        aggregation.pack(store, case, items[k * 4:(k + 1) * 4], operator="t", close=True)
    aggregation.pack(store, pallets[0], cases[:2], operator="t", close=True)
    aggregation.pack(store, pallets[1], cases[2:], operator="t", close=True)
    shipment = shipments.create(store, "D1", "east", operator="t")
    refused(store, ShipmentError, shipments.add, store, shipment.id, items[0], operator="t",
            allow_mixed_batches=False)
    refused(store, ShipmentError, shipments.add, store, shipment.id, cases[0], operator="t",
            allow_mixed_batches=False)
    shipments.add(store, shipment.id, pallets[0], operator="t", allow_mixed_batches=False)
    done = shipments.confirm(store, shipment.id, operator="t")
    assert done.code_count == 1 + 2 + 8
    shipped = {pallets[0], *cases[:2], *items[:8]}
    for serial in [*items, *cases, *pallets]:
        expected = State.ACTIVE if serial in shipped else State.COMMISSIONED
        assert state_of(store, serial) is expected
    refused(store, ShipmentError, shipments.add,
            store, shipments.create(store, "D2", "west", operator="t").id, pallets[0],
            operator="t", allow_mixed_batches=False)
    outbox = store.read().execute("SELECT kind, shipment_id FROM outbox").fetchall()
    assert outbox == [("activation", shipment.id)]
    with pytest.raises(sqlite3.DatabaseError, match="immutable"):
        store.read().execute("UPDATE outbox SET kind = 'deactivation'")
    shipments.cancel(store, shipment.id, operator="t", reason="truck broke down")
    assert all(state_of(store, s) is State.COMMISSIONED for s in shipped)
    kinds = [r[0] for r in store.read().execute("SELECT kind FROM outbox ORDER BY seq")]
    assert kinds == ["activation", "deactivation"]


def test_a_refused_confirm_of_a_pallet_leaves_the_database_exactly_as_it_was(
        store: Store, site: SiteConfig) -> None:
    batch = running_batch(store, site, items=40)
    items = commissioned(store, batch, "item", 8)
    _, pallet = packed_pallet(store, batch, items)
    shipment = shipments.create(store, "D1", "east", operator="t")
    shipments.add(store, shipment.id, pallet, operator="t", allow_mixed_batches=False)
    with store.transaction() as conn:  # one code under the pallet changed by hand
        conn.execute("UPDATE codes SET state = ? WHERE serial = ?",
                     (int(State.REJECTED), items[5]))
    before = fingerprint(store)
    with pytest.raises(NotCommissioned, match=items[5]):
        shipments.confirm(store, shipment.id, operator="t")
    assert fingerprint(store) == before  # still open, no manifest queued, nothing active
    assert shipments.get(store.read(), shipment.id).status == "open"


def test_mixed_batches_on_one_shipment_follow_the_config(store: Store, site: SiteConfig) -> None:
    first = running_batch(store, site, items=40)
    items = commissioned(store, first, "item", 4)
    case_a = commissioned(store, first, "case", 1)[0]
    aggregation.pack(store, case_a, items, operator="t", close=True)
    batches.stop(store, first, operator="t")
    second = batches.create(store, site, "L1", "p1", "LOT2", operator="t")
    batches.start(store, second.id, operator="t")
    items_b = commissioned(store, second.id, "item", 4)
    case_b = commissioned(store, second.id, "case", 1)[0]
    aggregation.pack(store, case_b, items_b, operator="t", close=True)
    shipment = shipments.create(store, "D1", "east", operator="t")
    shipments.add(store, shipment.id, case_a, operator="t", allow_mixed_batches=False)
    refused(store, MixedBatch, shipments.add, store, shipment.id, case_b, operator="t",
            allow_mixed_batches=False)
    shipments.add(store, shipment.id, case_b, operator="t", allow_mixed_batches=True)


def test_nothing_but_a_shipment_makes_a_code_active() -> None:
    """The only code that moves a code to ACTIVE is the activation module (the shipments
    module's confirm and cancel call it)."""
    root = Path(__file__).resolve().parents[2]
    writers = [
        p.relative_to(root).as_posix()
        for p in (root / "edge").rglob("*.py")
        if "State.ACTIVE)" in p.read_text() and ("transition(" in p.read_text()
                                                 or "UPDATE codes SET state" in p.read_text())
    ]
    assert writers == ["edge/domain/activation.py"]
    sets_state = re.compile(r"UPDATE codes SET (state|\{)")
    raw = sorted(p.relative_to(root).as_posix() for p in (root / "edge").rglob("*.py")
                 if sets_state.search(p.read_text()))
    assert raw == ["edge/domain/activation.py", "edge/domain/lifecycle.py"]


def test_audit_chain_detects_an_altered_entry(store: Store, site: SiteConfig) -> None:
    running_batch(store, site, items=4)
    assert audit.verify(store.read()).entries >= 5
    conn = store.read()
    conn.execute("DROP TRIGGER audit_append_only_update")
    conn.execute("UPDATE audit SET operator = 'mallory' WHERE id = 2")
    with pytest.raises(AuditChainBroken, match="entry 2 was altered"):
        audit.verify(conn)


def test_event_and_audit_logs_are_append_only(store: Store, site: SiteConfig) -> None:
    running_batch(store, site, items=4)
    for sql in ("DELETE FROM audit", "UPDATE audit SET reason = 'x'", "DELETE FROM events",
                "UPDATE events SET kind = 'x'"):
        with pytest.raises(sqlite3.DatabaseError):
            store.read().execute(sql)


def test_rejects_carry_their_reason(store: Store, site: SiteConfig) -> None:
    batch = running_batch(store, site, items=10)
    block = flow.reserve(store, batch, "p", "item", 6)
    ids = [c.id for c in block.codes]
    flow.mark_printed(store, batch, "item", ids)
    reasons = [None, Reason.NO_READ, Reason.MISREAD, Reason.DUPLICATE, Reason.UNKNOWN,
               Reason.GRADE]
    flow.record_verdicts(store, batch, "item", [flow.Verdict(i, r) for i, r in zip(ids, reasons,
                                                                            strict=True)])
    rep = batches.report(store.read(), batch)
    assert rep.levels["item"].rejected_by_reason == {
        "no-read": 1, "misread": 1, "duplicate": 1, "unknown": 1, "grade": 1}
    assert rep.reconciled


def test_import_refuses_a_truncated_file_and_changes_nothing(
    store: Store, site: SiteConfig, tmp_path: Path
) -> None:
    line = site.lines[0]
    serials = SerialScheme.from_config(line.codes.item.serial).draw(50)
    path = tmp_path / "segment.txt"
    path.write_text("\n".join(serials)[:-3])
    message = refused(store, ImportRejected, pool_import.import_file, store, line, site.products,
                      "item", path, operator="t")
    assert "truncated" in message


@pytest.mark.parametrize("hostile", [
    "'; DROP TABLE codes; --", "Robert'); DELETE FROM audit;--", "ＡＢＣＤＥＦＧ", "x" * 10_000,
    "\x00\x1b[31m", "ZZZZ\"ZZZZ", "🍶🍶🍶",
])
def test_import_refuses_hostile_lines_and_changes_nothing(
    store: Store, site: SiteConfig, tmp_path: Path, hostile: str
) -> None:
    line = site.lines[0]
    good = SerialScheme.from_config(line.codes.item.serial).draw(5)
    path = tmp_path / "segment.csv"
    path.write_text("serial,prize\n" + "\n".join(f"{s},0" for s in good) + f"\n\"{hostile}\",1\n")
    error = refused(store, ImportRejected, pool_import.import_file, store, line, site.products,
                    "item", path, operator="t")
    assert "line 7" in error
    report = pool_import.import_file(store, line, site.products, "item", path, operator="t",
                              max_rejects=1)
    assert report.imported == 5 and [r.line_no for r in report.rejects] == [7]


def test_import_dedups_against_everything_ever_seen(store: Store, site: SiteConfig,
                                                    tmp_path: Path) -> None:
    line = site.lines[0]
    pool.generate(store, line, "item", 20, operator="t")
    known = [r[0] for r in store.read().execute("SELECT serial FROM codes LIMIT 3")]
    fresh = SerialScheme.from_config(line.codes.item.serial).draw(4)
    path = tmp_path / "seg.txt"
    path.write_text("\n".join([*fresh, *known, fresh[0]]) + "\n")
    message = refused(store, ImportRejected, pool_import.import_file, store, line, site.products,
                      "item", path, operator="t")
    assert "already known" in message and "repeats line 1" in message
    payload_path = tmp_path / "urls.txt"
    payload_path.write_text("".join(f"https://c.example.com/q/{s}\n" for s in fresh))
    assert pool_import.import_file(store, line, site.products, "item", payload_path,
                            operator="t").imported == 4


def test_pool_stats_flag_low_water(store: Store, site: SiteConfig) -> None:
    pool.generate(store, site.lines[0], "item", 5, operator="t")
    stats = {s.level: s for s in pool.stats(store, site.lines)}
    assert stats["item"].available == 5 and stats["item"].low


def test_a_batch_report_names_loose_codes_and_open_containers(store: Store,
                                                              site: SiteConfig) -> None:
    batch = running_batch(store, site, items=40)
    items = commissioned(store, batch, "item", 10)
    cases = commissioned(store, batch, "case", 2)
    aggregation.pack(store, cases[0], items[:4], operator="t", close=True)
    aggregation.pack(store, cases[1], items[4:6], operator="t")  # left open
    rep = batches.report(store.read(), batch)
    assert rep.reconciled  # the counts balance all the same
    assert rep.containment == ["item: 4 commissioned outside any case",
                               "case: 2 commissioned outside any pallet", "case: 1 open"]
    assert not rep.contained


def test_a_pallet_station_packs_only_cases_seen_arriving(store: Store,
                                                         site: SiteConfig) -> None:
    batch = running_batch(store, site, items=40)
    items = commissioned(store, batch, "item", 12)
    cases = commissioned(store, batch, "case", 3)
    aggregation.pack(store, cases[0], items[:4], operator="t", close=True)
    aggregation.pack(store, cases[1], items[4:8], operator="t", close=True)
    aggregation.pack(store, cases[2], items[8:10], operator="t")  # still open at the station
    pallet_level = 2
    assert station_packing.check_children(store.read(), batch, pallet_level, cases[:2]) == [
        f"{cases[0]}: not seen arriving on the pallet",
        f"{cases[1]}: not seen arriving on the pallet"]
    assert station_packing.open_pallet(store.read(), batch) == station_packing.OpenPallet(
        [], cases[:2])

    station_packing.record_arrival(store, cases[0], station="PAL1")
    station_packing.record_arrival(store, cases[0], station="PAL1")  # read twice: one arrival
    assert station_packing.check_children(store.read(), batch, pallet_level, cases[:1]) == []
    assert station_packing.open_pallet(store.read(), batch) == station_packing.OpenPallet(
        cases[:1], cases[1:2])
    assert "not a sealed case" in refused(store, DomainError, station_packing.record_arrival,
                                          store, cases[2], station="PAL1")
    refused(store, DomainError, station_packing.record_arrival, store, items[0], station="PAL1")

    pallet = commissioned(store, batch, "pallet", 1)[0]
    aggregation.pack(store, pallet, cases[:1], operator="t")
    refused(store, AlreadyPacked, station_packing.record_arrival, store, cases[0], station="PAL1")


def test_a_batch_runs_from_each_start_to_the_stop_after_it_and_a_running_one_to_now() -> None:
    from edge.domain.production import running_ms

    marks = [(1000, "batch.start"), (4000, "batch.stop"), (5000, "batch.stop"),
             (10_000, "batch.start"), (10_500, "batch.start"), (12_000, "batch.stop")]
    assert running_ms(marks, now=99_000) == 3000 + 2000
    assert running_ms([*marks, (20_000, "batch.start")], now=21_500) == 5000 + 1500
    assert running_ms([], now=5) == 0


def test_import_streams_any_line_ending_and_leaves_no_scratch_file(
    store: Store, site: SiteConfig, tmp_path: Path
) -> None:
    line = site.lines[0]
    serials = SerialScheme.from_config(line.codes.item.serial).draw(30)
    old_mac = tmp_path / "old-mac.txt"
    old_mac.write_bytes("\r".join(serials[:10]).encode() + b"\r")
    windows = tmp_path / "windows.txt"
    windows.write_bytes("\r\n".join(serials[10:20]).encode() + b"\r\n")
    for path in (old_mac, windows):
        report = pool_import.import_file(store, line, site.products, "item", path, operator="t")
        assert report.imported == 10 and report.rejects == []
    repeated = tmp_path / "repeated.txt"
    repeated.write_text("\n".join([*serials[20:], serials[20]]) + "\n")
    message = refused(store, ImportRejected, pool_import.import_file, store, line, site.products,
                      "item", repeated, operator="t")
    assert "line 11: " in message and "repeats line 1" in message
    assert list(store.path.parent.glob("codeline-import-*")) == []
