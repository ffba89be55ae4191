"""Keeping a device's link up, the same way for every family: open it with backoff, set the
device up, run sessions until the link fails, reconnect; the link's availability is logged
once per change under the family's logger (``codeline.drivers.<family>``).

A driver supplies the link (``open_link``/``close_link``), what a fresh link needs
(``on_connected``), what a lost one means (``on_disconnected``: codes of unknown fate) and the
session (``session``: returns or raises when the link fails). :class:`StreamDevice` is the
link over a byte stream (TCP, serial).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any, ClassVar

from drivers.errors import ConnectionLost, DriverError
from drivers.transport import Availability, Backoff, Opener, close_stream, stop_task
from line_config.devices import DeviceBase

LINK_LOST = (ConnectionLost, ConnectionError, OSError, asyncio.IncompleteReadError)


class DeviceLink:
    """One device's supervised link."""

    #: the driver family, naming the logger: printer, reader, label_printer, camera
    family: ClassVar[str] = "device"

    def __init__(self, name: str, reconnect_min_ms: int, reconnect_max_ms: int) -> None:
        self.name = name
        self.log = logging.getLogger(f"codeline.drivers.{self.family}")
        self.backoff = Backoff(reconnect_min_ms / 1000, reconnect_max_ms / 1000)
        self.availability = Availability(self.log, name)
        self.reconnects = 0
        self.protocol_errors = 0
        self._supervisor: asyncio.Task[None] | None = None

    async def connect(self, attempts: int | None = None) -> None:
        """Open the link (``attempts`` tries, None: until cancelled), set the device up, then
        keep the link up in the background."""
        await self._establish(attempts)
        self._supervisor = asyncio.create_task(self._supervise(), name=f"{self.name}-link")

    async def _establish(self, attempts: int | None) -> None:
        tried = 0
        while True:
            try:
                await self.open_link()
                await self.on_connected()
                break
            except Exception as exc:  # noqa: BLE001 - whatever failed, the link is retried
                why = self._count(exc)
                self.availability.went_down(why)
                await self._drop(why)
                tried += 1
                if attempts is not None and tried >= attempts:
                    if isinstance(exc, DriverError):
                        raise
                    raise ConnectionLost(f"{self.name}: {why}") from exc
                await asyncio.sleep(self.backoff.next_delay())
        self.backoff.reset()
        self.availability.went_up()

    async def _supervise(self) -> None:
        while True:
            try:
                await self.session()
                raise ConnectionLost("the device closed the connection")
            except Exception as exc:  # noqa: BLE001 - the session's state is unknown: a new one
                why = self._count(exc)
                self.availability.went_down(why)
                await self._drop(why)
            await asyncio.sleep(self.backoff.next_delay())
            await self._establish(None)
            self.reconnects += 1

    async def _drop(self, why: str) -> None:
        """Close the failed link and let the driver settle what it means."""
        with contextlib.suppress(Exception):
            await self.close_link()
        with contextlib.suppress(Exception):
            await self.on_disconnected(why)

    def _count(self, exc: BaseException) -> str:
        """Why a link or session ended, counting what was the device's fault of format."""
        why = str(exc) or type(exc).__name__
        if isinstance(exc, LINK_LOST):
            return why
        self.protocol_errors += 1
        if not isinstance(exc, DriverError):
            # No parser should let this through; the link is recycled all the same.
            self.log.error("malformed reply from %s: %s: %s", self.name, type(exc).__name__,
                           exc, exc_info=exc, extra={"device": self.name})
            why = f"malformed reply ({type(exc).__name__}: {exc})"
        return why

    async def close(self) -> None:
        await stop_task(self._supervisor)
        self._supervisor = None
        with contextlib.suppress(Exception):
            await self.close_link()
        await self.on_disconnected("closed")

    # hooks
    async def open_link(self) -> None:
        """Open the connection (raise ConnectionLost if the device cannot be reached)."""
        raise NotImplementedError

    async def close_link(self) -> None:
        """Close the connection, if open."""

    async def on_connected(self) -> None:
        """Set the device up after (re)connecting."""

    async def on_disconnected(self, why: str) -> None:
        """React to a lost or closed link (report codes of unknown fate)."""

    async def session(self) -> None:
        """Run until the link fails (raise, or return: the device closed it)."""
        raise NotImplementedError


class StreamDevice(DeviceLink):
    """A device link over a byte stream, with an optional reader task for devices whose
    answers arrive on their own."""

    def __init__(self, config: DeviceBase, opener: Opener) -> None:
        super().__init__(config.id, config.reconnect_min_ms, config.reconnect_max_ms)
        self.opener = opener
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self._pump_task: asyncio.Task[None] | None = None
        self.bytes_received = 0

    async def open_link(self) -> None:
        self.reader, self.writer = await self.opener()

    async def close_link(self) -> None:
        writer, self.writer = self.writer, None
        await close_stream(writer)

    async def received(self, size: int = 4096) -> bytes:
        """The next bytes the device sent; the link is lost if the device closed it."""
        assert self.reader is not None
        data = await self.reader.read(size)
        if not data:
            raise ConnectionLost(f"{self.name} closed the link")
        self.bytes_received += len(data)
        return data

    def write(self, data: bytes) -> None:
        if self.writer is None or self.writer.is_closing():
            raise ConnectionLost(f"{self.name} is not connected")
        self.writer.write(data)

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

    async def on_disconnected(self, why: str) -> None:
        """By default, stop the reader task."""
        await self.stop_pump()

    async def session(self) -> None:
        """By default, the reader task's lifetime."""
        await self.run_pump()
