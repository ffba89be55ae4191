"""Optical code reader per OPC 30010 AutoID, on an asyncua client.

Each ``read()`` triggers one scan with the ``Scan`` method and takes its
``OpticalScanResult``: an AutoID reader raises no event for a scan that found nothing, so
only the method's status (``NO_IDENTIFIER``) tells a no-read, and the item flow needs one
result per trigger. The driver subscribes to ``DeviceStatus`` (an ``Error`` status makes
reads fail with a typed fault) and to the device's scan events, which it counts and checks
(stray results of a kind an optical reader never sends are counted and skipped).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from asyncua.client.client import Client
from asyncua.common.node import Node

from drivers.errors import ConnectionLost, DeviceFault, ProtocolError
from drivers.interfaces import GRADES, Grade, ReadResult
from drivers.link import DeviceLink
from drivers.opcua.link import client_for, loaded_type, numeric_node, ua_errors
from line_config.devices import AutoIdReader as AutoIdConfig

log = logging.getLogger("codeline.drivers.autoid")

AUTOID_URI = "http://opcfoundation.org/UA/AutoID/"
DI_URI = "http://opcfoundation.org/UA/DI/"
DEVICE_SET = 5001  # DI
OPTICAL_SCAN_EVENT_TYPE = 1009  # AutoID
SUCCESS, NO_IDENTIFIER = 0, 8
DEVICE_STATUS = {0: "idle", 1: "error", 2: "scanning", 3: "busy"}
STRING, BYTESTRING = 2, 1  # ScanData union switch values


def grade_of(value: float | None) -> Grade | None:
    """An AutoID Grade (ISO/IEC 15415 numeric 0-4) as a letter."""
    if value is None:
        return None
    return GRADES[max(0, min(4, round(value)))]


def scan_text(result: Any) -> str | None:
    """The decoded data of an OpticalScanResult (String or ByteString ScanData)."""
    data = getattr(result, "ScanData", None)
    value = getattr(data, "Value", None)
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return None


class _Handler:
    """Subscription handler: DeviceStatus changes and scan events."""

    def __init__(self, reader: AutoIdReader) -> None:
        self.reader = reader

    def datachange_notification(self, node: Node, val: Any, data: Any) -> None:
        self.reader.device_status = DEVICE_STATUS.get(int(val), str(val))

    def event_notification(self, event: Any) -> None:
        results = getattr(event, "ScanResult", None)
        for result in results if isinstance(results, list) else [results]:
            self.reader.took_event(result)


class AutoIdReader(DeviceLink):
    """Driver of one AutoID optical reader; see the module docstring."""

    family = "reader"

    def __init__(self, config: AutoIdConfig, result_timeout: float = 2.0) -> None:
        super().__init__(config.id, config.reconnect_min_ms, config.reconnect_max_ms)
        self.config = config
        self.result_timeout = result_timeout
        self.client: Client | None = None
        self.device: Node | None = None
        self.scan: Node | None = None
        self.device_status = "unknown"
        self.identity = ""
        self.scan_events = 0
        self.stray_events = 0
        self.last_event: str | None = None
        self._lost = asyncio.Event()
        self._lost_why = ""
        self._up = asyncio.Event()

    # --- link ---
    async def open_link(self) -> None:
        await self._open()

    async def close_link(self) -> None:
        await self._close_client()

    async def on_disconnected(self, why: str) -> None:
        self._up.clear()

    async def session(self) -> None:
        """Until a scan finds the link gone (the client has no session events of its own)."""
        await self._lost.wait()
        raise ConnectionLost(self._lost_why)

    async def _open(self) -> None:
        self.client = await client_for(self.config.transport)
        with ua_errors(self.name, "connect"):
            await self.client.connect()
            await self.client.load_data_type_definitions()
            di = await self.client.get_namespace_index(DI_URI)
            autoid = await self.client.get_namespace_index(AUTOID_URI)
            device_set = self.client.get_node(numeric_node(di, DEVICE_SET))
            self.device = None
            for child in await device_set.get_children():
                if (await child.read_browse_name()).Name == self.config.device_name:
                    self.device = child
            if self.device is None:
                raise DeviceFault("NO_DEVICE", f"{self.name}: no device "
                                  f"{self.config.device_name!r} in the server's DeviceSet")
            self.scan = await self.device.get_child(f"{autoid}:Scan")
            status = await self.device.get_child(f"{autoid}:DeviceStatus")
            self.device_status = DEVICE_STATUS.get(int(await status.read_value()), "unknown")
            self.identity = await self._identity(di)
            subscription = await self.client.create_subscription(20, _Handler(self))
            await subscription.subscribe_data_change(status)
            await subscription.subscribe_events(
                self.device, numeric_node(autoid, OPTICAL_SCAN_EVENT_TYPE))
        self._lost.clear()
        self._up.set()

    async def _identity(self, di: int) -> str:
        assert self.device is not None
        parts = []
        for name in ("Manufacturer", "Model", "SerialNumber"):
            with contextlib.suppress(Exception):
                value = await (await self.device.get_child(f"{di}:{name}")).read_value()
                text = getattr(value, "Text", value)
                if text:
                    parts.append(str(text))
        return " ".join(parts)

    def _link_lost(self, why: str) -> None:
        self._up.clear()
        self._lost_why = why
        self._lost.set()

    async def _close_client(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.disconnect()

    # --- events ---
    def took_event(self, result: Any) -> None:
        """A scan event: counted, or skipped as stray when it carries no optical code data
        (an RFID EPC, say)."""
        text = scan_text(result)
        if text is None:
            self.stray_events += 1
            return
        self.scan_events += 1
        self.last_event = text

    # --- CodeReader ---
    async def read(self) -> ReadResult:
        """Trigger one scan and return its result (None data: a no-read)."""
        if not self._up.is_set() or self.device is None or self.scan is None:
            raise ConnectionLost(f"{self.name}: not connected")
        if self.device_status == "error":
            raise DeviceFault("READER_ERROR", f"{self.name} reports DeviceStatus Error")
        settings = loaded_type("ScanSettings")(Duration=0.0, Cycles=1, DataAvailable=False)
        try:
            async with asyncio.timeout(self.result_timeout):
                with ua_errors(self.name, "Scan"):
                    outputs = await self.device.call_method(self.scan.nodeid, settings)
        except (ConnectionLost, TimeoutError) as exc:
            self._link_lost(str(exc) or "scan timed out")
            raise ConnectionLost(f"{self.name}: {exc or 'no scan result in time'}") from None
        if not isinstance(outputs, list) or len(outputs) != 2:
            raise ProtocolError(f"{self.name}: Scan answered {outputs!r}")
        results, status = outputs
        if int(status) != SUCCESS or not results:
            return ReadResult(None)
        first = results[0]
        return ReadResult(scan_text(first), grade_of(getattr(first, "Grade", None)))

    async def status(self) -> dict[str, Any]:
        """What the reader reports, for ``codeline probe``."""
        return {"online": self._up.is_set(), "identity": self.identity,
                "device_status": self.device_status, "scan_events": self.scan_events,
                "stray_events": self.stray_events}
