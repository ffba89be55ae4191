"""Laser marker over Modbus TCP (our register map, ``laser_map``), on pymodbus's async client.

Every command is a handshake: write the data registers, raise the command coil, wait for its
mirror input, drop the coil. Queuing a text costs four round trips (data, raise, mirror, drop);
the status (error code, mark count, queue depth) and the inputs are polled in two. The mark
count is the print confirmation: each increase is accounted to the oldest queued text.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from drivers.errors import CommandRefused, ConnectionLost, DeviceTimeout, ProtocolError
from drivers.printers import laser_map as m
from drivers.printers.counted import CountedPrinter, Snapshot
from line_config.devices import ModbusLaser as ModbusLaserConfig

log = logging.getLogger("codeline.drivers.laser")

BUSY_RETRIES = 5


class ModbusLaser(CountedPrinter):
    """Driver of one laser marker; see the module docstring."""

    STOP_DISCARDS = True  # StopMarking disarms and empties the laser's queue

    def __init__(self, config: ModbusLaserConfig, poll_ms: int = 5) -> None:
        super().__init__(config.id, config.queue_target, config.reconnect_min_ms,
                         config.reconnect_max_ms)
        self.config = config
        self.poll = poll_ms / 1000
        self.client: AsyncModbusTcpClient | None = None
        self.busy_replies = 0
        self.round_trips = 0
        self.inputs: tuple[bool, ...] = ()

    # --- link ---
    async def _open(self) -> None:
        t = self.config.transport
        self.client = AsyncModbusTcpClient(t.host, port=t.port, timeout=t.timeout_ms / 1000,
                                           retries=0, reconnect_delay=0)
        if not await self.client.connect():
            raise ConnectionLost(f"cannot reach the laser at {t.host}:{t.port}")
        self.identity = await self._identity()
        await self._reset_handshake()

    async def _reset_handshake(self) -> None:
        """Drop every command coil and wait for the mirrors to fall: a coil left high by a
        lost link would make the next command's acknowledge a stale one."""
        await self._request("write_coils", 0, [False] * len(m.COMMANDS))
        for command in m.COMMANDS:
            mirror = m.MIRROR_BASE + command.address
            await self._until(command, lambda inputs, i=mirror: not inputs[i], refusable=False)

    async def _close_link(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    async def _identity(self) -> str:
        assert self.client is not None
        try:
            reply = await self.client.read_device_information(device_id=self.config.transport.unit)
        except ModbusException:
            return ""
        info = getattr(reply, "information", None) or {}
        parts = [v.decode("ascii", "replace") if isinstance(v, bytes) else str(v)
                 for _, v in sorted(info.items())]
        return " ".join(p for p in parts if p)

    # --- requests ---
    async def _request(self, call: str, *args: Any, **kwargs: Any) -> Any:
        """One Modbus request; a busy device is retried, anything else is a typed error."""
        if self.client is None or not self.client.connected:
            raise ConnectionLost(f"{self.name} is not connected")
        for _ in range(BUSY_RETRIES):
            self.round_trips += 1
            try:
                request = getattr(self.client, call)
                reply = await request(*args, device_id=self.config.transport.unit, **kwargs)
            except ModbusException as exc:
                raise ConnectionLost(f"{self.name}: {exc}") from exc
            if not reply.isError():
                return reply
            code = getattr(reply, "exception_code", None)
            if code == 6:  # DEVICE_BUSY: a reply we skip, counted
                self.busy_replies += 1
                await asyncio.sleep(0.002)
                continue
            raise ProtocolError(f"{self.name}: {call} answered exception {code}")
        raise DeviceTimeout(f"{self.name}: busy on {BUSY_RETRIES} tries of {call}")

    async def _inputs(self) -> tuple[bool, ...]:
        reply = await self._request("read_discrete_inputs", 0, count=m.DISCRETE_INPUTS)
        bits = tuple(bool(b) for b in reply.bits[:m.DISCRETE_INPUTS])
        if len(bits) < m.DISCRETE_INPUTS:
            raise ProtocolError(f"{self.name}: {len(bits)} inputs read, wanted 16")
        self.inputs = bits
        return bits

    async def _command(self, command: m.Register) -> None:
        """Raise the coil, wait for its mirror, drop the coil (refused: the Error input)."""
        mirror = m.MIRROR_BASE + command.address
        await self._request("write_coil", command.address, True)
        try:
            await self._until(command, lambda inputs: inputs[mirror], refusable=True)
        finally:
            if self.client is not None and self.client.connected:
                await self._request("write_coil", command.address, False)
        # The mirror must fall before the coil can be raised again, or the next
        # acknowledge would be this one.
        await self._until(command, lambda inputs: not inputs[mirror], refusable=False)

    async def _until(self, command: m.Register, done: Any, refusable: bool) -> None:
        deadline = time.monotonic() + self.config.handshake_timeout_ms / 1000
        while True:
            inputs = await self._inputs()
            if done(inputs):
                return
            if refusable and inputs[m.ERROR.address] and command is not m.ERROR_CLEAR:
                raise CommandRefused(f"{self.name}: {command.name} refused (laser error set)")
            if time.monotonic() > deadline:
                raise DeviceTimeout(f"{self.name}: no acknowledge of {command.name} in "
                                    f"{self.config.handshake_timeout_ms} ms")
            await asyncio.sleep(0.001)

    # --- CountedPrinter operations ---
    async def _snapshot(self) -> Snapshot:
        reply = await self._request("read_holding_registers", m.ERROR_CODE.address, count=4)
        inputs = await self._inputs()
        try:
            status = m.LaserStatus.parse(list(reply.registers), list(inputs))
        except ValueError as exc:
            raise ProtocolError(f"{self.name}: {exc}") from exc
        faults: dict[str, str] = {}
        if status.error_code:
            faults[m.error_name(status.error_code)] = m.ERRORS.get(
                status.error_code, ("", f"laser error {status.error_code}"))[1]
        if not status.on(m.INTERLOCK):
            faults["INTERLOCK_OPEN"] = "safety interlock open"
        if not status.on(m.SHUTTER_OPEN):
            faults["SHUTTER_CLOSED"] = "beam shutter closed"
        state = "fault" if faults else ("running" if status.on(m.READY) or status.on(m.BUSY)
                                        else "stopped")
        return Snapshot(status.mark_count, status.queue_depth, state, faults)

    async def _load(self, codes: Sequence[str]) -> int:
        text = codes[0]
        registers = m.encode_text(text)
        await self._request("write_registers", m.FIELD_ID.address,
                            [self.config.field_id, len(text), *registers])
        await self._command(m.SET_STRING)
        return 1

    async def _discard(self) -> None:
        await self._command(m.STOP_MARKING)
        if self.want_running:
            await self._command(m.START_MARKING)

    async def _arm(self) -> None:
        await self._command(m.START_MARKING)

    async def _disarm(self) -> None:
        await self._command(m.STOP_MARKING)

    async def _select(self, job: str) -> None:
        """A laser marks the text it is given in the configured field; no job to select."""

    async def _clear_errors(self) -> None:
        await self._command(m.ERROR_CLEAR)

    async def _wait_for_change(self) -> None:
        await asyncio.sleep(self.poll)

    def _check_code(self, code: str) -> None:
        try:
            m.encode_text(code)
        except (ValueError, UnicodeEncodeError) as exc:
            raise ValueError(f"{self.name}: {exc}") from None
