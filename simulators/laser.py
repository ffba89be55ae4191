"""A laser marker on Modbus TCP, speaking the register map in ``drivers.printers.laser_map``.

Served by pymodbus's own server (``SimDevice``); the laser's state lives here and the
register blocks are a view of it: reads are rendered from the state, writes change it. A
command coil's rising edge runs the command and raises its mirror input unless the laser
refuses (an error is set: only ErrorClear is taken). Products arrive one per
``product_detect()`` (or at ``print_rate`` per second while armed); each consumes the oldest
queued text. Faults come from the settings or from the test, never from the wire.
"""

from __future__ import annotations

import asyncio
from collections import deque

from pydantic import BaseModel, ConfigDict, Field
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.pdu.device import ModbusDeviceIdentification
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice
from pymodbus.simulator.simcore import SimCore
from pymodbus.simulator.simutils import SimUtils

from drivers.printers import laser_map as m
from drivers.transport import stop_task
from simulators.items import ItemStream, product_flow

READS = {1, 2, 3, 4}
COIL_WRITES = {5, 15}
HOLDING_WRITES = {6, 16}
COIL_FUNCTIONS = {1, 5, 15}


IDENTITY = ModbusDeviceIdentification(info_name={  # type: ignore[no-untyped-call]
    "VendorName": "codeline", "ProductCode": "LASER-SIM", "MajorMinorRevision": "1.0",
    "ModelName": "simulated laser marker"})


class LaserSettings(BaseModel):
    """Behaviour and faults of the simulated laser."""

    model_config = ConfigDict(extra="forbid")

    unit: int = Field(default=1, ge=0, le=247)
    print_rate: float = Field(default=0.0, ge=0, le=10_000,
                              description="products per second while armed (0: manual)")
    disconnect_after: int = Field(default=0, ge=0, description="drop the link after N marks")
    busy_every: int = Field(default=0, ge=0,
                            description="answer every Nth request with a DEVICE_BUSY exception")
    mark_timeout_at: int = Field(default=0, ge=0, description="trigger N times out (no mark)")
    alarm_after: int = Field(default=0, ge=0, description="laser alarm after N marks")


class OneUnit(SimCore):
    """The laser's only unit: a request for another unit id is for a device that is not
    there (pymodbus then sends nothing, with ``ignore_missing_devices``)."""

    async def async_getValues(self, device_id: int, func_code: int, address: int,
                              count: int = 1) -> list[int] | list[bool] | ExcCodes:
        if device_id not in self.devices:
            raise NoSuchIdException(f"unit {device_id}")
        return await super().async_getValues(device_id, func_code, address, count)

    async def async_setValues(self, device_id: int, func_code: int, address: int,
                              values: list[int] | list[bool]) -> ExcCodes | None:
        if device_id not in self.devices:
            raise NoSuchIdException(f"unit {device_id}")
        return await super().async_setValues(device_id, func_code, address, values)


