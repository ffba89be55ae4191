"""Byte streams to devices (TCP, serial incl. ``socket://``) and the reconnect policy.

Drivers bound waits with ``asyncio.timeout``, never ``asyncio.wait_for``: on Python 3.11
``wait_for`` can swallow a cancellation that races with its result, leaving a task that
never stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import serial_asyncio_fast

from drivers.errors import ConnectionLost
from line_config.devices import SerialTransport, TcpTransport

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]
Opener = Callable[[], Awaitable[Stream]]


def opener_for(transport: SerialTransport | TcpTransport) -> Opener:
    """A function that opens one connection over ``transport``."""
    if isinstance(transport, TcpTransport):
        async def open_tcp() -> Stream:
            try:
                async with asyncio.timeout(transport.connect_timeout_ms / 1000):
                    return await asyncio.open_connection(transport.host, transport.port)
            except (OSError, TimeoutError) as exc:
                raise ConnectionLost(
                    f"cannot reach {transport.host}:{transport.port}: {exc}") from exc
        return open_tcp

    async def open_serial() -> Stream:
        try:
            return await serial_asyncio_fast.open_serial_connection(
                url=transport.port, baudrate=transport.baudrate, bytesize=transport.bytesize,
                parity=transport.parity, stopbits=transport.stopbits,
            )
        except (OSError, ValueError) as exc:
            raise ConnectionLost(f"cannot open {transport.port}: {exc}") from exc
    return open_serial


@dataclass
class Backoff:
    """Capped exponential backoff with full jitter."""

    min_s: float = 0.2
    max_s: float = 10.0
    attempt: int = 0

    def next_delay(self) -> float:
        cap = min(self.max_s, self.min_s * (2 ** self.attempt))
        self.attempt += 1
        return random.uniform(self.min_s / 2, cap)

    def reset(self) -> None:
        self.attempt = 0


class Availability:
    """Logs a device going down once and coming back once."""

    def __init__(self, log: logging.Logger, device: str) -> None:
        self.log = log
        self.device = device
        self.up = False
        self.ever_up = False
        self.since = time.time()  # when it last went up or down
        self.cause = "not connected yet"

    def went_up(self) -> None:
        if not self.up:
            if self.ever_up:
                self.log.info("device back online", extra={"device": self.device})
            else:
                self.log.info("device connected", extra={"device": self.device})
        if not self.up:
            self.since, self.cause = time.time(), ""
        self.up = True
        self.ever_up = True

    def went_down(self, why: str) -> None:
        if self.up or not self.ever_up:
            self.log.warning("device unavailable: %s", why, extra={"device": self.device})
        if self.up or self.cause != why:
            self.since = time.time() if self.up else self.since
            self.cause = why
        self.up = False


async def stop_task(task: asyncio.Task[None] | None) -> None:
    """Cancel a background task and wait until it has ended."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def until_one_ends(*tasks: asyncio.Task[None]) -> None:
    """Wait until one of a session's loops ends, raise what ended it, cancel the others."""
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def close_stream(writer: asyncio.StreamWriter | None) -> None:
    """Close a stream writer, ignoring a peer that is already gone."""
    if writer is None:
        return
    writer.close()
    with contextlib.suppress(OSError, ConnectionError):
        await writer.wait_closed()
