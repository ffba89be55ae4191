"""Random sequences of domain operations; every invariant holds after every step."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from edge.domain import aggregation, batches, flow, pool, shipments
from edge.domain.errors import DomainError
from edge.domain.lifecycle import REJECT_REASONS, Reason, State
from edge.store.database import Store
from line_config.loading import parse_config
from tests.conftest import SMALL_SITE, fingerprint
from tests.domain.invariants import check_invariants

SITE = parse_config(SMALL_SITE)
LINE = SITE.lines[0]
LEVELS = ("item", "case", "pallet")


class CodeLifecycle(RuleBasedStateMachine):
    """Drives pool, flow, aggregation and shipments at random, allowed or not."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        self.store = Store(Path(self.dir.name) / "t.db", create=True)
        self.batch: int | None = None
        self.ever_reserved: set[str] = set()

    def teardown(self) -> None:
        self.store.close()
        self.dir.cleanup()

    def serials(self, state: State, level: int, unpacked: bool = False) -> list[str]:
        extra = " AND parent_id IS NULL" if unpacked else ""
        return [r[0] for r in self.store.read().execute(
            f"SELECT serial FROM codes WHERE state = ? AND level = ?{extra} ORDER BY batch_id "
            "DESC, id", (int(state), level))]

    def ids(self, state: State, level: str) -> list[int]:
        return [r[0] for r in self.store.read().execute(
            "SELECT id FROM codes WHERE state = ? AND batch_id = ? AND level = ? ORDER BY id",
            (int(state), self.batch, LEVELS.index(level)))]

    def attempt(self, call: object, *args: object, **kwargs: object) -> None:
        """Run an operation; if the domain refuses it, nothing may have changed."""
        before = fingerprint(self.store)
        try:
            call(*args, **kwargs)  # type: ignore[operator]
        except (DomainError, ValueError):
            assert fingerprint(self.store) == before, "a refused operation changed the database"

    @initialize()
    def pool_and_batch(self) -> None:
        for level, n in (("item", 40), ("case", 12), ("pallet", 4)):
            pool.generate(self.store, LINE, level, n, operator="t")  # type: ignore[arg-type]
        self.start_batch()
        assert self.batch is not None
        for level, n in (("item", 16), ("case", 4), ("pallet", 2)):
            block = flow.reserve(self.store, self.batch, "st", level, n)  # type: ignore[arg-type]
            self.ever_reserved |= {c.serial for c in block.codes}
            ids = [c.id for c in block.codes]
            flow.mark_printed(self.store, self.batch, level, ids)  # type: ignore[arg-type]
            flow.record_verdicts(self.store, self.batch, level,  # type: ignore[arg-type]
                                 [flow.Verdict(i) for i in ids])

    @rule(level=st.sampled_from(LEVELS), n=st.integers(1, 12))
    def generate(self, level: str, n: int) -> None:
        pool.generate(self.store, LINE, level, n, operator="t")  # type: ignore[arg-type]

    @precondition(lambda self: self.batch is None)
    @rule()
    def start_batch(self) -> None:
        batch = batches.create(self.store, SITE, "L1", "p1", "LOT", operator="t")
        batches.start(self.store, batch.id, operator="t")
        self.batch = batch.id

    @precondition(lambda self: self.batch is not None)
    @rule(dice=st.integers(0, 7))
    def stop_and_close_batch(self, dice: int) -> None:
        if dice != 0:
            return
        assert self.batch is not None
        batches.stop(self.store, self.batch, operator="t")
        self.attempt(batches.close, self.store, self.batch, operator="t")
        self.batch = None

    @precondition(lambda self: self.batch is not None)
    @rule(level=st.sampled_from(LEVELS), n=st.integers(1, 8))
    def reserve(self, level: str, n: int) -> None:
        try:
            block = flow.reserve(self.store, self.batch, "st", level, n)  # type: ignore[arg-type]
        except DomainError:
            return
        fresh = {c.serial for c in block.codes}
        assert not fresh & self.ever_reserved, "a serial was reserved twice"
        self.ever_reserved |= fresh

    @precondition(lambda self: self.batch is not None)
    @rule(level=st.sampled_from(LEVELS), n=st.integers(1, 6), data=st.data())
    def produce(self, level: str, n: int, data: st.DataObject) -> None:
        """A whole block: reserved, printed, judged (the line's common path)."""
        try:
            block = flow.reserve(self.store, self.batch, "st", level, n)  # type: ignore[arg-type]
        except DomainError:
            return
        self.ever_reserved |= {c.serial for c in block.codes}
        ids = [c.id for c in block.codes]
        flow.mark_printed(self.store, self.batch, level, ids)  # type: ignore[arg-type]
        reasons = [None] * 6 + sorted(REJECT_REASONS)
        flow.record_verdicts(self.store, self.batch, level,  # type: ignore[arg-type]
                             [flow.Verdict(i, data.draw(st.sampled_from(reasons))) for i in ids])

    @precondition(lambda self: self.batch is not None)
    @rule(k=st.integers(1, 8), void=st.integers(0, 3), level=st.sampled_from(LEVELS),
          other=st.sampled_from(LEVELS), mislabel=st.integers(0, 4))
    def print_or_void(self, k: int, void: int, level: str, other: str, mislabel: int) -> None:
        """Mostly prints; sometimes voids, sometimes confirms under the wrong level."""
        ids = self.ids(State.RESERVED, level)[:k]
        if void == 0:
            flow.void(self.store, self.batch, level, ids, Reason.PRINTER_RESET,  # type: ignore[arg-type]
                      operator="t")
        else:
            said = other if mislabel == 0 else level
            self.attempt(flow.mark_printed, self.store, self.batch, said, ids)

    @precondition(lambda self: self.batch is not None)
    @rule(data=st.data(), level=st.sampled_from(LEVELS))
    def verdicts(self, data: st.DataObject, level: str) -> None:
        ids = self.ids(State.PRINTED, level)[: data.draw(st.integers(1, 8))]
        reasons = sorted(REJECT_REASONS)
        verdicts = [flow.Verdict(i, data.draw(st.sampled_from([None, None, None, *reasons])))
                    for i in ids]
        self.attempt(flow.record_verdicts, self.store, self.batch, level, verdicts)

    @rule(data=st.data(), level=st.sampled_from([1, 2]), close=st.booleans())
    def pack(self, data: st.DataObject, level: int, close: bool) -> None:
        parents = self.serials(State.COMMISSIONED, level)[:6]
        children = self.serials(State.COMMISSIONED, level - 1, unpacked=True)[:12]
        if not parents or not children:
            return
        parent = data.draw(st.sampled_from(parents))
        chosen = data.draw(st.lists(st.sampled_from(children), min_size=1, max_size=4,
                                    unique=True))
        self.attempt(aggregation.pack, self.store, parent, chosen, operator="t", close=close)

    @rule(level=st.sampled_from([1, 2]), partial=st.booleans())
    def build_container(self, level: int, partial: bool) -> None:
        """The station's common path: fill an unused container and close it."""
        conn = self.store.read()
        row = conn.execute(
            "SELECT c.serial, c.batch_id FROM codes c LEFT JOIN containers k ON k.code_id = c.id "
            "WHERE c.level = ? AND c.state = ? AND k.code_id IS NULL ORDER BY c.id LIMIT 1",
            (level, int(State.COMMISSIONED))).fetchone()
        if row is None:
            return
        capacity = LINE.packaging.items_per_case if level == 1 else LINE.packaging.cases_per_pallet
        inner = "" if level == 1 else (
            " AND id IN (SELECT code_id FROM containers WHERE status = 'closed')")
        children = [r[0] for r in conn.execute(
            f"SELECT serial FROM codes WHERE level = ? AND state = ? AND parent_id IS NULL "
            f"AND batch_id = ?{inner} ORDER BY id LIMIT ?",
            (level - 1, int(State.COMMISSIONED), row[1], capacity - 1 if partial else capacity))]
        if not children:
            return
        aggregation.pack(self.store, row[0], children, operator="t", close=not partial)
        if partial:
            aggregation.close(self.store, row[0], operator="t", reason="end of batch")

    @rule(data=st.data(), partial=st.booleans())
    def close_container(self, data: st.DataObject, partial: bool) -> None:
        rows = [r[0] for r in self.store.read().execute(
            "SELECT c.serial FROM containers k JOIN codes c ON c.id = k.code_id ORDER BY c.id")]
        if rows:
            self.attempt(aggregation.close, self.store, data.draw(st.sampled_from(rows)),
                         operator="t", reason="end of batch" if partial else None)

    @rule(data=st.data(), op=st.sampled_from(["unpack", "reopen", "decommission"]))
    def rework(self, data: st.DataObject, op: str) -> None:
        rows = [r[0] for r in self.store.read().execute("SELECT serial FROM codes WHERE level > 0 "
                                                        "OR parent_id IS NOT NULL ORDER BY id")]
        if rows:
            call = getattr(aggregation, op)
            self.attempt(call, self.store, data.draw(st.sampled_from(rows)), operator="t",
                         reason="rework")

    @rule(data=st.data(), cancel=st.booleans())
    def ship(self, data: st.DataObject, cancel: bool) -> None:
        tops = [r[0] for r in self.store.read().execute(
            "SELECT c.serial FROM containers k JOIN codes c ON c.id = k.code_id "
            "WHERE k.status = 'closed' AND c.parent_id IS NULL ORDER BY c.id")]
        shipment = shipments.create(self.store, "D", "R", operator="t")
        for serial in data.draw(st.lists(st.sampled_from(tops), max_size=3, unique=True)
                                if tops else st.just([])):
            self.attempt(shipments.add, self.store, shipment.id, serial, operator="t",
                         allow_mixed_batches=data.draw(st.booleans()))
        self.attempt(shipments.confirm, self.store, shipment.id, operator="t")
        if cancel:
            shipments.cancel(self.store, shipment.id, operator="t", reason="customer")

    @rule(dice=st.integers(0, 5))
    def restart(self, dice: int) -> None:
        if dice == 0:
            flow.recover(self.store)

    @invariant()
    def invariants_hold(self) -> None:
        check_invariants(self.store)
        pooled = set(self.serials(State.AVAILABLE, 0)) | set(self.serials(State.AVAILABLE, 1)) \
            | set(self.serials(State.AVAILABLE, 2))
        assert not pooled & self.ever_reserved


CodeLifecycle.TestCase.settings = settings(
    max_examples=60, stateful_step_count=50, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestCodeLifecycle = CodeLifecycle.TestCase
