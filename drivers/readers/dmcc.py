"""Cognex DataMan reader over DMCC (TCP): one trigger, one result.

Commands go out as Cognex writes them (``||0:<id>>TRIGGER ON``: no checksum, a command id);
see ``dmcc_codec``. In extended response mode a result carries the id of the trigger that
caused it, so a late
or duplicated result is recognised and counted, never attributed to the wrong item; in
silent mode results left over from an earlier trigger are drained before each trigger (a
result later than the timeout can then still be mistaken, which is why extended mode is the
default). A trigger that gets no result in time counts as a no-read.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging

from drivers.errors import CommandRefused, ConnectionLost, DeviceTimeout
from drivers.interfaces import Grade, ReadResult
from drivers.link import StreamDevice
from drivers.readers.dmcc_codec import READ, Command, Framer, Response, encode_command, split_grade
from drivers.transport import Opener, opener_for
from line_config.devices import DmccReader as DmccConfig

log = logging.getLogger("codeline.drivers.dmcc")


class DmccReader(StreamDevice):
    """Driver of one DataMan reader."""

    family = "reader"

    def __init__(self, config: DmccConfig, opener: Opener | None = None,
                 result_timeout: float = 1.0) -> None:
        super().__init__(config, opener or opener_for(config.transport))
        self.config = config
        self.result_timeout = result_timeout
        self.framer = Framer("host")
        self._acks: asyncio.Queue[Response] = asyncio.Queue()
        self._results: asyncio.Queue[Response] = asyncio.Queue()
        self._lock = asyncio.Lock()
        self._next_id = 0
        self.stale_results = 0
        self.identity = ""

    async def on_connected(self) -> None:
        self.framer = Framer("host")
        self._acks = asyncio.Queue()
        self._results = asyncio.Queue()
        self.start_pump(self._read_loop())
        mode = "1" if self.config.extended_response else "0"
        self.write(encode_command(Command(f"SET COM.DMCC-RESPONSE {mode}")))
        if self.config.extended_response:
            await self._ack_for(None)
            self.identity = await self.command("GET DEVICE.TYPE")

    async def _read_loop(self) -> None:
        while True:
            data = await self.received()
            for message in self.framer.feed(data):
                assert isinstance(message, Response)
                if message.status is None or message.status == READ:
                    self._results.put_nowait(message)
                else:
                    self._acks.put_nowait(message)

    async def _ack_for(self, ident: int | None) -> Response:
        while True:
            try:
                async with asyncio.timeout(self.result_timeout):
                    ack = await self._acks.get()
            except TimeoutError:
                raise DeviceTimeout(f"{self.name}: no answer from the reader") from None
            if ident is None or ack.id in (None, ident):
                break
        if ack.status not in (0, None):
            raise CommandRefused(f"{self.name}: reader answered status {ack.status}")
        return ack

    async def command(self, text: str) -> str:
        """Send one DMCC command (extended mode) and return its payload."""
        async with self._lock:
            self._next_id = self._next_id % 999_999 + 1
            ident = self._next_id
            self.write(encode_command(Command(text, ident)))
            return (await self._ack_for(ident)).payload

    async def read(self) -> ReadResult:
        async with self._lock:
            while not self._results.empty():
                self._results.get_nowait()
                self.stale_results += 1
                log.warning("discarded a result that belonged to no trigger",
                            extra={"device": self.name})
            if self.config.extended_response:
                self._next_id = self._next_id % 999_999 + 1
                ident = self._next_id
                self.write(encode_command(Command("TRIGGER ON", ident)))
                await self._ack_for(ident)
            else:
                self.write(encode_command(Command("TRIGGER ON")))
            try:
                async with asyncio.timeout(self.result_timeout):
                    while True:
                        result = await self._results.get()
                        if not self.config.extended_response or result.id in (None, ident):
                            break
                        self.stale_results += 1  # the late answer to an earlier trigger
            except TimeoutError:
                with contextlib.suppress(ConnectionLost, CommandRefused, DeviceTimeout):
                    if self.config.extended_response:
                        self.write(encode_command(Command("TRIGGER OFF")))
                return ReadResult(None)
        return self._result(result.payload)

    def _result(self, payload: str) -> ReadResult:
        if self.config.extended_response and self.config.extended_data == "base64":
            try:
                payload = base64.b64decode(payload, validate=True).decode("latin-1")
            except (binascii.Error, ValueError):
                self.protocol_errors += 1
                log.warning("read data is not base64 as configured: %r", payload[:40],
                            extra={"device": self.name})
                return ReadResult(None)
        if payload == self.config.noread_string:
            return ReadResult(None)
        if not self.config.grade_block:  # the reader sends no grade: the payload is all data
            return ReadResult(payload)
        data, grade, params = split_grade(payload)
        letter: Grade | None = grade if grade in ("A", "B", "C", "D", "F") else None  # type: ignore[assignment]
        return ReadResult(data, letter, params)
