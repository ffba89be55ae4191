"""Running an ASGI app with uvicorn inside an asyncio program (API, demo, tests, benches)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn

LOWEST_PORT = 10_000
_handed_out: set[int] = set()


def _outside_ephemeral() -> tuple[int, int]:
    """Ports the kernel never gives outgoing connections nor ``bind(0)``: below its
    ephemeral range (or above it, should that start low). ``CODELINE_PORT_RANGE=LOW-HIGH``
    narrows it, so that test runners working in parallel never choose the same port."""
    narrowed = os.environ.get("CODELINE_PORT_RANGE", "")
    if narrowed:
        low_text, _, high_text = narrowed.partition("-")
        return int(low_text), int(high_text)
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        low, high = int(text[0]), int(text[1])
    except (OSError, ValueError, IndexError):
        low, high = 32768, 60999
    if low - LOWEST_PORT >= 1000:
        return LOWEST_PORT, low - 1
    if 65535 - high >= 1000:
        return high + 1, 65535
    return LOWEST_PORT, 65535


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port for a server that will bind it later (another process, a config file).

    Taken below the kernel's ephemeral range, so no outgoing connection (nor any
    ``bind(0)``) can take it between this choice and that bind, and never handed out twice
    by this process; nothing listens on it now. A server started here binds port 0 instead
    (:func:`serve`)."""
    bottom, top = _outside_ephemeral()
    for _ in range(1000):
        port = random.randint(bottom, top)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise OSError(f"no free TCP port between {bottom} and {top} on {host}")


@contextlib.asynccontextmanager
async def serve(app: Any, host: str = "127.0.0.1", port: int | None = None
                ) -> AsyncIterator[str]:
    """Serve ``app`` until the block ends; yields its base URL once it listens (on a socket
    bound here, to ``port`` or to a port the kernel picks: no window for another to take
    it)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port or 0))
    except OSError:
        sock.close()
        raise
    port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"uvicorn-{port}")
    for _ in range(1000):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    if task.done():
        task.result()  # startup failed: raise why
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()
