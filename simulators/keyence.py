"""A Keyence SR reader on TCP: ``LON`` reads the item in front of it.

Faults (no-read, misread, duplicate, buffer overflow, garbage, disconnect) are drawn from a
seeded generator; ``LOFF`` can be refused with an error code.
"""

from __future__ import annotations

import asyncio
import random

from pydantic import Field

from drivers.readers.keyence_codec import Framer, ReadLine, Reply, encode_read, encode_reply
from simulators.items import ItemStream
from simulators.reading import Rate, ReaderFaults, what_is_read
from simulators.transports import Sink, TcpSimulator, messages


class KeyenceSettings(ReaderFaults):
    """Behaviour and faults of the simulated Keyence reader."""

    error_string: str = "ERROR"
    over_rate: Rate = Field(default=0.0, ge=0, le=1, description="OVER instead of the result")
    refuse_loff: bool = Field(default=False, description="answer LOFF with ER,LOFF,01")


class KeyenceReaderSim(TcpSimulator):
    """The reader's state, served on TCP."""

    def __init__(self, settings: KeyenceSettings | None = None,
                 items: ItemStream | None = None) -> None:
        self.settings = settings or KeyenceSettings()
        self.items = items or ItemStream()
        self.rng = random.Random(self.settings.seed)
        self.reads = 0
        self.results: list[str] = []

    async def handle(self, reader: asyncio.StreamReader, sink: Sink) -> None:
        framer = Framer("reader")
        async for command in messages(reader, framer):
            assert isinstance(command, str)
            await self._execute(command, sink)

    async def _execute(self, command: str, sink: Sink) -> None:
        if command == "LON":
            await sink.write(encode_reply(Reply("LON")))
            await self._read(sink)
        elif command == "LOFF":
            reply = Reply("LOFF", "01") if self.settings.refuse_loff else Reply("LOFF")
            await sink.write(encode_reply(reply))
        else:
            await sink.write(encode_reply(Reply(command.split(",")[0][:8], "00")))

    async def _read(self, sink: Sink) -> None:
        s, rng = self.settings, self.rng
        self.reads += 1
        read = what_is_read(self.items, s.name, rng, s.noread_rate, s.misread_rate,
                            s.repeat_rate)
        text = s.error_string if read is None else read
        if rng.random() < s.over_rate:
            text = "OVER"
        self.results.append(text)
        if rng.random() < s.garbage_rate:
            await sink.write(b"\x01\x02\r")
        await sink.write(encode_read(ReadLine(text)))
        if rng.random() < s.duplicate_rate:
            await sink.write(encode_read(ReadLine(text)))
        if s.disconnect_after and self.reads >= s.disconnect_after:
            sink.cut()
