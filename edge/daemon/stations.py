"""Case and pallet stations: read the children in front of the station, check them, print
the container's label, read the label back, and seal — or hold with an alarm, packing
nothing.

A case station sees a whole open case in one frame (multi-code read); a pallet station reads
each case as it arrives. At the end of a batch the last container may be partial, sealed
with a reason. The label printer and the reader that checks labels may serve both stations;
a :class:`LabelBench` lets one station use them at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from drivers.errors import DriverError
from drivers.interfaces import CodeReader, LabelPrinter, ReadResult
from drivers.labels.zpl_codec import LabelText, datamatrix_label, qr_label, sscc_label
from drivers.registry import MultiReader
from edge.daemon.dbworker import DbCalls
from edge.daemon.failpoints import failpoint
from edge.daemon.signals import Counts, LineOutputs
from edge.domain import aggregation, flow
from edge.domain.errors import DomainError, InvalidPayload
from edge.domain.lifecycle import LEVEL_NUMBER, Reason
from edge.domain.payloads import BatchLabel, PayloadCodec
from edge.store.database import Store
from line_config.models import Level, Line, Product, SsccFormat

log = logging.getLogger("codeline.station")

POLL_S = 0.05
SETTLE_S = 1.0
GIVE_UP_S = 10.0
END_OF_BATCH = "end of batch"


class StationHeld(Exception):
    """A mismatch: the station holds with this alarm text and packs nothing."""


class Halted(Exception):
    """Production halts: the station takes no new step."""


class LabelBench:
    """A label printer and the reader that checks its labels, used by one station at a time."""

    def __init__(self, printer: LabelPrinter, reader: CodeReader) -> None:
        self.printer = printer
        self.reader = reader
        self.lock = asyncio.Lock()


@dataclass
class StationContext:
    """What a station needs of its line and batch."""

    line: Line
    product: Product
    label: BatchLabel
    batch_id: int
    db: DbCalls
    outputs: LineOutputs
    counts: tuple[Counts, Counts]
    alarm: Callable[[str, str, bool], None]
    ending: Callable[[], bool]


class ContainerStation:
    """What case and pallet stations share: label, verify, seal, hold."""

    level: Level
    station_id: str

    def __init__(self, ctx: StationContext, bench: LabelBench) -> None:
        self.ctx = ctx
        self.bench = bench
        self.codec = PayloadCodec(ctx.line, [ctx.product])
        self.active = asyncio.Event()
        self.finished = asyncio.Event()
        self.held: str | None = None
        self.sealed = 0  # containers sealed by this station (a count: it runs for months)
        self.halting = False
        self._at_rest = asyncio.Event()
        self._at_rest.set()

    @property
    def capacity(self) -> int:
        p = self.ctx.line.packaging
        return p.items_per_case if self.level == "case" else p.cases_per_pallet

    def hold(self, text: str) -> None:
        self.held = text
        self.active.clear()
        self.ctx.alarm(self.station_id, text, True)

    def resume(self) -> None:
        self.held = None
        if not self.halting:
            self.active.set()

    @contextlib.asynccontextmanager
    async def step(self) -> AsyncIterator[None]:
        """A step that must not be cut in the middle: a label printed, read back and sealed
        with its release; a case read arriving and recorded. None begins once production
        halts (Halted)."""
        if self.halting:
            raise Halted
        self._at_rest.clear()
        try:
            yield
        finally:
            self._at_rest.set()

    async def halt(self, within: float) -> bool:
        """Production halts (Stop, Abort, shutdown): the station ends the step it is in and
        begins no other, so that no seal is half done and no arrival is read and dropped.
        False if the step did not end within ``within`` seconds."""
        self.halting = True
        self.active.clear()
        try:
            async with asyncio.timeout(within):
                await self._at_rest.wait()
        except TimeoutError:
            return False
        return True

    def _render(self, serial: str) -> tuple[str, str]:
        """The payload and the ZPL label of container code ``serial``."""
        payload = self.codec.render(self.level, serial, self.ctx.product, self.ctx.label)
        fmt = self.ctx.line.codes.for_level(self.level)
        text = LabelText((self.ctx.product.name[:40], f"LOT {self.ctx.label.lot or '-'}",
                          f"{self.level.upper()} {serial}"))
        if isinstance(fmt, SsccFormat):
            return payload, sscc_label(payload[2:], text)
        if fmt.symbology == "datamatrix":
            return payload, datamatrix_label(payload, text)
        return payload, qr_label(payload, text)

    async def label_and_seal(self, children: list[str], partial_reason: str | None) -> str:
        """Print the label, read it back, seal: the container's serial, or StationHeld."""
        db = self.ctx.db
        level_no = LEVEL_NUMBER[self.level]
        problems = await db.call(lambda store: aggregation.check_children(
            store.read(), self.ctx.batch_id, level_no, children))
        if problems:
            raise StationHeld(f"{len(children)} {self.child_level} codes read, refused: "
                              + "; ".join(problems[:3]))
        try:
            reservation = await db.call(flow.reserve, self.ctx.batch_id, self.station_id,
                                        self.level, 1)
        except DomainError as exc:
            raise StationHeld(str(exc)) from None
        code = reservation.codes[0]
        payload, zpl = self._render(code.serial)
        async with self.bench.lock:
            try:
                await self.bench.printer.print_label(zpl)
            except DriverError as exc:
                await db.call(flow.void, self.ctx.batch_id, self.level, [code.id],
                              Reason.UNCONFIRMED, operator="line")
                raise StationHeld(f"{self.level} label not printed: {exc}") from None
            await db.call(flow.mark_printed, self.ctx.batch_id, self.level, [code.id])
            read = await read_until(self.bench.reader, 3.0)
        seen = self._serial(read)
        if seen != code.serial:
            await db.call(flow.record_verdicts, self.ctx.batch_id, self.level,
                          [flow.Verdict(code.id, Reason.MISREAD if seen else Reason.NO_READ)])
            raise StationHeld(
                f"{self.level} label read {seen or 'nothing'} but {code.serial} was sent "
                "(roll change reprint?): remove the label, then Unhold to relabel"
            )
        try:
            await db.call(aggregation.seal, code.id, children, operator="line",
                          partial_reason=partial_reason)
        except DomainError as exc:
            await db.call(flow.record_verdicts, self.ctx.batch_id, self.level,
                          [flow.Verdict(code.id, Reason.NO_VERDICT)])
            raise StationHeld(f"{self.level} {code.serial} not sealed: {exc}") from None
        self.sealed += 1
        for scope in self.ctx.counts:
            if self.level == "case":
                scope.cases += 1
            else:
                scope.pallets += 1
        log.info("sealed", extra={"line": self.ctx.line.id, "station": self.station_id,
                                  "batch": self.ctx.batch_id, "serial": code.serial,
                                  "children": len(children)})
        self.ctx.outputs.released(self.level)
        self.ctx.outputs.changed()
        return code.serial

    @property
    def child_level(self) -> str:
        return "item" if self.level == "case" else "case"

    def _ours(self, data: str) -> bool:
        """Whether ``data`` is a code in one of this line's formats."""
        try:
            self.codec.parse(data)
        except InvalidPayload:
            return False
        return True

    def _serial(self, result: ReadResult) -> str | None:
        if result.data is None:
            return None
        try:
            return self.codec.parse(result.data).serial
        except InvalidPayload:
            return result.data[:40]