class LaserSim:
    """The laser's state, served on Modbus TCP."""

    def __init__(self, settings: LaserSettings | None = None,
                 items: ItemStream | None = None) -> None:
        self.settings = settings or LaserSettings()
        self.items = items or ItemStream()
        self.coils = [False] * len(m.COMMANDS)
        self.mirrors = [False] * len(m.COMMANDS)
        self.holding = [0] * (m.TEXT.address + m.TEXT.count)
        self.queue: deque[str] = deque()
        self.armed = False
        self.error_code = 0
        self.mark_count = 0
        self.triggers = 0
        self.mark_done = False
        self.shutter_open = True
        self.interlock_closed = True
        self.requests = 0
        self.refused = 0
        self.dropped = False
        self.server: ModbusTcpServer | None = None
        self._products: asyncio.Task[None] | None = None

    # --- the physical side ---
    def ready(self) -> bool:
        return (self.armed and not self.error_code and self.shutter_open
                and self.interlock_closed and bool(self.queue))

    def product_detect(self) -> None:
        """A product passed the marking head (the trigger)."""
        if not self.armed or self.error_code:
            return
        self.triggers += 1
        if not self.interlock_closed:
            self._error(1)
            return
        if not self.shutter_open:
            self._error(2)
            return
        if not self.queue:
            self._error(3)
            return
        text = self.queue.popleft()
        s = self.settings
        if s.mark_timeout_at and self.triggers == s.mark_timeout_at:
            self.items.arrive(None)  # a partial, unreadable mark
            self._error(4)
            return
        self.items.arrive(text)
        self.mark_count += 1
        self.mark_done = True
        if s.alarm_after and self.mark_count == s.alarm_after:
            self._error(5)
        if s.disconnect_after and self.mark_count == s.disconnect_after and not self.dropped:
            self.dropped = True
            self.drop_link()

    def open_interlock(self) -> None:
        self.interlock_closed = False
        self._error(1)

    def close_interlock(self) -> None:
        self.interlock_closed = True

    def laser_alarm(self) -> None:
        self._error(5)

    def _error(self, code: int) -> None:
        if not self.error_code:
            self.error_code = code

    def drop_link(self) -> None:
        """Close every client connection (the cable pulled)."""
        if self.server is not None:
            for connection in list(self.server.active_connections.values()):
                connection.close()

    # --- commands ---
    def _coil(self, address: int, value: bool) -> None:
        if address >= len(self.coils):
            return
        rising = value and not self.coils[address]
        self.coils[address] = value
        if not value:
            self.mirrors[address] = False
            return
        if not rising:
            return
        if self.error_code and address != m.ERROR_CLEAR.address:
            self.refused += 1
            return
        if address == m.START_MARKING.address:
            self.armed = True
        elif address == m.STOP_MARKING.address:
            self.armed = False
            self.queue.clear()
        elif address == m.SET_STRING.address:
            length = self.holding[m.TEXT_LENGTH.address]
            if not 1 <= length <= m.MAX_TEXT:
                self._error(7)
                return
            if len(self.queue) >= m.QUEUE_CAPACITY:
                self._error(6)
                return
            registers = self.holding[m.TEXT.address:m.TEXT.address + (length + 1) // 2]
            self.queue.append(m.decode_text(registers, length))
        elif address == m.ERROR_CLEAR.address and self.interlock_closed:
            self.error_code = 0
        self.mirrors[address] = True

    def _inputs(self) -> list[bool]:
        bits = [False] * m.DISCRETE_INPUTS
        for i, on in enumerate(self.mirrors):
            bits[m.MIRROR_BASE + i] = on
        bits[m.READY.address] = (self.armed and not self.error_code and self.shutter_open
                                 and self.interlock_closed)
        bits[m.MARK_DONE.address] = self.mark_done
        bits[m.ERROR.address] = bool(self.error_code)
        bits[m.SHUTTER_OPEN.address] = self.shutter_open
        bits[m.INTERLOCK.address] = self.interlock_closed
        self.mark_done = False  # a pulse: seen by one read
        return bits

    async def _action(self, function_code: int, start: int, address: int, count: int,
                      registers: list[int],
                      values: list[int] | list[bool] | None) -> ExcCodes | None:
        """pymodbus calls this on every request, before it reads or writes the block."""
        if function_code in COIL_FUNCTIONS and address + count > len(m.COMMANDS):
            # pymodbus keeps bits in 16-bit words, so coils 4-15 would be served: the map
            # has four coils, and a real device refuses the rest.
            return ExcCodes.ILLEGAL_ADDRESS
        if function_code in READS or values is not None:
            self.requests += 1
            if self.settings.busy_every and self.requests % self.settings.busy_every == 0:
                return ExcCodes.DEVICE_BUSY
        if function_code in COIL_WRITES and values is not None:
            for i, value in enumerate(values):
                self._coil(address + i, bool(value))
        elif function_code in HOLDING_WRITES and values is not None:
            for i, value in enumerate(values):
                if address + i < len(self.holding):
                    self.holding[address + i] = int(value)
        elif function_code == 2:
            registers[0] = SimUtils.bitsToRegisters(self._inputs())[0]
        elif function_code == 3:
            base = m.ERROR_CODE.address - start
            registers[base:base + 4] = [self.error_code, *m.split_u32(self.mark_count),
                                        len(self.queue)]
        return None

    def device(self) -> SimDevice:
        """The pymodbus device: every block of the map, the status block read-only."""
        coils = [SimData(0, values=[False] * len(m.COMMANDS), datatype=DataType.BITS)]
        inputs = [SimData(0, values=[False] * m.DISCRETE_INPUTS, datatype=DataType.BITS)]
        holding = [
            SimData(m.FIELD_ID.address, count=2 + m.TEXT.count, values=0,
                    datatype=DataType.REGISTERS),
            SimData(m.ERROR_CODE.address, count=4, values=0, datatype=DataType.REGISTERS,
                    readonly=True),
        ]
        no_input_registers = [SimData(0, datatype=DataType.INVALID)]
        return SimDevice(id=self.settings.unit, simdata=(coils, inputs, holding,
                                                         no_input_registers),
                         action=self._action, identity=IDENTITY)

    # --- serving ---
    async def serve_tcp(self, port: int = 0) -> str:
        """Listen on 127.0.0.1 (``port`` 0: any free port); returns host:port."""
        # A unit id other than the laser's gets no answer at all, as from a device that is
        # not there (pymodbus's SimCore would answer exception 04 for any unknown id).
        self.server = ModbusTcpServer(self.device(), address=("127.0.0.1", port),
                                      identity=IDENTITY, ignore_missing_devices=True)
        self.server.context = OneUnit(self.device())
        await self.server.serve_forever(background=True)
        transport = self.server.transport
        bound = transport.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        if self.settings.print_rate > 0:
            self._products = asyncio.create_task(product_flow(self, self.settings.print_rate),
                                                 name="laser-products")
        return f"127.0.0.1:{bound}"

    async def stop(self) -> None:
        await stop_task(self._products)
        self._products = None
        if self.server is not None:
            await self.server.shutdown()  # type: ignore[no-untyped-call]
            self.server = None
