"""A Videojet 1000-line CIJ printer speaking WSI, on a paced pty or TCP.

It prints the current content of its user field on every product detect, so a product that
arrives before the host refreshed the field gets the previous code again, as on a real line.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

from drivers.printers.wsi_codec import (
    Ack,
    Command,
    Framer,
    Reply,
    checksum,
    encode_ack,
    encode_reply,
)
from simulators.items import ItemStream
from simulators.transports import PacedPty, Sink, TcpSimulator, messages


class WsiSettings(BaseModel):
    """Behaviour and faults of the simulated CIJ printer."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    baud: int = Field(default=115200, ge=1200, le=1_000_000, description="pty pacing")
    identity: str = "Videojet 1620 (simulated) FW 3.2"
    print_on_update: bool = Field(
        default=False, description="a product arrives as soon as the field holds new data"
    )
    double_print_every: int = Field(default=0, ge=0, description="every Nth print is followed "
                                    "by a print-go with no new data (0 = never)")
    garbage_every: int = Field(default=0, ge=0, description="garbage before every Nth answer")
    nak_every: int = Field(default=0, ge=0, description="refuse every Nth update ('!')")
    bad_checksum_every: int = Field(default=0, ge=0, description="echo a wrong checksum")
    ink_out_after: int = Field(default=0, ge=0, description="ink core empty after N prints")
    disconnect_after: int = Field(default=0, ge=0, description="drop the link after N prints")
    ack_delay_ms: int = Field(default=0, ge=0, le=5000)
    split_writes: bool = Field(default=False, description="send every answer in two parts")
    noisy_error_reply: int = Field(default=0, ge=0,
                                   description="answer the next N E queries with a noisy line")


FRAME_BYTES = frozenset(range(0x20, 0x80)) | {0x0A}  # PROTOCOLS §1: 0x20-0x7F and LF
FAULT_INK = 0
FAULT_JET = 5


class WsiPrinterSim(TcpSimulator):
    """The printer's state; serve it with :meth:`serve_pty` or :meth:`serve_tcp`."""

    def __init__(self, settings: WsiSettings | None = None,
                 items: ItemStream | None = None) -> None:
        self.settings = settings or WsiSettings()
        self.items = items or ItemStream()
        self.rng = random.Random(self.settings.seed)
        self.message: str | None = None
        self.fields: dict[str, str] = {}
        self.print_count = 0
        self.product_count = 0
        self.enabled = False
        self.fault_bits = 0
        self.jet_running = True
        self.answers = 0
        self.updates = 0
        self._sink: Sink | None = None

    # --- the physical side ---
    def product_detect(self) -> None:
        """A product passed the photo-eye: print the field on it, if printing is on."""
        self.product_count += 1
        if not self.enabled or self.fault_bits or self.message is None:
            return
        code = self.fields.get("1") or None
        self.items.arrive(code)
        self.print_count += 1
        s = self.settings
        if s.ink_out_after and self.print_count >= s.ink_out_after:
            self.fault_bits |= 1 << FAULT_INK
        if s.disconnect_after and self.print_count == s.disconnect_after and self._sink:
            self._sink.cut()
        if s.double_print_every and self.print_count % s.double_print_every == 0:
            self.product_count += 1
            self.items.arrive(code)
            self.print_count += 1

    def raise_fault(self, bit: int) -> None:
        self.fault_bits |= 1 << bit

    def clear_faults(self) -> None:
        self.fault_bits = 0

    # --- the wire ---
    async def handle(self, reader: asyncio.StreamReader, sink: Sink) -> None:
        self._sink = sink
        framer = Framer("printer")
        async for message in messages(reader, framer):
            if isinstance(message, Command):
                await self._answer(message, sink)

    async def _answer(self, cmd: Command, sink: Sink) -> None:
        s = self.settings
        self.answers += 1
        accepted, reply, after = self._execute(cmd)
        sum_ = checksum(cmd.body)
        if s.bad_checksum_every and self.answers % s.bad_checksum_every == 0:
            sum_ = (sum_ + 1) & 0xFF
        out = b""
        if s.garbage_every and self.answers % s.garbage_every == 0:
            out += bytes(self.rng.choice(b"#%&*~?") for _ in range(3))
        out += encode_ack(Ack(accepted, sum_))
        if accepted and reply is not None:
            out += encode_reply(Reply(reply))
        if s.ack_delay_ms:
            await asyncio.sleep(s.ack_delay_ms / 1000)
        await sink.write(out)
        if after is not None:
            after()

    def _execute(self, cmd: Command) -> tuple[bool, bytes | None, Callable[[], None] | None]:
        t, data = cmd.type, cmd.data
        if not t or any(b not in FRAME_BYTES for b in cmd.body):
            return False, None, None  # no command, or bytes the protocol does not carry
        alarm = 4 if self.fault_bits else 1
        if t == "M":
            self.message = data.decode("ascii")
            return True, None, None
        if t == "U":
            field, _, value = data.partition(b"\n")
            if not field or len(value) > 50:
                return False, None, None
            self.updates += 1
            if self.settings.nak_every and self.updates % self.settings.nak_every == 0:
                return False, None, None
            self.fields[field.decode()] = value.decode("ascii")
            return True, None, self.product_detect if self.settings.print_on_update else None
        if t == "D":
            self.fields.pop(data.decode(), None)
            return True, None, None
        if t == "Q":
            return True, (self.message or "").encode(), None
        if t == "H":
            return True, self.settings.identity.encode(), None
        if t == "E":
            if self.settings.noisy_error_reply:
                self.settings = self.settings.model_copy(
                    update={"noisy_error_reply": self.settings.noisy_error_reply - 1})
                return True, b"0000Z0000000" + f"{alarm:X}".encode(), None
            return True, f"{self.fault_bits:012X}{alarm:X}".encode(), None
        if t == "GA":
            return True, f"{self.print_count:010d}".encode(), None
        if t == "GB":
            return True, f"{self.product_count:010d}".encode(), None
        if t in ("RA", "RB"):
            if t == "RA":
                self.print_count = 0
            else:
                self.product_count = 0
            return True, None, None
        if t == "O1":
            if self.fault_bits or not self.jet_running:
                return False, None, None
            self.enabled = True
            return True, None, None
        if t == "O0":
            self.enabled = False
            return True, None, None
        if t == "K":
            self.jet_running = False
            self.enabled = False
            self.fault_bits |= 1 << FAULT_JET
            return True, None, None
        if t == "Z":
            return len(data) == 13, None, None
        return False, None, None

    async def serve_pty(self) -> str:
        """Listen on a new pty paced at the configured baud; returns the device path."""
        self.listener = PacedPty(self.handle, self.settings.baud)
        await self.listener.start()
        return self.listener.where
