"""Queued TIJ/TTO printer over the CLARiTY text protocol (TCP).

The printer holds a serialization buffer. The driver keeps it between a low and a high
watermark, accounts every ``PRC`` (print complete) to the oldest code it sent, and
reconciles with ``SLR`` (last record index printed): after a reconnect, records up to SLR
were printed (their PRCs may have been lost), the rest are cleared and reported lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Sequence

from drivers.errors import CommandRefused, ConnectionLost, DeviceFault, DeviceTimeout, ProtocolError
from drivers.interfaces import FaultCleared, FaultRaised, Printed, PrinterEvent, PrinterStatus
from drivers.link import StreamDevice
from drivers.printers.base import HostQueue, PrinterEvents
from drivers.printers.clarity_codec import Framer, Message, encode
from drivers.transport import Opener, opener_for, until_one_ends
from line_config.devices import ClarityPrinter as ClarityConfig

log = logging.getLogger("codeline.drivers.clarity")

STATES = {0: "shutdown", 1: "starting", 2: "shutting down", 3: "running", 4: "offline"}
SDO_ROWS = 100


class ClarityPrinter(StreamDevice):
    """Driver of one CLARiTY printer; see the module docstring."""

    family = "printer"

    def __init__(self, config: ClarityConfig, opener: Opener | None = None,
                 reply_timeout: float = 2.0) -> None:
        super().__init__(config, opener or opener_for(config.transport))
        self.config = config
        self.reply_timeout = reply_timeout
        self.event_stream = PrinterEvents()
        self.queue = HostQueue()
        self.framer = Framer()
        self._replies: asyncio.Queue[Message] = asyncio.Queue()
        self._lock = asyncio.Lock()
        self.in_device: deque[tuple[int, str]] = deque()  # (record index, code), oldest first
        self.next_index = 0
        self.last_accounted = 0
        self.total_printed = 0
        self.faults: list[tuple[str, str]] = []
        self.state = "offline"
        self.job: str | None = None
        self.want_running = False
        self._refill = asyncio.Event()
        self._faults_changed = asyncio.Event()
        self._chunk = SDO_ROWS
        self._accounting = False

    # --- link ---
    async def on_connected(self) -> None:
        self._replies = asyncio.Queue()
        self.framer = Framer()
        self.start_pump(self._read_loop())
        try:
            await self._set_up()
        except BaseException:
            await self.stop_pump()
            raise

    async def _set_up(self) -> None:
        # Until the buffer is settled, PRCs are ignored: SLR after SCB is the final word.
        self._accounting = False
        for code in ("PRC", "OUT", "ERS", "STS"):
            await self._ok(Message("SNO", (code, "1")))
        await self._ok(Message("SHO", (self.config.field,)))
        await self._ok(Message("SCB"))  # nothing more prints from what was queued before
        last_printed = _index(await self._ask(Message("SLR"), "SLR"))
        self._reconcile(last_printed)
        if self.in_device:
            lost = [code for _, code in self.in_device]
            self.in_device.clear()
            self.event_stream.lost(lost, "buffer cleared after reconnect")
        # The printer numbers records for the whole session, across clears: ask where it is.
        self.next_index = _index(await self._ask(Message("SNI"), "SNI"))
        self.last_accounted = last_printed
        self._accounting = True
        await self._refresh_state()
        await self._refresh_faults()
        if self.job is None or self.job != self.config.job:
            await self.select_job(self.config.job)
        if self.want_running:
            try:
                await self._ok(Message("SST", ("3",)))
            except CommandRefused:
                # Faulted while we were away: stay connected, the fault is reported.
                log.warning("printer will not run after reconnect", extra={"device": self.name})
        self._refill.set()

    async def on_disconnected(self, why: str) -> None:
        await self.stop_pump()
        self.state = "offline"

    async def session(self) -> None:
        assert self._pump_task is not None
        feeder = asyncio.create_task(self._feed_loop(), name=f"{self.name}-feeder")
        watcher = asyncio.create_task(self._fault_loop(), name=f"{self.name}-faults")
        await until_one_ends(self._pump_task, feeder, watcher)

    async def _fault_loop(self) -> None:
        while True:
            await self._faults_changed.wait()
            self._faults_changed.clear()
            await self._refresh_faults()

    async def _read_loop(self) -> None:
        while True:
            data = await self.received(65536)
            for message in self.framer.feed(data):
                if message.is_async:
                    self._notify(message)
                else:
                    self._replies.put_nowait(message)

    # --- commands ---
    async def _ask(self, message: Message, expect: str | None = None) -> Message:
        async with self._lock:
            self.write(encode(message))
            try:
                async with asyncio.timeout(self.reply_timeout):
                    reply = await self._replies.get()
            except TimeoutError:
                raise DeviceTimeout(f"{self.name}: no answer to {message.word}") from None
        if reply.word == "ERR":
            raise CommandRefused(f"{self.name}: printer refused {message.word}")
        if expect is not None and reply.word != expect:
            raise ProtocolError(f"{self.name}: {message.word} answered {reply.word}")
        return reply

    async def _ok(self, message: Message) -> None:
        await self._ask(message, "ACK")

    # --- notifications ---
    def _notify(self, message: Message) -> None:
        word, fields = message.word, message.fields
        if word == "PRC":
            if self._accounting:
                self._account_one()
        elif word == "OUT" and fields and fields[0] in ("QLOW", "QEMPTY"):
            self._refill.set()
        elif word == "ERS":
            self._faults_changed.set()
        elif word == "STS" and fields and fields[0].isascii() and fields[0].isdigit():
            self.state = STATES.get(int(fields[0]), "unknown")

    def _account_one(self) -> None:
        if not self.in_device:
            log.warning("print complete with no record outstanding", extra={"device": self.name})
            return
        index, code = self.in_device.popleft()
        self.last_accounted = index
        self.total_printed += 1
        self.event_stream.emit(Printed(code))
        if len(self.in_device) < self.config.low_water:
            self._refill.set()

    def _reconcile(self, last_printed: int) -> None:
        """Account records the printer says it printed whose PRC never reached us."""
        missed = 0
        while self.in_device and self.in_device[0][0] <= last_printed:
            self._account_one()
            missed += 1
        if missed:
            log.warning("accounted %d prints from SLR whose PRC was lost", missed,
                        extra={"device": self.name})

    async def _refresh_faults(self) -> None:
        try:
            reply = await self._ask(Message("GFT"), "FLT")
        except (ConnectionLost, DeviceTimeout, CommandRefused, ProtocolError):
            return
        first = reply.fields[0] if reply.fields else ""
        count = int(first) if _digits(first) else 0
        faults = [(reply.fields[1 + 3 * i], reply.fields[3 + 3 * i]) for i in range(count)
                  if len(reply.fields) >= 4 + 3 * i]
        if faults and faults != self.faults:
            for code, text in faults:
                self.event_stream.emit(FaultRaised(code, text))
        elif not faults and self.faults:
            self.event_stream.emit(FaultCleared())
        self.faults = faults

    async def _refresh_state(self) -> None:
        sts = await self._ask(Message("GST"), "STS")
        first = sts.fields[0] if sts.fields else ""
        self.state = STATES.get(int(first), "unknown") if _digits(first) else "unknown"
        self.job = sts.fields[2] or None if len(sts.fields) > 2 else None

    # --- buffer ---
    async def _feed_loop(self) -> None:
        while True:
            await self._refill.wait()
            self._refill.clear()
            while self.queue.codes and len(self.in_device) < self.config.high_water:
                room = self.config.high_water - len(self.in_device)
                rows = self.queue.take(min(room, self._chunk))
                # Booked before sending: a PRC for the first row may arrive right behind the
                # SFS reply, before this coroutine runs again.
                first = self.next_index
                for code in rows:
                    self.in_device.append((self.next_index, code))
                    self.next_index += 1
                try:
                    await self._ask(Message("SDO", tuple(rows)), "SFS")
                except CommandRefused:
                    # Not taken (buffer full or busy): retry smaller, after a breath.
                    for _ in rows:
                        self.in_device.pop()
                    self.next_index = first
                    self.queue.codes.extendleft(reversed(rows))
                    self.queue.ready.set()
                    self._chunk = max(1, len(rows) // 2)
                    await asyncio.sleep(0.01)
                    continue
                # A lost link leaves the rows booked: the reconnect settles them by SLR.
                self._chunk = SDO_ROWS
            if self.queue.codes and len(self.in_device) < self.config.low_water:
                self._refill.set()

    # --- Printer interface ---
    async def select_job(self, name: str) -> None:
        await self._ok(Message("SEL", (name,)))
        self.job = name

    async def start(self) -> None:
        self.want_running = True
        try:
            await self._ok(Message("SST", ("3",)))
        except CommandRefused:
            await self._refresh_faults()
            detail = ", ".join(t for _, t in self.faults) or "no job selected"
            raise DeviceFault("START_REFUSED", f"{self.name} refused to run: {detail}") from None
        self.state = "running"

    async def stop(self) -> None:
        self.want_running = False
        await self._ok(Message("SST", ("4",)))
        self.state = "offline"

    async def clear(self) -> None:
        lost = [code for _, code in self.in_device] + self.queue.drain()
        await self._ok(Message("SCB"))
        self.in_device.clear()
        self.event_stream.lost(lost, "buffer cleared")

    @property
    def configured_job(self) -> str | None:
        return self.config.job

    async def clear_faults(self) -> None:
        await self._ok(Message("CAF"))
        await self._refresh_faults()

    async def send(self, codes: Sequence[str]) -> None:
        for code in codes:
            if not code or "|" in code or "\r" in code or not code.isascii():
                raise ValueError(f"a CLARiTY record is ASCII without '|' or CR: {code!r}")
        self.queue.extend(codes)
        self._refill.set()

    @property
    def pending(self) -> int:
        return len(self.queue.codes) + len(self.in_device)

    def events(self) -> AsyncIterator[PrinterEvent]:
        return self.event_stream.__aiter__()

    async def reconcile(self) -> None:
        """Check the accounting against ``SLR`` now (the runtime calls it when idle)."""
        last = _index(await self._ask(Message("SLR"), "SLR"))
        self._reconcile(last)

    async def status(self) -> PrinterStatus:
        if self.writer is None:
            return PrinterStatus(False, "offline", self.job, self.pending, self.total_printed)
        await self._refresh_state()
        await self._refresh_faults()
        return PrinterStatus(True, "fault" if self.faults else self.state, self.job,
                             self.pending, self.total_printed, tuple(c for c, _ in self.faults))


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _index(reply: Message) -> int:
    """The record index an ``SLR``/``SNI`` reply carries; a malformed one is a
    ProtocolError (the link is recycled), never a ValueError."""
    if not reply.fields or not _digits(reply.fields[0]) or len(reply.fields[0]) > 12:
        raise ProtocolError(f"{reply.word} reply without a record index: {reply.fields!r}")
    return int(reply.fields[0])
