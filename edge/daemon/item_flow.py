"""The item flow of one line (DESIGN.md §4): printer buffer kept N ahead, one item per print
confirmation, the in-transit FIFO, one verdict per read, group commits, reject requests.

Items are numbered in the order the printer confirms them (from 1 at every start of the
runtime; the PLC counts the same products). The k-th read belongs to the k-th item in
transit. An accept (the judged-through number) is published to the PLC only once it is
committed; a reject is published at once, before its commit, in the fail-safe direction that
invariant 5 allows: should the controller die first, recovery rejects the item too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable

from drivers.errors import DriverError
from drivers.interfaces import (
    BufferLost,
    CodeReader,
    DoublePrint,
    FaultCleared,
    FaultRaised,
    Printed,
    Printer,
    ReadResult,
)
from edge.daemon.committer import Committer, InTransit, Judged
from edge.daemon.dbworker import DbCalls
from edge.daemon.failpoints import failpoint
from edge.daemon.signals import LineCounters, LineOutputs, RateMeter
from edge.domain import codes as code_queries
from edge.domain import flow
from edge.domain.errors import DomainError, InvalidPayload
from edge.domain.lifecycle import Reason
from edge.domain.payloads import BatchLabel, PayloadCodec
from edge.domain.verdicts import Expected, Reading, RejectRule, Verdict
from edge.store.database import Store
from line_config.models import ItemPrintStation, ItemVerifyStation, Line, Product

log = logging.getLogger("codeline.flow")


class ItemFlow:
    """Printer, reader and verdicts of one line's running batch."""

    def __init__(self, line: Line, product: Product, label: BatchLabel, batch_id: int,
                 printer: Printer, reader: CodeReader, db: DbCalls, outputs: LineOutputs,
                 counters: LineCounters, *, target: int | None,
                 commissioned: int, on_alarm: Callable[[str, str, bool], None],
                 commit_times: Callable[[float], None]) -> None:
        print_station = next(s for s in line.stations if isinstance(s, ItemPrintStation))
        verify_station = next(s for s in line.stations if isinstance(s, ItemVerifyStation))
        self.line = line
        self.product = product
        self.label = label
        self.codec = PayloadCodec(line, [product])
        self.batch_id = batch_id
        self.printer = printer
        self.reader = reader
        self.db = db
        self.outputs = outputs
        self.counters = counters
        self.station = print_station
        self.target = target
        self.commissioned = commissioned
        self.on_alarm = on_alarm
        self.rule = RejectRule(line.reject.min_grade, line.reject.consecutive_limit)
        self.committer = Committer(db, batch_id, verify_station.verdict_commit_every,
                                   verify_station.verdict_commit_ms, self._committed,
                                   commit_times)
        self.stock: deque[flow.ReservedCode] = deque()
        self._reserving: asyncio.Future[None] | None = None
        self.sent: dict[str, flow.ReservedCode] = {}
        self.fifo: asyncio.Queue[InTransit] = asyncio.Queue()
        self.in_fifo = 0
        self.seq = 0
        self.judged_through = 0
        self.unresolved = 0  # sent and neither judged-and-committed nor voided
        self.feeding = False
        self.rate = RateMeter()
        self.latencies: deque[float] = deque(maxlen=100_000)
        self._feed_wake = asyncio.Event()
        self.done = asyncio.Event()
        self._changed = asyncio.Event()

    # --- the printer side ---
    def need(self) -> int | None:
        """Codes still to send to meet the batch target (None: no target)."""
        if self.target is None:
            return None
        return max(0, self.target - self.commissioned - self.unresolved)

    async def feed(self) -> None:
        """Keep the printer ``buffer_ahead`` codes ahead; reserve blocks as needed."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.05):
                    await self._feed_wake.wait()
            self._feed_wake.clear()
            if not self.feeding:
                continue
            failpoint("flow.feed")
            room = self.station.buffer_ahead - self.printer.pending
            need = self.need()
            count = room if need is None else min(room, need)
            if count <= 0:
                continue
            if len(self.stock) < count:
                block = max(count - len(self.stock), self.line.pool.reserve_block)
                if need is not None:
                    block = max(count - len(self.stock), min(block, need - len(self.stock)))
                self._reserving = asyncio.ensure_future(self._reserve(block))
                self._reserving.add_done_callback(_retrieved)
                try:
                    await asyncio.shield(self._reserving)
                except DomainError as exc:
                    self.on_alarm("pool", str(exc), True)
                    continue
            batch = [self.stock.popleft() for _ in range(count)]
            payloads = []
            for code in batch:
                payload = self.codec.render("item", code.serial, self.product, self.label)
                self.sent[payload] = code
                payloads.append(payload)
            self.unresolved += len(payloads)
            try:
                await self.printer.send(payloads)
            except (DriverError, ValueError) as exc:
                # Not taken; they were meant for the printer, so they are void all the same.
                for payload in payloads:
                    self.sent.pop(payload, None)
                await self._void(batch, Reason.UNCONFIRMED)
                self.on_alarm("printer", f"printer refused codes: {exc}", True)

    async def _reserve(self, count: int) -> None:
        """Reserve codes into stock. Its own task, never cancelled half-way: a reservation
        committed while production halts still reaches the stock, so Stop or Abort voids
        it instead of leaving it RESERVED for the next start's recovery."""
        reservation = await self.db.call(flow.reserve, self.batch_id, self.station.id, "item",
                                         count)
        self.stock.extend(reservation.codes)

    async def printer_events(self) -> None:
        """Turn the printer's ordered events into items, voids and alarms."""
        async for event in self.printer.events():
            failpoint("flow.printer_events")
            if isinstance(event, Printed):
                code = self.sent.pop(event.code, None)
                self._item(code.id if code else None,
                           code.serial if code else self._serial_of(event.code))
                if code is not None:
                    self.committer.add_printed(code.id)
                else:
                    log.error("printer confirmed a code it was never sent",
                              extra={"line": self.line.id, "serial": event.code})
            elif isinstance(event, DoublePrint):
                self._item(None, self._serial_of(event.code))
                self.on_alarm("printer", "double print: a code printed on two items", False)
            elif isinstance(event, BufferLost):
                lost = [self.sent.pop(c) for c in event.codes if c in self.sent]
                await self._void(lost, Reason.PRINTER_RESET)
                log.warning("printer buffer lost", extra={"line": self.line.id,
                                                          "count": len(lost), "why": event.why})
            elif isinstance(event, FaultRaised):
                self.on_alarm("printer", f"{event.code}: {event.text}", True)
            elif isinstance(event, FaultCleared):
                self.on_alarm("printer", "", False)
            self._feed_wake.set()

    def _serial_of(self, payload: str) -> str:
        """The serial in a payload the printer reported (the payload itself if unparsable)."""
        try:
            return self.codec.parse(payload).serial
        except InvalidPayload:
            return payload

    def _item(self, code_id: int | None, serial: str) -> None:
        self.seq += 1
        self.in_fifo += 1
        self.fifo.put_nowait(InTransit(self.seq, code_id, serial, time.monotonic()))
        self.counters.printed()

    async def _void(self, codes: list[flow.ReservedCode], reason: Reason, *,
                    sent: bool = True) -> None:
        if codes:
            await self.db.call(flow.void, self.batch_id, "item", [c.id for c in codes], reason,
                               operator="system")
        if sent:
            self.unresolved -= len(codes)
        self._changed.set()
        self.outputs.changed()

    async def void_abandoned(self) -> None:
        """Production aborted: the codes still meant for the printer (in its cleared buffer,
        or reserved and never sent) will never be printed. VOID now, not at the next
        start's recovery."""
        cleared, self.sent = list(self.sent.values()), {}
        await self._void(cleared, Reason.PRINTER_RESET)
        await self.void_unsent()

    async def void_unsent(self) -> None:
        """Codes reserved but never sent: VOID (they were meant for a printer)."""
        if self._reserving is not None:
            with contextlib.suppress(Exception):
                await self._reserving
        if self.stock:
            codes, self.stock = list(self.stock), deque()
            await self._void(codes, Reason.UNCONFIRMED, sent=False)

    # --- the reader side ---
    async def verify(self) -> None:
        """One read per item in transit; its verdict goes to the committer."""
        while True:
            item = await self.fifo.get()
            failpoint("flow.verify")
            try:
                result = await self.reader.read()
            except DriverError as exc:
                self.on_alarm("reader", f"reader failed: {exc}", False)
                result = ReadResult(None)
            received = time.perf_counter()
            verdict = await self.judge(item, result)
            self.in_fifo -= 1
            self._changed.set()
            told = verdict.reject is not None
            if told:
                await self.outputs.verdicts(self.judged_through, [item.seq])
                self.latencies.append(time.perf_counter() - received)
            self.committer.add_verdict(Judged(item, verdict.reject, told=told))
            hold = self.rule.count(verdict)
            if hold is not None:
                self.on_alarm("verify", hold, True)

    async def judge(self, item: InTransit, result: ReadResult) -> Verdict:
        """The verdict of one read against the item at the head of the FIFO (the rule is
        the domain's; the pool lookup it may ask for is done here)."""
        expected = Expected(item.seq, item.serial, first_print=item.code_id is not None)
        serial = None
        if result.data is not None:
            try:
                serial = self.codec.parse(result.data).serial
            except InvalidPayload:
                serial = None
        verdict = self.rule.judge(expected, Reading(result.data, serial, result.grade))
        if verdict.pool_check is not None and not await self.db.call(
                _known_serial, verdict.pool_check):
            verdict = self.rule.not_in_pool(expected, verdict.pool_check)
        if verdict.alarm is not None:
            self.on_alarm("verify", verdict.alarm, False)
        return verdict

    async def _committed(self, judged: list[Judged]) -> None:
        untold = [j.item.seq for j in judged if j.reject is not None and not j.told]
        if judged:
            self.judged_through = max(self.judged_through, judged[-1].item.seq)
        await self.outputs.verdicts(self.judged_through, untold)
        for j in judged:
            counted = j.item.code_id is not None
            if j.reject is None:
                self.counters.commissioned()
                self.commissioned += 1
                self.rate.add()
            else:
                self.counters.rejected(j.reject.label)
            if counted:
                self.unresolved -= 1
        self._changed.set()
        self.outputs.changed()
        if self.target is not None and self.commissioned >= self.target and \
                self.unresolved == 0:
            self.done.set()
        self._feed_wake.set()

    async def settled(self, condition: Callable[[], bool]) -> None:
        """Wait until ``condition()`` holds (checked after every change of the flow)."""
        while not condition():
            self._changed.clear()
            await self._changed.wait()

    async def drain(self, within: float) -> bool:
        """Wait until every item in transit has its verdict on disk; False on time-out."""
        try:
            async with asyncio.timeout(within):
                await self.settled(lambda: self.in_fifo == 0)
                await self.committer.drain()
        except TimeoutError:
            return False
        return True

    async def abandon_in_transit(self) -> None:
        """Items that will get no verdict: rejected (no-verdict); the gate rejects them too."""
        items: list[InTransit] = []
        while not self.fifo.empty():
            items.append(self.fifo.get_nowait())
        self.in_fifo = 0
        for item in items:
            self.committer.add_verdict(Judged(item, Reason.NO_VERDICT))
        await self.committer.drain()

    def kick(self) -> None:
        self._feed_wake.set()


def _retrieved(task: asyncio.Future[None]) -> None:
    """Its outcome is taken by whoever awaits it; this only keeps asyncio from reporting an
    error nobody retrieved when production halted meanwhile."""
    if not task.cancelled():
        task.exception()


def _known_serial(store: Store, serial: str) -> bool:
    try:
        code_queries.code(store.read(), serial)
    except DomainError:
        return False
    return True
