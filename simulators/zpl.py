"""A ZPL label printer on TCP (port 9100 on a real one): keeps what it printed.

Each printed label's first symbol goes onto the label item stream, where a label reader
(a DMCC simulator on the same stream) reads it, so a roll-change reprint shows up as the
wrong label on the case, as on a real line.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from drivers.labels.zpl_codec import (
    ERROR_BITS,
    HostStatus,
    Symbol,
    encode_hqes,
    encode_hs,
    parse_format,
)
from simulators.items import ItemStream
from simulators.transports import Sink, TcpSimulator

COMMAND_STARTS = (b"^XA", b"~HQES", b"~HS", b"! U1 getvar")


class ZplSettings(BaseModel):
    """Behaviour and faults of the simulated label printer."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    print_ms: int = Field(default=5, ge=0, le=10_000, description="time to print one label")
    paper_out_after: int = Field(default=0, ge=0)
    ribbon_out_after: int = Field(default=0, ge=0)
    head_open: bool = False
    paused: bool = False
    not_printed_every: int = Field(default=0, ge=0, description="every Nth label silently lost")
    roll_change_at: int = Field(default=0, ge=0,
                                description="at label N the previous label is printed instead")
    buffer_full: bool = False
    split_writes: bool = Field(default=False, description="send every answer in two parts")


@dataclass
class PrintedLabel:
    """A label that came out of the printer."""

    symbols: list[Symbol]
    texts: list[str]


class ZplPrinterSim(TcpSimulator):
    """The label printer's state, served on TCP."""

    def __init__(self, settings: ZplSettings | None = None,
                 labels: ItemStream | None = None) -> None:
        self.settings = settings or ZplSettings()
        self.labels = labels or ItemStream()
        self.rng = random.Random(self.settings.seed)
        self.odometer = 0
        self.received = 0
        self.printed: list[PrintedLabel] = []
        self.garbage = 0
        self.errors = 0

    def _error_bits(self) -> int:
        s = self.settings
        bits = 0
        if s.paper_out_after and self.odometer >= s.paper_out_after:
            bits |= 0x01
        if s.ribbon_out_after and self.odometer >= s.ribbon_out_after:
            bits |= 0x02
        if s.head_open:
            bits |= 0x04
        return bits

    def errors_now(self) -> list[str]:
        return [name for bit, name in ERROR_BITS.items() if self._error_bits() & bit]

    async def handle(self, reader: asyncio.StreamReader, sink: Sink) -> None:
        buf = bytearray()
        while True:
            data = await reader.read(65536)
            if not data:
                return
            buf += data
            await self._consume(buf, sink)

    async def _consume(self, buf: bytearray, sink: Sink) -> None:
        while buf:
            if buf.startswith(b"~HQES"):
                del buf[:5]
                await sink.write(encode_hqes(self._error_bits(), 0))
            elif buf.startswith(b"~HS"):
                del buf[:3]
                s = self.settings
                bits = self._error_bits()
                await sink.write(encode_hs(HostStatus(
                    paper_out=bool(bits & 0x01), paused=s.paused, buffer_full=s.buffer_full,
                    head_up=bool(bits & 0x04), ribbon_out=bool(bits & 0x02),
                    labels_remaining=0)))
            elif buf.startswith(b"! U1 getvar"):
                end = buf.find(b"\n")
                if end < 0:
                    return
                line = bytes(buf[:end]).decode("ascii", "replace")
                del buf[: end + 1]
                if "odometer.total_label_count" in line:
                    await sink.write(f'"{self.odometer}"'.encode())
                else:
                    await sink.write(b'"?"')
            elif buf.startswith(b"^XA"):
                end = buf.find(b"^XZ")
                if end < 0:
                    return
                fmt = bytes(buf[: end + 3]).decode("ascii", "replace")
                del buf[: end + 3]
                await self._print(fmt)
            elif any(start.startswith(bytes(buf)) for start in COMMAND_STARTS):
                return  # the start of a command: wait for the rest
            else:
                del buf[:1]
                self.garbage += 1

    async def _print(self, fmt: str) -> None:
        self.received += 1
        s = self.settings
        if self._error_bits() or s.paused or s.buffer_full:
            self.errors += 1
            return
        symbols, texts, quantity = parse_format(fmt)
        if s.print_ms:
            await asyncio.sleep(s.print_ms / 1000)
        if s.not_printed_every and self.received % s.not_printed_every == 0:
            return
        label = PrintedLabel(symbols, texts)
        if s.roll_change_at and self.received == s.roll_change_at and self.printed:
            label = self.printed[-1]  # the roll change reprints the last label instead
        for _ in range(quantity):
            self.printed.append(label)
            self.labels.arrive(label.symbols[0].data if label.symbols else None)
            self.odometer += 1
