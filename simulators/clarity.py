"""A CLARiTY printer with a serialization buffer, on TCP.

Products arrive at ``print_rate`` per second while it runs (or one per ``product_detect()``);
each prints the oldest record and sends ``PRC``. Faults come from the settings, never from
the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque

from pydantic import BaseModel, ConfigDict, Field

from drivers.printers.clarity_codec import Framer, Message, encode
from simulators.items import ItemStream
from simulators.transports import Sink, TcpSimulator, messages


class ClaritySettings(BaseModel):
    """Behaviour and faults of the simulated CLARiTY printer."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    print_rate: float = Field(default=0.0, ge=0, le=100_000,
                              description="products per second while running (0: manual)")
    max_records: int = Field(default=1000, ge=1, le=1_000_000)
    low_mark: int = Field(default=50, ge=0)
    high_mark: int = Field(default=800, ge=1)
    ribbon_out_after: int = Field(default=0, ge=0, description="ribbon out after N prints")
    head_fault_after: int = Field(default=0, ge=0, description="head fault after N prints")
    disconnect_after: int = Field(default=0, ge=0, description="drop the link after N prints")
    drop_prc_every: int = Field(default=0, ge=0, description="lose every Nth PRC message")
    garbage_every: int = Field(default=0, ge=0, description="garbage line before every Nth reply")
    err_every: int = Field(default=0, ge=0, description="answer ERR to every Nth SDO")
    ack_delay_ms: int = Field(default=0, ge=0, le=5000, description="slow ACK")
    split_writes: bool = Field(default=False, description="send every answer in two parts")
    malformed_slr: int = Field(default=0, ge=0,
                               description="answer the next N SLR queries with no number")


