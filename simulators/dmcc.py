"""A Cognex DataMan reader speaking DMCC on TCP; reads the item in front of it.

Faults (no-read, misread, duplicate, late result, low grade, garbage, disconnect) are drawn
from a seeded generator, so a scenario repeats exactly.
"""

from __future__ import annotations

import asyncio
import base64
import random

from pydantic import Field

from drivers.readers.dmcc_codec import (
    BAD_CHECKSUM,
    INVALID_COMMAND,
    INVALID_PARAMETER,
    OK,
    READ,
    Command,
    Framer,
    Response,
    encode_response,
    grade_block,
)
from simulators.items import ItemStream
from simulators.reading import Rate, ReaderFaults, what_is_read
from simulators.transports import Sink, TcpSimulator, messages


class DmccSettings(ReaderFaults):
    """Behaviour and faults of the simulated DataMan reader."""

    noread_string: str = "NOREAD"
    grade: str = Field(default="A", pattern="^[ABCDF]$")
    send_grade: bool = True
    low_grade_rate: Rate = Field(default=0.0, ge=0, le=1, description="grade D instead")
    late_rate: Rate = Field(default=0.0, ge=0, le=1, description="result after late_ms")
    late_ms: int = Field(default=1500, ge=0, le=60_000)
    base64_data: bool = Field(default=False,
                              description="extended-mode read data in base64 (older firmware)")


class DmccReaderSim(TcpSimulator):
    """The reader's state, served on TCP."""

    def __init__(self, settings: DmccSettings | None = None,
                 items: ItemStream | None = None) -> None:
        self.settings = settings or DmccSettings()
        self.items = items or ItemStream()
        self.rng = random.Random(self.settings.seed)
        self.extended = False
        self.reads = 0
        self.results: list[str] = []

    async def handle(self, reader: asyncio.StreamReader, sink: Sink) -> None:
        framer = Framer("reader")
        async for message in messages(reader, framer):
            assert isinstance(message, Command)
            await self._execute(message, sink)

    async def _reply(self, sink: Sink, cmd: Command, status: int, payload: str = "") -> None:
        """An extended response echoes the command's option block (checksum and id)."""
        if self.extended:
            await sink.write(encode_response(Response(payload, status, cmd.id, cmd.checksum)))

    async def _execute(self, cmd: Command, sink: Sink) -> None:
        if not cmd.checksum_ok:
            await self._reply(sink, cmd, BAD_CHECKSUM)
            return
        words = cmd.text.split()
        upper = [w.upper() for w in words]
        if upper[:2] == ["SET", "COM.DMCC-RESPONSE"] and len(words) == 3:
            if words[2] not in ("0", "1"):
                await self._reply(sink, cmd, INVALID_PARAMETER)
                return
            self.extended = words[2] == "1"
            await self._reply(sink, cmd, OK)
        elif upper == ["GET", "DEVICE.TYPE"]:
            await self._reply(sink, cmd, OK, "DataMan 375 (simulated)")
        elif upper == ["TRIGGER", "ON"]:
            await self._reply(sink, cmd, OK)
            await self._trigger(sink, cmd)
        elif upper == ["TRIGGER", "OFF"]:
            await self._reply(sink, cmd, OK)
        else:
            await self._reply(sink, cmd, INVALID_COMMAND)

    async def _trigger(self, sink: Sink, trigger: Command) -> None:
        s, rng = self.settings, self.rng
        self.reads += 1
        read = what_is_read(self.items, s.name, rng, s.noread_rate, s.misread_rate,
                            s.repeat_rate)
        payload = s.noread_string if read is None else read
        if read is not None and s.send_grade:
            grade = "D" if rng.random() < s.low_grade_rate else s.grade
            value = "ABCDF".index(grade)
            payload += grade_block(grade, {"SC": 4 - value if grade != "A" else 4})
        self.results.append(payload)
        if self.extended and s.base64_data:
            payload = base64.b64encode(payload.encode("latin-1")).decode("ascii")
        line = encode_response(Response(payload, READ, trigger.id, trigger.checksum)
                               if self.extended else Response(payload))
        if rng.random() < s.garbage_rate:
            await sink.write(b"\x01\x02garbage\r\n")
        if rng.random() < s.late_rate:
            asyncio.get_running_loop().call_later(s.late_ms / 1000, sink.post, line)
        else:
            await sink.write(line)
            if rng.random() < s.duplicate_rate:
                await sink.write(line)
        if s.disconnect_after and self.reads >= s.disconnect_after:
            sink.cut()
