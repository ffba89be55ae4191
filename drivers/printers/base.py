"""What every printer driver shares: the event queue, the link supervision, the host queue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Coroutine, Sequence
from typing import Any

from drivers.errors import ConnectionLost, DriverError
from drivers.interfaces import BufferLost, PrinterEvent
from drivers.transport import (
    Availability,
    Backoff,
    Opener,
    Stream,
    close_stream,
    connect_with_backoff,
    stop_task,
)
from line_config.devices import DeviceBase

log = logging.getLogger("codeline.drivers.printer")

LINK_LOST = (ConnectionLost, ConnectionError, OSError, asyncio.IncompleteReadError)


class LinkedDevice:
    """Keeps one connection up: opens it with backoff, runs sessions, reconnects on loss."""

    def __init__(self, config: DeviceBase, opener: Opener) -> None:
        self.name = config.id
        self.opener = opener
        self.backoff = Backoff(config.reconnect_min_ms / 1000, config.reconnect_max_ms / 1000)
        self.availability = Availability(log, self.name)
        self.writer: asyncio.StreamWriter | None = None
        self.reader: asyncio.StreamReader | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._pump_task: asyncio.Task[None] | None = None
        self.reconnects = 0
        self.protocol_errors = 0

    async def connect(self, attempts: int | None = None) -> None:
        """Open the link (retrying), set the device up, then keep it up in the background."""
        stream = await connect_with_backoff(self.opener, self.backoff, self.availability,
                                            attempts)
        await self._start_session(stream)
        self._supervisor = asyncio.create_task(self._supervise(), name=f"{self.name}-link")

    async def _start_session(self, stream: Stream) -> None:
        self.reader, self.writer = stream
        await self.on_connected()
        self._connected.set()

    async def _supervise(self) -> None:
        while True:
            try:
                await self.session()
                raise ConnectionLost("the device closed the connection")
            except Exception as exc:
                # A lost link, a protocol error, a silent device or a reply no parser
                # expected: the session state is unknown, so start a new one.
                why = self._count(exc)
                self._connected.clear()
                self.availability.went_down(why)
                await close_stream(self.writer)
                self.writer = None
                await self.on_disconnected(why)
            while True:
                try:
                    stream = await connect_with_backoff(self.opener, self.backoff,
                                                        self.availability, attempts=1)
                    self.reconnects += 1
                    await self._start_session(stream)
                    break
                except Exception as exc:
                    self.availability.went_down(self._count(exc))
                    self._connected.clear()
                    await close_stream(self.writer)
                    self.writer = None
                    with contextlib.suppress(Exception):
                        await self.on_disconnected(str(exc) or type(exc).__name__)
                    await asyncio.sleep(self.backoff.next_delay())

    def _count(self, exc: BaseException) -> str:
        """Why a session ended, counting what was the device's fault of wire format."""
        why = str(exc) or type(exc).__name__
        if isinstance(exc, LINK_LOST):
            return why
        self.protocol_errors += 1
        if not isinstance(exc, DriverError):
            # No parser should let this through; the link is recycled all the same.
            log.error("malformed reply from %s: %s: %s", self.name, type(exc).__name__, exc,
                      exc_info=exc, extra={"device": self.name})
            why = f"malformed reply ({type(exc).__name__}: {exc})"
        return why

    async def received(self, size: int = 4096) -> bytes:
        """The next bytes the device sent; the link is lost if the device closed it."""
        assert self.reader is not None
        data = await self.reader.read(size)
        if not data:
            raise ConnectionLost(f"{self.name} closed the link")
        return data

    def write(self, data: bytes) -> None:
        if self.writer is None or self.writer.is_closing():
            raise ConnectionLost(f"{self.name} is not connected")
        self.writer.write(data)

    async def close(self) -> None:
        await stop_task(self._supervisor)
        self._supervisor = None
        await close_stream(self.writer)
        self.writer = None
        self._connected.clear()
        await self.on_disconnected("closed")

    # a reader task for devices whose answers arrive on their own
    def start_pump(self, loop: Coroutine[Any, Any, None]) -> None:
        self._pump_task = asyncio.create_task(loop, name=f"{self.name}-reader")

    async def stop_pump(self) -> None:
        if self._pump_task is not None:
            self._pump_task.cancel()
            await asyncio.gather(self._pump_task, return_exceptions=True)

    async def run_pump(self) -> None:
        """A session that lasts as long as the reader task (it raises when the link fails)."""
        assert self._pump_task is not None
        await self._pump_task

    # hooks
    async def on_connected(self) -> None:
        """Set the device up after (re)connecting."""

    async def on_disconnected(self, why: str) -> None:
        """React to a lost link (report codes of unknown fate); by default stop the reader."""
        await self.stop_pump()

    async def session(self) -> None:
        """Run until the link fails (raise ConnectionLost); by default, the reader task's
        lifetime."""
        await self.run_pump()


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
