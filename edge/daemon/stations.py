"""What case and pallet stations share: read the children in front of the station, check
them, print the container's label, read the label back, and seal — or hold with an alarm,
packing nothing — in steps a halt of production never cuts.

The case station (:mod:`edge.daemon.case_station`) sees a whole open case in one frame; the
pallet station (:mod:`edge.daemon.pallet_station`) reads each case as it arrives. At the
end of a batch the last container may be partial, sealed with a reason. The label printer
and the reader that checks labels may serve both stations; a :class:`LabelBench` lets one
station use them at a time.
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
from edge.daemon.signals import LineCounters, LineOutputs
from edge.domain import flow, station_packing
from edge.domain.errors import DomainError, InvalidPayload
from edge.domain.lifecycle import LEVEL_NUMBER, Reason
from edge.domain.payloads import BatchLabel, PayloadCodec
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

    def __init__(self, printer: LabelPrinter, reader: CodeReader, dpi: int = 203) -> None:
        self.printer = printer
        self.reader = reader
        self.dpi = dpi
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
    counters: LineCounters
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
        dpi = self.bench.dpi
        if isinstance(fmt, SsccFormat):
            return payload, sscc_label(payload[2:], text, dpi=dpi)
        if fmt.symbology == "datamatrix":
            return payload, datamatrix_label(payload, text, dpi=dpi)
        return payload, qr_label(payload, text, dpi=dpi)

    async def label_and_seal(self, children: list[str], partial_reason: str | None) -> str:
        """Print the label, read it back, seal: the container's serial, or StationHeld."""
        db = self.ctx.db
        level_no = LEVEL_NUMBER[self.level]
        problems = await db.call(lambda store: station_packing.check_children(
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
            await db.call(station_packing.seal, code.id, children, operator="line",
                          partial_reason=partial_reason)
        except DomainError as exc:
            await db.call(flow.record_verdicts, self.ctx.batch_id, self.level,
                          [flow.Verdict(code.id, Reason.NO_VERDICT)])
            raise StationHeld(f"{self.level} {code.serial} not sealed: {exc}") from None
        self.sealed += 1
        self.ctx.counters.sealed(self.level)
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
