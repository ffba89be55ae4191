"""A printer exposing our OPC-UA ``Printer`` model (``drivers.opcua.printer_model``).

Products arrive one per ``product_detect()`` (or at ``print_rate`` per second while it
runs); each prints the oldest queued code and raises ``PrintCount``. The variables are
published print count first, queue depth second, so a client reading both never sees a code
leave the queue before it is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections import deque
from typing import Any, NoReturn

from asyncua import ua
from asyncua.common.methods import uamethod
from asyncua.common.node import Node
from asyncua.server.server import Server
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaStatusCodeError
from pydantic import BaseModel, ConfigDict, Field

from drivers.opcua import printer_model as pm
from simulators.items import ItemStream, product_flow
from simulators.opcua_device import OpcUaDeviceSim

TYPES = {pm.STATE: ua.VariantType.String, pm.QUEUE_DEPTH: ua.VariantType.UInt32,
         pm.QUEUE_CAPACITY: ua.VariantType.UInt32, pm.PRINT_COUNT: ua.VariantType.UInt32,
         pm.LAST_PRINTED: ua.VariantType.String, pm.FAULT_CODE: ua.VariantType.String,
         pm.FAULT_TEXT: ua.VariantType.String, pm.JOB: ua.VariantType.String}


def refuse(code: int) -> NoReturn:
    """Answer the method call with a Bad status."""
    raise UaStatusCodeError(code)  # type: ignore[no-untyped-call]


class OpcUaPrinterSettings(BaseModel):
    """Behaviour and faults of the simulated OPC-UA printer."""

    model_config = ConfigDict(extra="forbid")

    print_rate: float = Field(default=0.0, ge=0, le=100_000,
                              description="products per second while running (0: manual)")
    capacity: int = Field(default=2000, ge=1, le=1_000_000)
    refuse_every: int = Field(default=0, ge=0,
                              description="EnqueueCodes call N fails with a Bad status")
    disconnect_after: int = Field(default=0, ge=0, description="drop the link after N prints")


class OpcUaPrinterSim(OpcUaDeviceSim):
    """The printer's state, served on OPC-UA."""

    path = "printer"
    name = "codeline simulated OPC-UA printer"

    def __init__(self, settings: OpcUaPrinterSettings | None = None,
                 items: ItemStream | None = None, security: tuple[str, ...] = ("none",)) -> None:
        super().__init__(security)
        self.settings = settings or OpcUaPrinterSettings()
        self.items = items or ItemStream()
        self.queue: deque[str] = deque()
        self.count = 0
        self.last = ""
        self.state = "Offline"
        self.fault_code = ""
        self.fault_text = ""
        self.job = ""
        self.enqueue_calls = 0
        self.refused = 0
        self.dropped = False
        self.nodes: dict[str, Node] = {}
        self._dirty = asyncio.Event()
        self._publish_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []

    # --- the physical side ---
    def ready(self) -> bool:
        return self.state == "Running" and bool(self.queue)

    def product_detect(self) -> None:
        """A product passed the printer."""
        if self.state != "Running":
            return
        if not self.queue:
            self.raise_fault("NODATA", "print go with an empty queue")
            return
        code = self.queue.popleft()
        self.items.arrive(code)
        self.count += 1
        self.last = code
        self._dirty.set()
        s = self.settings
        if s.disconnect_after and self.count == s.disconnect_after and not self.dropped:
            self.dropped = True
            self._tasks.append(asyncio.create_task(self.drop_link()))

    def raise_fault(self, code: str, text: str) -> None:
        self.state = "Fault"
        self.fault_code, self.fault_text = code, text
        self._dirty.set()

    # --- publishing ---
    async def _publish(self) -> None:
        async with self._publish_lock:
            values = {pm.PRINT_COUNT: self.count, pm.LAST_PRINTED: self.last,
                      pm.QUEUE_DEPTH: len(self.queue), pm.STATE: self.state,
                      pm.FAULT_CODE: self.fault_code, pm.FAULT_TEXT: self.fault_text,
                      pm.JOB: self.job}
            for name, value in values.items():  # in this order: count before depth
                await self.nodes[name].write_value(ua.Variant(value, TYPES[name]))

    async def _publisher(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            await self._publish()

    # --- methods ---
    async def build(self, server: Server) -> None:
        await server.set_build_info("urn:codeline:sim:printer", "codeline", "OPC-UA printer sim",
                                    "1.0", "1", datetime.datetime.now(datetime.UTC))
        ns = await server.register_namespace(pm.NAMESPACE)
        printer = await server.nodes.objects.add_object(
            ua.NodeId.from_string(f"ns={ns};s={pm.OBJECT}"), ua.QualifiedName(pm.OBJECT, ns))
        initial: dict[str, Any] = {pm.STATE: "Offline", pm.QUEUE_DEPTH: 0,
                                   pm.QUEUE_CAPACITY: self.settings.capacity,
                                   pm.PRINT_COUNT: 0, pm.LAST_PRINTED: "", pm.FAULT_CODE: "",
                                   pm.FAULT_TEXT: "", pm.JOB: ""}
        for name in pm.VARIABLES:
            self.nodes[name] = await printer.add_variable(
                ua.NodeId.from_string(f"ns={ns};s={pm.OBJECT}.{name}"), ua.QualifiedName(name, ns),
                ua.Variant(initial[name], TYPES[name]))

        @uamethod
        async def select_job(parent: ua.NodeId, name: str) -> None:
            if not name:
                refuse(StatusCodes.BadInvalidArgument)
            self.job = name
            await self._publish()

        @uamethod
        async def enqueue_codes(parent: ua.NodeId, codes: list[str]) -> ua.Variant:
            self.enqueue_calls += 1
            every = self.settings.refuse_every
            if every and self.enqueue_calls % every == 0:
                self.refused += 1
                refuse(StatusCodes.BadResourceUnavailable)
            if len(codes) > pm.MAX_ENQUEUE or any(not c for c in codes):
                refuse(StatusCodes.BadInvalidArgument)
            taken = codes[:max(0, self.settings.capacity - len(self.queue))]
            self.queue.extend(taken)
            await self._publish()
            return ua.Variant(len(taken), ua.VariantType.UInt32)

        @uamethod
        async def clear_queue(parent: ua.NodeId) -> None:
            self.queue.clear()
            await self._publish()

        @uamethod
        async def start(parent: ua.NodeId) -> None:
            if self.state == "Fault" or not self.job:
                refuse(StatusCodes.BadInvalidState)
            self.state = "Running"
            await self._publish()

        @uamethod
        async def stop(parent: ua.NodeId) -> None:
            if self.state == "Running":
                self.state = "Offline"
            await self._publish()

        @uamethod
        async def reset_fault(parent: ua.NodeId) -> None:
            if self.state == "Fault":
                self.state = "Offline"
            self.fault_code = self.fault_text = ""
            await self._publish()

        string = ua.VariantType.String
        codes = ua.Argument(Name="Codes", ValueRank=1, ArrayDimensions=[0],
                            DataType=ua.NodeId.from_string(f"i={ObjectIds.String}"))
        accepted = ua.Argument(Name="Accepted", ValueRank=-1,
                               DataType=ua.NodeId.from_string(f"i={ObjectIds.UInt32}"))
        methods: dict[str, tuple[Any, list[Any], list[Any]]] = {
            pm.SELECT_JOB: (select_job, [string], []),
            pm.ENQUEUE_CODES: (enqueue_codes, [codes], [accepted]),
            pm.CLEAR_QUEUE: (clear_queue, [], []),
            pm.START: (start, [], []),
            pm.STOP: (stop, [], []),
            pm.RESET_FAULT: (reset_fault, [], []),
        }
        for name, (func, inputs, outputs) in methods.items():
            await printer.add_method(ua.NodeId.from_string(f"ns={ns};s={pm.OBJECT}.{name}"),
                                     ua.QualifiedName(name, ns), func, inputs, outputs)

    async def on_started(self) -> None:
        self._tasks.append(asyncio.create_task(self._publisher(), name="printer-publisher"))
        if self.settings.print_rate > 0:
            self._tasks.append(asyncio.create_task(
                product_flow(self, self.settings.print_rate), name="printer-flow"))

    async def on_stopping(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