class ClarityPrinterSim(TcpSimulator):
    """The printer's state, served on TCP."""

    def __init__(self, settings: ClaritySettings | None = None,
                 items: ItemStream | None = None) -> None:
        self.settings = settings or ClaritySettings()
        self.items = items or ItemStream()
        self.rng = random.Random(self.settings.seed)
        self.state = 4
        self.job: str | None = None
        self.header: tuple[str, ...] = ()
        self.buffer: deque[tuple[int, str]] = deque()
        self.next_index = 1
        self.last_printed = 0
        self.batch_count = 0
        self.total_count = 0
        self.faults: list[tuple[str, str, str]] = []
        self.notify: set[str] = set()
        self.replies = 0
        self.sdo_count = 0
        self._sinks: list[Sink] = []
        self._products: asyncio.Task[None] | None = None

    # --- the physical side ---
    def product_detect(self) -> None:
        """A product passed the printer."""
        if self.state != 3 or self.faults:
            return
        if not self.buffer:
            self._fault("NODATA", "print go with an empty buffer", "1")
            return
        index, row = self.buffer.popleft()
        self.items.arrive(row)
        self.last_printed = index
        self.batch_count += 1
        self.total_count += 1
        s = self.settings
        if not (s.drop_prc_every and self.total_count % s.drop_prc_every == 0):
            self._broadcast(Message("PRC"), "PRC")
        depth = len(self.buffer)
        if depth == 0:
            self._broadcast(Message("OUT", ("QEMPTY",)), "OUT")
        elif depth == s.low_mark:
            self._broadcast(Message("OUT", ("QLOW",)), "OUT")
        if s.ribbon_out_after and self.total_count >= s.ribbon_out_after:
            self._fault("RIBBON", "ribbon out", "0")
        if s.head_fault_after and self.total_count >= s.head_fault_after:
            self._fault("HEAD", "print head fault", "0")
        if s.disconnect_after and self.total_count == s.disconnect_after:
            for sink in list(self._sinks):
                sink.cut()

    def _fault(self, code: str, text: str, clearable: str) -> None:
        if all(f[0] != code for f in self.faults):
            self.faults.append((code, clearable, text))
            self._broadcast(Message("ERS", ("2",)), "ERS")

    def _broadcast(self, message: Message, kind: str) -> None:
        if kind in self.notify:
            data = encode(message)
            for sink in list(self._sinks):
                sink.post(data)

    async def _run_products(self) -> None:
        interval = 1 / self.settings.print_rate
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += interval
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self.product_detect()

    # --- the wire ---
    async def handle(self, reader: asyncio.StreamReader, sink: Sink) -> None:
        self._sinks.append(sink)
        framer = Framer()
        try:
            async for message in messages(reader, framer, 65536):
                reply = self._execute(message)
                self.replies += 1
                s = self.settings
                out = b""
                if s.garbage_every and self.replies % s.garbage_every == 0:
                    out += b"\x07#garbage#\r"
                out += encode(reply)
                if s.ack_delay_ms:
                    await asyncio.sleep(s.ack_delay_ms / 1000)
                await sink.write(out)
        finally:
            self._sinks.remove(sink)

    def _execute(self, m: Message) -> Message:
        ack, err = Message("ACK"), Message("ERR")
        f = m.fields
        if m.word == "SST" and f and f[0].isascii() and f[0].isdigit():
            target = int(f[0])
            if target == 3 and (self.job is None or self.faults):
                return err
            self.state = target
            self._broadcast(Message("STS", (str(target),)), "STS")
            return ack
        if m.word == "GST":
            error = "2" if self.faults else "0"
            return Message("STS", (str(self.state), error, self.job or "", str(self.batch_count),
                                   str(self.total_count)))
        if m.word == "SEL" and f:
            self.job = f[0]
            self.batch_count = 0
            return ack
        if m.word == "GJN":
            return Message("JOB", (self.job or "",))
        if m.word == "GFT":
            flat: list[str] = [str(len(self.faults))]
            for code, clearable, text in self.faults:
                flat += [code, clearable, text]
            return Message("FLT", tuple(flat))
        if m.word == "GWN":
            return Message("WRN", ("0",))
        if m.word == "CAF":
            self.faults = [x for x in self.faults if x[1] != "1"]
            return ack
        if m.word == "CAW":
            return ack
        if m.word == "SNO" and len(f) == 2:
            (self.notify.add if f[1] == "1" else self.notify.discard)(f[0])
            return ack
        if m.word == "DAN":
            self.notify.clear()
            return ack
        if m.word == "SHO":
            self.header = f
            return ack
        if m.word == "SDO":
            self.sdo_count += 1
            if self.settings.err_every and self.sdo_count % self.settings.err_every == 0:
                return err
            if len(self.buffer) + len(f) > self.settings.max_records:
                self._broadcast(Message("OUT", ("QFULL",)), "OUT")
                return err
            for row in f:
                self.buffer.append((self.next_index, row))
                self.next_index += 1
            if len(self.buffer) >= self.settings.high_mark:
                self._broadcast(Message("OUT", ("QHIGH",)), "OUT")
            free = (self.settings.max_records - len(self.buffer)) * 32
            return Message("SFS", (str(free),))
        if m.word == "SRC":
            return Message("SRC", (str(len(self.buffer)),))
        if m.word == "SNI":
            return Message("SNI", (str(self.buffer[0][0] if self.buffer else self.next_index),))
        if m.word == "SLR":
            if self.settings.malformed_slr:
                self.settings = self.settings.model_copy(
                    update={"malformed_slr": self.settings.malformed_slr - 1})
                return Message("SLR", ("x",))
            return Message("SLR", (str(self.last_printed),))
        if m.word == "SMR" and f and f[0].isascii() and f[0].isdigit():
            self.settings = self.settings.model_copy(update={"max_records": int(f[0])})
            return ack
        if m.word == "SGM":
            return Message("SGM", (str(self.settings.max_records),))
        if m.word == "SCB":
            self.buffer.clear()
            return ack
        return err

    async def on_started(self) -> None:
        if self.settings.print_rate > 0:
            self._products = asyncio.create_task(self._run_products(), name="clarity-products")

    async def on_stopping(self) -> None:
        if self._products is not None:
            self._products.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._products
            self._products = None
