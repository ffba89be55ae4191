"""ZPL label printer on raw TCP (port 9100): send a label, confirm it by the odometer.

A label counts as printed when ``odometer.total_label_count`` advanced by exactly one; no
advance is a label not printed, more than one an extra label (both faults the station must
act on). The case/pallet station still verifies the label with a reader: a roll-change
reprint advances the odometer by one but puts the previous label on the case.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from drivers.errors import DeviceFault, DeviceTimeout
from drivers.interfaces import LabelStatus
from drivers.labels.zpl_codec import (
    HQES_QUERY,
    HS_QUERY,
    ODOMETER_QUERY,
    parse_hqes,
    parse_hs,
    parse_odometer,
)
from drivers.link import StreamDevice
from drivers.transport import Opener, opener_for
from line_config.devices import ZplLabelPrinter as ZplConfig

T = TypeVar("T")


class ZplPrinter(StreamDevice):
    """Driver of one ZPL label printer."""

    family = "label_printer"

    def __init__(self, config: ZplConfig, opener: Opener | None = None,
                 reply_timeout: float = 2.0, poll_s: float = 0.02) -> None:
        super().__init__(config, opener or opener_for(config.transport))
        self.config = config
        self.reply_timeout = reply_timeout
        self.poll_s = poll_s
        self._inbox = bytearray()
        self._arrived = asyncio.Event()
        self._lock = asyncio.Lock()
        self.labels_confirmed = 0

    async def on_connected(self) -> None:
        self._inbox.clear()
        self.start_pump(self._read_loop())

    async def _read_loop(self) -> None:
        while True:
            data = await self.received()
            self._inbox += data
            self._arrived.set()

    async def _query(self, request: bytes, parse: Callable[[bytes], T | None]) -> T:
        async with self._lock:
            self._inbox.clear()
            self.write(request)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.reply_timeout
            while True:
                result = parse(bytes(self._inbox))
                if result is not None:
                    return result
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise DeviceTimeout(f"{self.name}: no answer to {request[:12]!r}")
                self._arrived.clear()
                try:
                    async with asyncio.timeout(remaining):
                        await self._arrived.wait()
                except TimeoutError:
                    continue

    async def odometer(self) -> int:
        return await self._query(ODOMETER_QUERY, parse_odometer)

    async def status(self) -> LabelStatus:
        errors, warnings = await self._query(HQES_QUERY, parse_hqes)
        hs = await self._query(HS_QUERY, parse_hs)
        if hs.paused:
            errors.append("paused")
        if hs.buffer_full:
            errors.append("buffer full")
        return LabelStatus(not errors, tuple(errors), tuple(warnings), await self.odometer())

    async def print_label(self, zpl: str) -> None:
        if not zpl.startswith("^XA") or not zpl.endswith("^XZ"):
            raise ValueError("a label format runs from ^XA to ^XZ")
        state = await self.status()
        if state.errors:
            raise DeviceFault("LABEL_PRINTER", f"{self.name}: {', '.join(state.errors)}")
        before = state.labels_printed
        async with self._lock:
            self.write(zpl.encode("ascii"))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.confirm_timeout_ms / 1000
        now = before
        while loop.time() < deadline:
            await asyncio.sleep(self.poll_s)
            now = await self.odometer()
            if now > before:
                await asyncio.sleep(self.poll_s)  # a second label would follow at once
                now = await self.odometer()
                break
        delta = now - before
        if delta == 0:
            state = await self.status()
            why = ", ".join(state.errors) or "odometer did not advance"
            raise DeviceFault("NOT_PRINTED", f"{self.name}: label not printed ({why})")
        if delta > 1:
            raise DeviceFault("EXTRA_LABEL", f"{self.name}: {delta} labels came out for one")
        self.labels_confirmed += 1