async def read_until(reader: CodeReader | MultiReader, within: float) -> ReadResult:
    """Trigger until something is read or ``timeout`` passes (the object may still be on its
    way to the reader)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            result = await reader.read()  # type: ignore[union-attr]
        except DriverError:
            result = ReadResult(None)
        if result.data is not None or loop.time() >= deadline:
            return result
        await asyncio.sleep(POLL_S)


class CaseStation(ContainerStation):
    """A camera above the open case reads every item code in it at once."""

    level: Level = "case"

    def __init__(self, ctx: StationContext, bench: LabelBench, station_id: str,
                 camera: MultiReader, on_sealed: Callable[[str], None]) -> None:
        super().__init__(ctx, bench)
        self.station_id = station_id
        self.camera = camera
        self.on_sealed = on_sealed
        self.leaving: set[str] = set()
        self._odd_view: frozenset[str] | None = None
        self._view: frozenset[str] | None = None
        self._since = 0.0

    async def run(self) -> None:
        while True:
            await self.active.wait()
            failpoint("station.case")
            try:
                reads = await self.camera.read_all()
            except DriverError as exc:
                self.hold(f"case camera: {exc}")
                continue
            serials = []
            for result in reads:
                serial = self._serial(result)
                if serial is not None:
                    serials.append(serial)
            if self.leaving & set(serials):
                await asyncio.sleep(POLL_S)  # the sealed case has not left the station yet
                continue
            self.leaving = set()
            if self._unconfirmed_oddity(reads, serials):
                await asyncio.sleep(POLL_S)
                continue
            partial: str | None = None
            if len(serials) < self.capacity:
                if not self.ctx.ending():
                    await asyncio.sleep(POLL_S)
                    continue
                # The batch is ending: a part-filled case is sealed once the view is steady
                # (the packer pushed it out); an empty, steady view ends the station's work.
                view = frozenset(serials)
                now = asyncio.get_running_loop().time()
                if view != self._view:
                    self._view, self._since = view, now
                left = await self.ctx.db.call(lambda store: aggregation.unpacked_count(
                    store.read(), self.ctx.batch_id, 0))
                steady = now - self._since
                if not serials and (left == 0 or steady >= GIVE_UP_S):
                    if left:
                        self.ctx.alarm(self.station_id, f"{left} commissioned items never "
                                       "reached the case station (rejected at the gate "
                                       "after a restart?)", False)
                    self.finished.set()
                    return
                if not serials or steady < SETTLE_S:
                    await asyncio.sleep(POLL_S)
                    continue
                partial = END_OF_BATCH
            if len(serials) > self.capacity:
                self.hold(self._too_many(reads, serials))
                continue
            try:
                async with self.step():
                    await self._pack(serials, partial)
            except Halted:
                continue

    async def _pack(self, serials: list[str], partial: str | None) -> None:
        """Seal the case in view and release it towards the pallet."""
        resealed = await self.ctx.db.call(_sealed_together, serials, self.capacity)
        if resealed is not None:
            # Sealed before a restart, never released: release it now.
            self.leaving = set(serials)
            self.ctx.outputs.released("case")
            self.on_sealed(resealed)
            return
        try:
            case = await self.label_and_seal(serials, partial)
        except StationHeld as exc:
            self.hold(str(exc))
            return
        self.leaving = set(serials)
        self.on_sealed(case)


    def _too_many(self, reads: list[ReadResult], serials: list[str]) -> str:
        """The alarm for a view with more codes than a case holds, saying what is odd."""
        strays = [r.data for r in reads if r.data is not None and not self._ours(r.data)]
        twice = len(serials) - len(set(serials))
        log.warning("too many codes in the case view", extra={
            "line": self.ctx.line.id, "station": self.station_id, "batch": self.ctx.batch_id,
            "codes": serials, "strays": strays})
        detail = [f"{len(strays)} not of this line ({strays[0][:24]!r}…)" if strays else "",
                  f"{twice} read twice" if twice else ""]
        return (f"{len(serials)} items in a case of {self.capacity}"
                + (f": {', '.join(d for d in detail if d)}" if any(detail) else ""))

    def _unconfirmed_oddity(self, reads: list[ReadResult], serials: list[str]) -> bool:
        """A view with more codes than a case holds, or a code that is not one of ours, is
        acted on (held for) only when the next frame shows the same: a decoder's stray
        symbol in one frame is not a 25th item."""
        odd = len(serials) > self.capacity or any(
            not self._ours(r.data) for r in reads if r.data is not None)
        if not odd:
            self._odd_view = None
            return False
        view = frozenset(serials)
        if view == self._odd_view:
            return False
        self._odd_view = view
        log.info("odd case view, reading again", extra={
            "line": self.ctx.line.id, "station": self.station_id, "batch": self.ctx.batch_id,
            "codes": len(serials)})
        return True


class PalletStation(ContainerStation):
    """A reader sees each case arrive on the pallet; a full pallet gets its SSCC label.

    Only a case read arriving is put on the pallet being built, and its arrival is recorded
    in the database in the same step, so that a restart knows which sealed cases are on the
    open pallet and which are still on their way to it.
    """

    level: Level = "pallet"

    def __init__(self, ctx: StationContext, bench: LabelBench, station_id: str,
                 reader: CodeReader, cases_done: Callable[[], bool]) -> None:
        super().__init__(ctx, bench)
        self.station_id = station_id
        self.reader = reader
        self.cases_done = cases_done
        self.expected: list[str] = []
        self.collected: list[str] = []
        self.arrive_timeout = 10.0
        self.more = asyncio.Event()

    def case_sealed(self, serial: str) -> None:
        """The case station released ``serial`` towards the pallet."""
        if serial not in self.expected and serial not in self.collected:
            self.expected.append(serial)
            self.more.set()

    async def load_open_pallet(self) -> None:
        """After a restart: the sealed cases seen arriving are on the open pallet; the other
        sealed cases are awaited, in the order they were sealed."""
        found = await self.ctx.db.call(
            lambda store: aggregation.open_pallet(store.read(), self.ctx.batch_id))
        self.collected = found.arrived
        self.expected = found.awaited

    def carry_over(self, before: PalletStation) -> None:
        """Production starts again in the same controller (Stop, then Start): the pallet
        being built and the cases released towards it are still where they were, so this
        station goes on from what the one before it saw, not from a guess."""
        self.collected = list(before.collected)
        self.expected = list(before.expected)

    async def run(self) -> None:
        while True:
            await self.active.wait()
            failpoint("station.pallet")
            try:
                async with self.step():
                    await self._next()
            except Halted:
                continue

    async def _next(self) -> None:
        """One step: seal a full (or, at the end, the last) pallet, or read the next case."""
        last = self.ctx.ending() and self.cases_done() and not self.expected
        if self.collected and (len(self.collected) == self.capacity or last):
            try:
                await self.label_and_seal(self.collected,
                                          None if len(self.collected) == self.capacity
                                          else END_OF_BATCH)
            except StationHeld as exc:
                self.hold(str(exc))
                return
            self.collected = []
            return
        if last:
            self.finished.set()
            await asyncio.sleep(POLL_S)
            return
        if not self.expected:
            self.more.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_S):
                    await self.more.wait()
            return
        await self._arrival(self.expected[0])

    async def _arrival(self, waiting: str) -> None:
        """Trigger the pallet reader until ``waiting`` is seen on the pallet (recorded
        arrived), another case is (hold), or nothing is within the arrival time (hold).
        Should production halt meanwhile, it gives way between two triggers: the case is
        still awaited by whoever carries on."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.arrive_timeout
        while True:
            try:
                read = await self.reader.read()
            except DriverError:
                read = ReadResult(None)
            seen = self._serial(read)
            if seen is not None:
                break
            if loop.time() >= deadline:
                self.hold(f"case {waiting} did not reach the pallet reader")
                return
            if self.halting:
                return
            await asyncio.sleep(POLL_S)
        if seen != waiting:
            self.hold(f"pallet reader read case {seen}, expected {waiting}")
            return
        try:
            await self.ctx.db.call(aggregation.record_arrival, seen, station=self.station_id)
        except DomainError as exc:
            self.hold(f"case {seen} arrived but cannot go on the pallet: {exc}")
            return
        self.expected.remove(seen)
        self.collected.append(seen)


def _sealed_together(store: Store, serials: list[str], capacity: int) -> str | None:
    """The closed case holding exactly these items, if there is one."""
    if not serials:
        return None
    marks = ",".join("?" * len(serials))
    rows = store.read().execute(
        f"SELECT DISTINCT parent_id FROM codes WHERE serial IN ({marks})", serials).fetchall()
    if len(rows) != 1 or rows[0][0] is None:
        return None
    parent = store.read().execute(
        "SELECT c.serial, k.child_count, k.status FROM codes c JOIN containers k "
        "ON k.code_id = c.id WHERE c.id = ?", (rows[0][0],)).fetchone()
    if parent is None or parent[2] != "closed" or parent[1] != len(serials):
        return None
    return str(parent[0])
