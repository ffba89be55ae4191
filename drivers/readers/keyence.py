"""Keyence SR reader over TCP: ``LON`` per item, one read line back.

The protocol carries no trigger id: a read that arrives before the ``OK,LON`` of the current
trigger belongs to an earlier one and is counted and dropped; a read later than the timeout
that lands after the next ``OK,LON`` may still be taken for the next item (verification
compares every read with the expected code).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from drivers.errors import CommandRefused, ConnectionLost, DeviceTimeout
from drivers.interfaces import ReadResult
from drivers.link import StreamDevice
from drivers.readers.keyence_codec import Framer, ReadLine, Reply, encode_command
from drivers.transport import Opener, opener_for
from line_config.devices import KeyenceReader as KeyenceConfig

log = logging.getLogger("codeline.drivers.keyence")


class KeyenceReader(StreamDevice):
    """Driver of one Keyence SR reader."""

    family = "reader"

    def __init__(self, config: KeyenceConfig, opener: Opener | None = None,
                 result_timeout: float = 1.0) -> None:
        super().__init__(config, opener or opener_for(config.transport))
        self.config = config
        self.result_timeout = result_timeout
        self.framer = Framer("host")
        # Lines are numbered as they arrive: a read that came before the OK,LON it should
        # follow belongs to an earlier trigger, whatever its timing.
        self._replies: asyncio.Queue[tuple[int, Reply]] = asyncio.Queue()
        self._reads: asyncio.Queue[tuple[int, ReadLine]] = asyncio.Queue()
        self._lines = 0
        self._lock = asyncio.Lock()
        self.stale_results = 0
        self.overflows = 0

    async def on_connected(self) -> None:
        self.framer = Framer("host")
        self._replies = asyncio.Queue()
        self._reads = asyncio.Queue()
        self.start_pump(self._read_loop())

    async def _read_loop(self) -> None:
        while True:
            data = await self.received()
            for message in self.framer.feed(data):
                self._lines += 1
                if isinstance(message, Reply):
                    self._replies.put_nowait((self._lines, message))
                elif isinstance(message, ReadLine):
                    self._reads.put_nowait((self._lines, message))

    async def _command(self, command: str) -> int:
        """Send a command; the arrival number of its OK reply."""
        self.write(encode_command(command))
        try:
            async with asyncio.timeout(self.result_timeout):
                number, reply = await self._replies.get()
        except TimeoutError:
            raise DeviceTimeout(f"{self.name}: no answer to {command}") from None
        if not reply.ok or reply.command != command:
            raise CommandRefused(f"{self.name}: {command} answered ER {reply.code}")
        return number

    async def read(self) -> ReadResult:
        async with self._lock:
            while not self._reads.empty():
                self._reads.get_nowait()
                self.stale_results += 1
                log.warning("discarded a read that belonged to no trigger",
                            extra={"device": self.name})
            accepted = await self._command("LON")
            try:
                async with asyncio.timeout(self.result_timeout):
                    while True:
                        number, line = await self._reads.get()
                        if number > accepted:
                            break
                        self.stale_results += 1  # arrived before this trigger's OK,LON
            except TimeoutError:
                with contextlib.suppress(ConnectionLost, CommandRefused, DeviceTimeout):
                    await self._command("LOFF")
                return ReadResult(None)
        if line.text == "OVER":
            self.overflows += 1
            return ReadResult(None)
        if line.text == self.config.error_string:
            return ReadResult(None)
        return ReadResult(line.text)
