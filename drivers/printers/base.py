"""What every printer driver shares: the event queue and the host queue (the link is
:mod:`drivers.link`'s)."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Sequence

from drivers.errors import ConnectionLost
from drivers.interfaces import BufferLost, PrinterEvent

log = logging.getLogger("codeline.drivers.printer")

LINK_LOST = (ConnectionLost, ConnectionError, OSError, asyncio.IncompleteReadError)


class PrinterEvents:
    """The ordered event stream a printer driver hands to the runtime."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[PrinterEvent] = asyncio.Queue()

    def emit(self, event: PrinterEvent) -> None:
        self._queue.put_nowait(event)

    async def __aiter__(self) -> AsyncIterator[PrinterEvent]:
        while True:
            yield await self._queue.get()

    async def next(self, seconds: float) -> PrinterEvent:
        """The next event, waiting at most ``seconds``."""
        async with asyncio.timeout(seconds):
            return await self._queue.get()

    def lost(self, codes: Sequence[str], why: str) -> None:
        if codes:
            self.emit(BufferLost(tuple(codes), why))


class HostQueue:
    """Codes handed to the driver and not yet sent to the device, in order."""

    def __init__(self) -> None:
        self.codes: deque[str] = deque()
        self.ready = asyncio.Event()

    def extend(self, codes: Sequence[str]) -> None:
        self.codes.extend(codes)
        if self.codes:
            self.ready.set()

    def take(self, n: int) -> list[str]:
        out = [self.codes.popleft() for _ in range(min(n, len(self.codes)))]
        if not self.codes:
            self.ready.clear()
        return out

    def drain(self) -> list[str]:
        return self.take(len(self.codes))
