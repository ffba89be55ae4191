"""PackML methods answer when the command is accepted, not when its acting state ends; the
acting states are visible to a PLC's subscription; Stop and Abort pre-empt a Reset that is
still connecting devices. A real ``codeline run`` whose devices accept a connection and then
never answer (so Reset waits out its connect time-out)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.uaerrors import BadInvalidState

from simulators.plc import NAMESPACE
from tests.line.harness import Controller, lone_controller

pytestmark = pytest.mark.timeout(120)

STOPPED, RESETTING, ABORTING, ABORTED = 2, 15, 8, 9


@contextlib.asynccontextmanager
async def silent_devices(c: Controller) -> AsyncIterator[None]:
    """Every TCP device of the line accepts connections and never says a word."""
    connections: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        try:
            await reader.read()
        finally:
            writer.close()

    servers = []
    for device in c.config.lines[0].devices:
        transport = device.transport
        if getattr(transport, "kind", None) == "tcp":
            servers.append(await asyncio.start_server(hold, "127.0.0.1",
                                                      transport.port))  # type: ignore[union-attr]
    try:
        yield
    finally:
        for server in servers:
            server.close()
        for writer in connections:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        for server in servers:
            await server.wait_closed()


def method(ns: int, line: str, name: str) -> ua.NodeId:
    return ua.NodeId.from_string(f"ns={ns};s={line}.PackML.{name}")


class States:
    """Every PackML state a 100 ms subscription delivers."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def datachange_notification(self, node: object, val: int, data: object) -> None:
        self.seen.append(int(val))


async def test_reset_answers_at_once_shows_resetting_and_abort_pre_empts_it(
        tmp_path: Path) -> None:
    async with lone_controller(tmp_path, {"security": ["none"]}) as c, silent_devices(c):
        line = c.config.lines[0].id
        async with Client(c.endpoint, timeout=4) as client:
            ns = await client.get_namespace_index(NAMESPACE)
            parent = client.get_node(ua.NodeId.from_string(f"ns={ns};s={line}.Line"))
            states = States()
            subscription = await client.create_subscription(100, states)
            await subscription.subscribe_data_change(
                client.get_node(ua.NodeId.from_string(f"ns={ns};s={line}.PackML.State")))
            await parent.call_method(method(ns, line, "StartBatch"), "LOT1")

            began = time.monotonic()
            answer = await parent.call_method(method(ns, line, "Reset"))
            assert answer == "Resetting" and time.monotonic() - began < 1.0
            for _ in range(30):  # the subscription sees the acting state
                if RESETTING in states.seen:
                    break
                await asyncio.sleep(0.1)
            assert RESETTING in states.seen
            with pytest.raises(BadInvalidState):  # Start is no command of Resetting
                await parent.call_method(method(ns, line, "Start"))

            began = time.monotonic()
            assert await parent.call_method(method(ns, line, "Abort")) == "Aborting"
            for _ in range(50):
                if states.seen[-1] == ABORTED:
                    break
                await asyncio.sleep(0.1)
            assert states.seen[-1] == ABORTED
            assert time.monotonic() - began < 5.0  # long before the 10 s connect time-out
            assert ABORTING in states.seen
