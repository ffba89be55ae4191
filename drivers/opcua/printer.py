"""Printer over OPC-UA (our model, ``printer_model``), on an asyncua client.

The queue is kept filled with ``EnqueueCodes`` in batches; a subscription to ``PrintCount``,
``State`` and ``FaultCode`` wakes the driver, which then reads count and queue depth together
and accounts each print to the oldest queued code. ``State``/``FaultCode`` become typed faults.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.common.subscription import Subscription
from asyncua.ua.object_ids import ObjectIds

from drivers.errors import CommandRefused, ConnectionLost, ProtocolError
from drivers.opcua import printer_model as pm
from drivers.opcua.link import client_for, ua_errors
from drivers.printers.counted import CountedPrinter, Snapshot
from line_config.devices import OpcUaPrinter as OpcUaPrinterConfig

log = logging.getLogger("codeline.drivers.opcua_printer")

STATES = {"Offline": "stopped", "Running": "running", "Fault": "fault"}


class _Changes:
    """Subscription handler: any notification wakes the driver."""

    def __init__(self, event: asyncio.Event) -> None:
        self.event = event

    def datachange_notification(self, node: Node, val: Any, data: Any) -> None:
        self.event.set()

    def status_change_notification(self, status: Any) -> None:
        self.event.set()


class OpcUaPrinter(CountedPrinter):
    """Driver of one OPC-UA printer; see the module docstring."""

    LOAD_CHUNK = 100

    def __init__(self, config: OpcUaPrinterConfig, publish_ms: int = 10) -> None:
        super().__init__(config.id, config.queue_target, config.reconnect_min_ms,
                         config.reconnect_max_ms)
        self.config = config
        self.job = config.job
        self.configured_job = config.job
        self.publish_ms = publish_ms
        self.client: Client | None = None
        self.subscription: Subscription | None = None
        self.object: Node | None = None
        self.vars: dict[str, Node] = {}
        self.methods: dict[str, Node] = {}
        self._changed = asyncio.Event()
        self.refused_loads = 0

    # --- link ---
    async def _open(self) -> None:
        self.client = await client_for(self.config.transport)
        with ua_errors(self.name, "connect"):
            await self.client.connect()
            ns = await self.client.get_namespace_index(pm.NAMESPACE)
            self.object = await self.client.nodes.objects.get_child(f"{ns}:{pm.OBJECT}")
            for name in pm.VARIABLES:
                self.vars[name] = await self.object.get_child(f"{ns}:{name}")
            for name in pm.METHODS:
                self.methods[name] = await self.object.get_child(f"{ns}:{name}")
            self.identity = await self._identity()
            self.subscription = await self.client.create_subscription(
                self.publish_ms, _Changes(self._changed))
            await self.subscription.subscribe_data_change(
                [self.vars[pm.PRINT_COUNT], self.vars[pm.STATE], self.vars[pm.FAULT_CODE]])

    async def _identity(self) -> str:
        assert self.client is not None
        info = self.client.get_node(ObjectIds.Server_ServerStatus_BuildInfo)
        build = await info.read_value()
        return f"{build.ManufacturerName} {build.ProductName} {build.SoftwareVersion}".strip()

    async def _close_link(self) -> None:
        client, self.client = self.client, None
        self.subscription = None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.disconnect()

    def _live(self) -> Client:
        if self.client is None:
            raise ConnectionLost(f"{self.name} is not connected")
        return self.client

    async def _call(self, method: str, *args: Any) -> Any:
        self._live()
        assert self.object is not None
        with ua_errors(self.name, method):
            return await self.object.call_method(self.methods[method].nodeid, *args)

    # --- CountedPrinter operations ---
    async def _snapshot(self) -> Snapshot:
        client = self._live()
        names = (pm.PRINT_COUNT, pm.QUEUE_DEPTH, pm.STATE, pm.FAULT_CODE, pm.FAULT_TEXT)
        with ua_errors(self.name, "read"):
            values = await client.read_values([self.vars[n] for n in names])
        count, depth, state, code, text = values
        if not isinstance(count, int) or not isinstance(depth, int):
            raise ProtocolError(f"{self.name}: PrintCount/QueueDepth are not integers")
        faults = {str(code): str(text or code)} if code else {}
        return Snapshot(count, depth, STATES.get(str(state), str(state).lower()), faults)

    async def _load(self, codes: Sequence[str]) -> int:
        try:
            accepted = await self._call(pm.ENQUEUE_CODES,
                                        ua.Variant(list(codes), ua.VariantType.String))
        except CommandRefused:
            self.refused_loads += 1
            raise
        return int(accepted)

    async def _discard(self) -> None:
        await self._call(pm.CLEAR_QUEUE)

    async def _arm(self) -> None:
        await self._call(pm.START)

    async def _disarm(self) -> None:
        await self._call(pm.STOP)

    async def _select(self, job: str) -> None:
        await self._call(pm.SELECT_JOB, ua.Variant(job, ua.VariantType.String))

    async def _clear_errors(self) -> None:
        await self._call(pm.RESET_FAULT)

    async def _wait_for_change(self) -> None:
        # A notification wakes it at once; the timeout keeps the link checked when idle.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.2):
                await self._changed.wait()
        self._changed.clear()
