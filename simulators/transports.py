"""How simulators listen: TCP on loopback, or a pty whose bytes are paced at a baud rate."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import select
import threading
import time
import tty
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar

Handler = Callable[[asyncio.StreamReader, "Sink"], Coroutine[Any, Any, None]]
M = TypeVar("M")


class Framer(Protocol[M]):
    """A protocol's framer: bytes in, whole messages out."""

    def feed(self, data: bytes) -> list[M]: ...


async def messages(reader: asyncio.StreamReader, framer: Framer[M],
                   size: int = 4096) -> AsyncIterator[M]:
    """Each message the peer sends, until it closes the link."""
    while True:
        data = await reader.read(size)
        if not data:
            return
        for message in framer.feed(data):
            yield message


class Sink:
    """Where a simulator writes; ``post`` queues without waiting (unsolicited messages);
    ``cut()`` drops the link (a disconnect fault)."""

    def __init__(self, write: Callable[[bytes], Awaitable[None]], cut: Callable[[], None],
                 post: Callable[[bytes], None]) -> None:
        self._write = write
        self._cut = cut
        self._post = post

    async def write(self, data: bytes) -> None:
        await self._write(data)

    def post(self, data: bytes) -> None:
        self._post(data)

    def cut(self) -> None:
        self._cut()


class TcpListener:
    """A TCP server on 127.0.0.1; each connection is handled by ``handler``."""

    def __init__(self, handler: Handler, port: int = 0, host: str = "127.0.0.1",
                 split_writes: bool = False) -> None:
        self.handler = handler
        self.split_writes = split_writes
        self.host = host
        self.port = port
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.sessions: set[asyncio.Task[None]] = set()
        self.connections = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        self.connections += 1
        task = asyncio.current_task()
        if task is not None:
            self.sessions.add(task)

        held: list[bytes] | None = None  # messages posted while a split write is under way

        def post(data: bytes) -> None:
            if held is not None:
                held.append(data)
            elif not writer.is_closing():
                writer.write(data)

        async def write(data: bytes) -> None:
            nonlocal held
            if self.split_writes and len(data) > 1:
                # A partial frame: the first half now, the rest a moment later (a device
                # never interleaves two messages, so posts wait for the second half).
                half = len(data) // 2
                post(data[:half])
                held = []
                try:
                    if not writer.is_closing():
                        await writer.drain()
                    await asyncio.sleep(0.001)
                finally:
                    waiting, held = held, None
                data = data[half:] + b"".join(waiting)
            post(data)
            if not writer.is_closing():
                await writer.drain()

        try:
            await self.handler(reader, Sink(write, writer.close, post))
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()
            if task is not None:
                self.sessions.discard(task)

    def drop_all(self) -> None:
        """Close every client connection (the device 'reboots')."""
        for writer in list(self.writers):
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        self.drop_all()
        if self.sessions:
            await asyncio.wait(set(self.sessions), timeout=2.0)
        for task in list(self.sessions):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.server is not None:
            await self.server.wait_closed()


SLICE = 1  # bytes reach the device one at a time, as on a wire


class PacedPty:
    """A pty pair: the driver opens :attr:`path`; bytes cross at ``baud`` (10 bits a byte).

    Pacing runs in two threads with ``time.sleep`` (sub-millisecond), because the event
    loop's timers round to whole milliseconds, which would slow short frames several-fold.
    """

    def __init__(self, handler: Handler, baud: int) -> None:
        self.handler = handler
        self.baud = baud
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        tty.setraw(self.master)
        self.path = os.ttyname(self.slave)
        self._task: asyncio.Task[None] | None = None
        self._stop = threading.Event()
        self._outbox: queue.Queue[bytes] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self.bytes_in = 0
        self.bytes_out = 0

    @property
    def where(self) -> str:
        return self.path

    def byte_time(self, n: int) -> float:
        return n * 10 / self.baud

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()

        def receive() -> None:
            line_free = 0.0
            while not self._stop.is_set():
                ready, _, _ = select.select([self.master], [], [], 0.05)
                if not ready:
                    continue
                try:
                    data = os.read(self.master, 4096)
                except OSError:
                    break
                self.bytes_in += len(data)
                line_free = max(line_free, time.monotonic())
                for start in range(0, len(data), SLICE):
                    piece = data[start : start + SLICE]
                    line_free += self.byte_time(len(piece))
                    _sleep_until(line_free)
                    loop.call_soon_threadsafe(reader.feed_data, piece)
            loop.call_soon_threadsafe(reader.feed_eof)

        def transmit() -> None:
            line_free = 0.0
            while not self._stop.is_set():
                try:
                    data = self._outbox.get(timeout=0.05)
                except queue.Empty:
                    continue
                line_free = max(line_free, time.monotonic()) + self.byte_time(len(data))
                _sleep_until(line_free)
                self.bytes_out += len(data)
                with contextlib.suppress(OSError):
                    os.write(self.master, data)

        for target in (receive, transmit):
            thread = threading.Thread(target=target, name=f"pty-{target.__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)

        async def write(data: bytes) -> None:
            self._outbox.put(data)

        sink = Sink(write, lambda: None, self._outbox.put)
        self._task = asyncio.create_task(self.handler(reader, sink))

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for thread in self._threads:
            await asyncio.to_thread(thread.join, 1.0)
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)


class TcpSimulator:
    """Base of the TCP simulators: ``serve_tcp`` on loopback, ``stop``, and a ``handle``."""

    listener: TcpListener | PacedPty | None = None

    async def handle(self, reader: asyncio.StreamReader, sink: Sink) -> None:
        raise NotImplementedError

    async def serve_tcp(self, port: int = 0) -> str:
        """Listen on 127.0.0.1 (``port`` 0: any free port); returns host:port."""
        settings = getattr(self, "settings", None)
        self.listener = TcpListener(self.handle, port,
                                    split_writes=bool(getattr(settings, "split_writes", False)))
        await self.listener.start()
        await self.on_started()
        return self.listener.where

    async def on_started(self) -> None:
        """Start what the device does on its own (a product flow, say)."""

    async def stop(self) -> None:
        await self.on_stopping()
        if self.listener is not None:
            await self.listener.stop()

    async def on_stopping(self) -> None:
        """Stop what :meth:`on_started` started."""
