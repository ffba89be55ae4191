"""Videojet 1000-line CIJ printer over WSI: one code in the field at a time.

WSI has no print queue: the host writes the next code into the message's user field and
watches the print counter (``GA``). Each count is one item. Counts that arrive before the
field was refreshed printed the previous code again (the double-print hazard): they are
reported as :class:`DoublePrint`. At most one code is ever at risk on a lost link: the one
in the field, reported as :class:`BufferLost`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import TypeVar

from drivers.errors import CommandRefused, DeviceFault, DeviceTimeout, ProtocolError
from drivers.interfaces import (
    DoublePrint,
    FaultCleared,
    FaultRaised,
    Printed,
    PrinterEvent,
    PrinterStatus,
)
from drivers.link import StreamDevice
from drivers.printers.base import HostQueue, PrinterEvents
from drivers.printers.wsi_codec import LF, Ack, Command, Framer, Reply, checksum, encode_command
from drivers.transport import Opener, opener_for, until_one_ends
from line_config.devices import WsiPrinter as WsiConfig

M = TypeVar("M", Ack, Reply)

# Bits of the six error bytes returned by ``E`` (ours: one bit per fault of PROTOCOLS.md §1).
FAULT_BITS: dict[int, tuple[str, str]] = {
    0: ("INK_EMPTY", "ink core empty"),
    1: ("EHT_TRIP", "EHT trip"),
    2: ("GUTTER", "gutter fault"),
    3: ("CHARGE", "charge error"),
    4: ("VISCOSITY", "viscosity out of range"),
    5: ("JET_STOPPED", "jet stopped"),
}


def faults_from_bits(hex_bytes: str) -> list[tuple[str, str]]:
    """Decode the ``E`` reply's error bits into (code, text) pairs; anything but twelve hex
    digits is a ProtocolError (a noisy line), never a ValueError."""
    if len(hex_bytes) != 12 or not all(c in HEX_DIGITS for c in hex_bytes):
        raise ProtocolError(f"E reply is not 6 hex bytes: {hex_bytes!r}")
    value = int(hex_bytes, 16)
    return [fault for bit, fault in FAULT_BITS.items() if value >> bit & 1]


HEX_DIGITS = frozenset("0123456789ABCDEFabcdef")


def counter(reply: bytes) -> int:
    """A ``GA``/``GB`` counter reply (10 digits); a malformed one is a ProtocolError."""
    text = reply.decode("ascii", "replace")
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        raise ProtocolError(f"counter reply is not up to 10 digits: {text!r}")
    return int(text)


class WsiPrinter(StreamDevice):
    """Driver of one CIJ head; see the module docstring for how prints are counted."""

    family = "printer"

    def __init__(self, config: WsiConfig, opener: Opener | None = None,
                 reply_timeout: float = 1.0) -> None:
        super().__init__(config, opener or opener_for(config.transport))
        self.config = config
        self.reply_timeout = reply_timeout
        self.event_stream = PrinterEvents()
        self.queue = HostQueue()
        self.framer = Framer("host")
        self._inbox: asyncio.Queue[Ack | Reply] = asyncio.Queue()
        self._lock = asyncio.Lock()
        self.in_field: str | None = None
        self.last_printed: str | None = None
        self.count = 0
        self.identity = ""
        self.faults: list[tuple[str, str]] = []
        self.enabled = False
        self.bytes_sent = 0

    # --- link ---
    async def session(self) -> None:
        worker = asyncio.create_task(self._print_loop(), name=f"{self.name}-fields")
        pump = asyncio.create_task(self._read_loop(), name=f"{self.name}-reader")
        await until_one_ends(worker, pump)

    async def _read_loop(self) -> None:
        while True:
            data = await self.received()
            for message in self.framer.feed(data):
                if isinstance(message, Ack | Reply):
                    self._inbox.put_nowait(message)

    async def on_connected(self) -> None:
        self._inbox = asyncio.Queue()
        self.framer = Framer("host")
        pump = asyncio.create_task(self._read_loop(), name=f"{self.name}-setup-reader")
        try:
            self.identity = (await self._query(Command("H"))).decode("ascii", "replace")
            self.count = counter(await self._query(Command("GA")))
            await self._command(Command("M", self.config.message.encode("ascii")))
        finally:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
        self.in_field = None

    async def on_disconnected(self, why: str) -> None:
        if self.in_field is not None:
            self.event_stream.lost([self.in_field], f"link lost: {why}")
            self.in_field = None

    # --- commands ---
    async def _pipeline(self, commands: Sequence[tuple[Command, bool]]) -> list[bytes]:
        """Send commands in one write; check every echo; return each query's reply."""
        async with self._lock:
            frames = b"".join(encode_command(cmd) for cmd, _ in commands)
            self.write(frames)
            self.bytes_sent += len(frames)
            replies: list[bytes] = []
            problem: Exception | None = None
            # Read every answer before raising, so none is left to be mistaken for the next.
            for cmd, want_reply in commands:
                ack = await self._next(Ack)
                if ack.checksum != checksum(cmd.body):
                    problem = problem or ProtocolError(
                        f"{self.name}: printer heard {cmd.type!r} wrong (checksum "
                        f"{ack.checksum:02X}, expected {checksum(cmd.body):02X})"
                    )
                if not ack.accepted:
                    problem = problem or CommandRefused(
                        f"{self.name}: printer refused {cmd.type!r}")
                    continue
                if want_reply:
                    replies.append((await self._next(Reply)).data)
            if problem is not None:
                raise problem
            return replies

    async def _next(self, kind: type[M]) -> M:
        while True:
            try:
                async with asyncio.timeout(self.reply_timeout):
                    message = await self._inbox.get()
            except TimeoutError:
                raise DeviceTimeout(f"{self.name}: no answer within {self.reply_timeout}s") \
                    from None
            if isinstance(message, kind):
                return message
            self.framer.garbage += 1  # an answer nobody asked for: counted, skipped

    async def _command(self, cmd: Command) -> None:
        await self._pipeline([(cmd, False)])

    async def _query(self, cmd: Command) -> bytes:
        return (await self._pipeline([(cmd, True)]))[0]

    # --- printing ---
    async def _print_loop(self) -> None:
        poll = self.config.counter_poll_ms / 1000
        idle_since_faults = 0.0
        while True:
            if self.in_field is None and self.enabled and self.queue.codes:
                code = self.queue.take(1)[0]
                data = self.config.field.encode("ascii") + LF + code.encode("ascii")
                self.in_field = code
                try:
                    _, = await self._pipeline([(Command("U", data), False), (Command("GA"), True)])
                except CommandRefused:
                    # The field kept its old content: this code never reached the printer.
                    self.in_field = None
                    self.queue.codes.appendleft(code)
                    await asyncio.sleep(poll)
                    continue
                self._account(counter(_))
                continue
            if self.in_field is None and not (self.enabled and self.queue.codes):
                await asyncio.sleep(poll)
            now = counter(await self._query(Command("GA")))
            if now != self.count:
                self._account(now)
                continue
            idle_since_faults += poll
            if idle_since_faults >= 0.25:
                idle_since_faults = 0.0
                await self._check_faults()
            await asyncio.sleep(poll)

    def _account(self, now: int) -> None:
        """Counter increments as events: the first after an update is the new code, any
        further one is a print-go that found no new data (the previous code again)."""
        delta = now - self.count
        if delta < 0:
            raise ProtocolError(f"{self.name}: print counter went back from {self.count} to {now}")
        self.count = now
        for _ in range(delta):
            if self.in_field is not None:
                self.event_stream.emit(Printed(self.in_field))
                self.last_printed = self.in_field
                self.in_field = None
            elif self.last_printed is not None:
                self.event_stream.emit(DoublePrint(self.last_printed))

    async def _check_faults(self) -> None:
        reply = (await self._query(Command("E"))).decode("ascii", "replace")
        faults = faults_from_bits(reply[:12])
        if faults and faults != self.faults:
            for code, text in faults:
                self.event_stream.emit(FaultRaised(code, text))
        elif not faults and self.faults:
            self.event_stream.emit(FaultCleared())
        self.faults = faults

    # --- Printer interface ---
    @property
    def configured_job(self) -> str | None:
        return self.config.message

    async def clear_faults(self) -> None:
        """The protocol has no fault reset: faults clear at the printer once fixed; read
        them again so a fixed one is seen as cleared."""
        await self._check_faults()

    async def select_job(self, name: str) -> None:
        await self._command(Command("M", name.encode("ascii")))

    async def start(self) -> None:
        try:
            await self._command(Command("O1"))
        except CommandRefused:
            await self._check_faults()
            detail = ", ".join(t for _, t in self.faults) or "jet not running"
            raise DeviceFault("PRINT_ON_REFUSED", f"{self.name} refused print-on: {detail}") \
                from None
        self.enabled = True

    async def stop(self) -> None:
        self.enabled = False
        await self._command(Command("O0"))

    async def clear(self) -> None:
        lost = self.queue.drain()
        if self.in_field is not None:
            lost.insert(0, self.in_field)
            self.in_field = None
            await self._command(Command("D", self.config.field.encode("ascii")))
        self.event_stream.lost(lost, "buffer cleared")

    async def send(self, codes: Sequence[str]) -> None:
        for code in codes:
            if not code or len(code) > 50 or not code.isascii() or not code.isprintable():
                raise ValueError(f"WSI fields hold 1-50 printable ASCII characters: {code!r}")
        self.queue.extend(codes)

    @property
    def pending(self) -> int:
        return len(self.queue.codes) + (1 if self.in_field is not None else 0)

    def events(self) -> AsyncIterator[PrinterEvent]:
        return self.event_stream.__aiter__()

    async def status(self) -> PrinterStatus:
        if self.writer is None:
            return PrinterStatus(False, "offline", None, self.pending, self.count)
        job = (await self._query(Command("Q"))).decode("ascii", "replace")
        await self._check_faults()
        state = "fault" if self.faults else ("running" if self.enabled else "stopped")
        return PrinterStatus(True, state, job, self.pending, self.count,
                             tuple(c for c, _ in self.faults), self.identity)
