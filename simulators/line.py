"""A whole simulated line: every device of a line config as a simulator on its configured
loopback port, and the conveyor that moves physical items past them.

Products enter at ``rate`` per second while the PLC runs the infeed and the printer is ready
to print (a real line interlocks infeed with the printer's ready output). Each item reaches
the reject gate ``transit_ms`` after it was printed; the PLC decides there. Accepted items
fill the open case; a full case waits at the case station under the case camera until the
PLC releases it (the controller sealed it); released cases queue at the palletizer, which
places each on the open pallet, past the pallet reader, while the pallet has room (a full
pallet takes no case until the PLC releases it and an empty one takes its place). Labels
from the label printer land on the case at the station or on the open pallet, as their
content says. The record of what
physically happened (``rejected``, ``cases``, ``pallets``) is what tests compare with the
database.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from drivers.interfaces import Image
from drivers.labels.zpl_codec import parse_format
from line_config import devices as cfg
from line_config.models import (
    CasePackStation,
    ItemPrintStation,
    ItemVerifyStation,
    Line,
    PalletBuildStation,
)
from simulators.autoid import AutoIdReaderSim, AutoIdSettings
from simulators.camera import CameraSettings, CameraSim, compose
from simulators.clarity import ClarityPrinterSim, ClaritySettings
from simulators.dmcc import DmccReaderSim, DmccSettings
from simulators.items import Item, ItemStream
from simulators.keyence import KeyenceReaderSim, KeyenceSettings
from simulators.laser import LaserSettings, LaserSim
from simulators.opcua_device import OpcUaDeviceSim
from simulators.opcua_printer import OpcUaPrinterSettings, OpcUaPrinterSim
from simulators.wsi import WsiPrinterSim, WsiSettings
from simulators.zpl import ZplPrinterSim, ZplSettings


class LineSimSettings(BaseModel):
    """The conveyor and the faults injected along the line."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 1
    rate: float = Field(default=100.0, gt=0, le=20_000, description="products per second")
    transit_ms: int = Field(default=1500, ge=50, le=60_000, description="printer to gate")
    noread_rate: float = Field(default=0.0, ge=0, le=1)
    misread_rate: float = Field(default=0.0, ge=0, le=1)
    repeat_rate: float = Field(default=0.0, ge=0, le=1, description="duplicate reads")
    printer_disconnect_after: int = Field(default=0, ge=0, description="prints, then link drop")
    label_roll_change_at: int = Field(default=0, ge=0, description="label N reprints the last")
    label_print_ms: int = Field(default=5, ge=0, le=10_000)
    case_camera_blind_after: int = Field(default=0, ge=0, description="cases released, then "
                                         "the case camera sees nothing (lens covered)")


@dataclass
class PhysicalCase:
    """A case on the line: the items in it and the label on it."""

    items: list[str]
    label: str | None = None


@dataclass
class PhysicalPallet:
    """A pallet: its cases and its label."""

    cases: list[PhysicalCase] = field(default_factory=list)
    label: str | None = None


class CaseCameraSim(CameraSim):
    """The camera above the case station: shows the case waiting there (nothing is consumed)."""

    def __init__(self, settings: CameraSettings, line: SimLine) -> None:
        super().__init__(settings)
        self.line = line

    def next_frame(self) -> Image:
        case = self.line.case_at_station()
        blind = self.line.settings.case_camera_blind_after
        if blind and len(self.line.cases) >= blind:
            case = None
        payloads: list[str | None] = list(case.items) if case else []
        self.shown.append(payloads)
        self.frames += 1
        return compose(payloads, self.settings, self.rng)


LABEL_READER = "labels"


class RoutedZplSim(ZplPrinterSim):
    """The label printer; each label lands on the case at the station or the open pallet."""

    def __init__(self, settings: ZplSettings, line: SimLine) -> None:
        super().__init__(settings, line.labels)
        self.line = line

    async def _print(self, fmt: str) -> None:
        before = len(self.printed)
        await super()._print(fmt)
        if len(self.printed) > before:
            label = self.printed[-1]
            data = label.symbols[0].data if label.symbols else None
            requested = parse_format(fmt)[0]
            for_pallet = bool(requested) and requested[0].kind == "code128"
            self.line.apply_label(data, for_pallet)
            # The reader sees the label on the container now, not one printed before it
            # that was never read (say, by a controller that died in between).
            self.line.labels.show_only_latest(LABEL_READER)


class Served(Protocol):
    """A device simulator the line starts on its configured loopback port."""

    async def serve_tcp(self, port: int = 0) -> str: ...

    async def stop(self) -> None: ...


class SimLine:
    """The simulators of one configured line and the conveyor between them."""

    def __init__(self, line: Line, settings: LineSimSettings | None = None) -> None:
        self.line = line
        self.settings = s = settings or LineSimSettings()
        self.items = ItemStream()
        self.labels = ItemStream()
        self.pallet_cases = ItemStream()
        self.sims: dict[str, Served] = {}
        self.ports: dict[str, int] = {}
        self.infeed = False
        self.printed_at: deque[tuple[float, Item]] = deque()
        self.open_case: list[str] = []
        self.full_cases: deque[PhysicalCase] = deque()
        self.to_palletizer: deque[PhysicalCase] = deque()
        self.open_pallet = PhysicalPallet()
        self.pallets: list[PhysicalPallet] = []
        self.cases: list[PhysicalCase] = []
        self.accepted: list[Item] = []
        self.rejected: list[tuple[Item, str]] = []
        self.decide: Callable[[Item], str | None] = lambda item: "no PLC"
        self._tasks: list[asyncio.Task[None]] = []
        devices = {d.id: d for d in line.devices}
        reader_faults = {"seed": s.seed, "noread_rate": s.noread_rate,
                         "misread_rate": s.misread_rate, "repeat_rate": s.repeat_rate}
        self.printer: Any = None
        self.verify_reader = "verify"
        for station in line.stations:
            if isinstance(station, ItemPrintStation):
                self.printer = self._printer(devices[station.printer])
            elif isinstance(station, ItemVerifyStation):
                self._reader(devices[station.reader], self.items, "verify", reader_faults)
            elif isinstance(station, CasePackStation):
                device = devices[station.camera]
                if not isinstance(device, cfg.Camera):
                    raise ValueError(f"the simulated case station needs a camera, not "
                                     f"{device.driver}")
                per_case = line.packaging.items_per_case
                self._add(device, CaseCameraSim(CameraSettings(
                    seed=s.seed, symbology=device.symbologies[0], per_frame=per_case,
                    width=1600, height=1200, module_px=4), self))
                self._labels(devices[station.label_printer], devices[station.label_reader])
            elif isinstance(station, PalletBuildStation):
                self._reader(devices[station.reader], self.pallet_cases, "pallet", {})
                self._labels(devices[station.label_printer], devices[station.label_reader])

    # --- building ---
    def _add(self, device: cfg.DeviceBase, sim: Served) -> None:
        transport = getattr(device, "transport", None)
        port = getattr(transport, "port", None)
        if isinstance(transport, cfg.OpcUaTransport) and isinstance(sim, OpcUaDeviceSim):
            where = urlsplit(transport.endpoint)
            port = where.port or 4840
            sim.path = where.path.strip("/") or sim.path
            if transport.security != "none":
                sim.security = ("none", transport.security)
        if port is None:
            raise ValueError(f"device {device.id}: the simulated line serves network devices "
                             f"only (TCP, Modbus TCP, OPC-UA)")
        self.sims[device.id] = sim
        self.ports[device.id] = port

    def _printer(self, device: cfg.DeviceBase) -> Any:
        s = self.settings
        sim: Any
        if isinstance(device, cfg.ClarityPrinter):
            sim = ClarityPrinterSim(ClaritySettings(
                seed=s.seed, disconnect_after=s.printer_disconnect_after,
                max_records=max(1000, device.high_water * 2)), self.items)
        elif isinstance(device, cfg.WsiPrinter):
            sim = WsiPrinterSim(WsiSettings(disconnect_after=s.printer_disconnect_after),
                                self.items)
        elif isinstance(device, cfg.ModbusLaser):
            sim = LaserSim(LaserSettings(unit=device.transport.unit,
                                         disconnect_after=s.printer_disconnect_after), self.items)
        elif isinstance(device, cfg.OpcUaPrinter):
            sim = OpcUaPrinterSim(OpcUaPrinterSettings(
                disconnect_after=s.printer_disconnect_after,
                capacity=max(2000, device.queue_target * 2)), self.items)
        else:
            raise ValueError(f"no simulated printer for device {device.id}")
        self._add(device, sim)
        return sim

    def _reader(self, device: cfg.DeviceBase, stream: ItemStream, name: str,
                faults: dict[str, Any]) -> None:
        if device.id in self.sims:
            return
        sim: Served
        if isinstance(device, cfg.DmccReader):
            sim = DmccReaderSim(DmccSettings(name=name, noread_string=device.noread_string,
                                             **faults), stream)
        elif isinstance(device, cfg.KeyenceReader):
            sim = KeyenceReaderSim(KeyenceSettings(name=name, **faults), stream)
        elif isinstance(device, cfg.AutoIdReader):
            sim = AutoIdReaderSim(AutoIdSettings(name=name, device_name=device.device_name,
                                                 **faults), stream)
        else:
            raise ValueError(f"no simulated reader for device {device.id}")
        self._add(device, sim)

    def _labels(self, printer: cfg.DeviceBase, reader: cfg.DeviceBase) -> None:
        if printer.id not in self.sims:
            self._add(printer, RoutedZplSim(ZplSettings(
                print_ms=self.settings.label_print_ms,
                roll_change_at=self.settings.label_roll_change_at), self))
        self._reader(reader, self.labels, LABEL_READER, {})

    # --- running ---
    async def start(self) -> None:
        """Serve every device on its port, then run the conveyor. A port that cannot be
        listened on is an OSError naming the device (what was started is stopped)."""
        started: list[Served] = []
        for device_id, sim in self.sims.items():
            try:
                await sim.serve_tcp(self.ports[device_id])
            except OSError as exc:
                for done in started:
                    with contextlib.suppress(Exception):
                        await done.stop()
                raise OSError(exc.errno, f"simulated device {device_id} cannot listen on "
                              f"127.0.0.1:{self.ports[device_id]}: {exc.strerror or exc}"
                              ) from None
            started.append(sim)
        self._tasks = [asyncio.create_task(self._conveyor(), name="conveyor"),
                       asyncio.create_task(self._gate(), name="gate")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sim in self.sims.values():
            await sim.stop()

    def printer_ready(self) -> bool:
        p = self.printer
        if isinstance(p, ClarityPrinterSim):
            return p.state == 3 and not p.faults and bool(p.buffer)
        return bool(getattr(p, "ready", lambda: True)())

    async def _conveyor(self) -> None:
        due = 0.0
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.002)
            now = time.monotonic()
            due = min(due + (now - last) * self.settings.rate, 50.0) if self.infeed else 0.0
            last = now
            while due >= 1 and self.infeed and self.printer_ready():
                due -= 1
                before = len(self.items.items)
                self.printer.product_detect()
                if len(self.items.items) > before:
                    self.printed_at.append((now, self.items.items[-1]))

    async def _gate(self) -> None:
        transit = self.settings.transit_ms / 1000
        while True:
            await asyncio.sleep(0.002)
            now = time.monotonic()
            while self.printed_at and self.printed_at[0][0] + transit <= now:
                _, item = self.printed_at.popleft()
                self.at_gate(item)

    def at_gate(self, item: Item) -> None:
        """The item reaches the reject gate: the PLC's decision, then the case packer."""
        cursor = self.items.cursors.get(self.verify_reader, 0)
        self.items.cursors[self.verify_reader] = max(cursor, item.seq)  # it left the camera
        why = self.decide(item)
        if why is not None:
            self.rejected.append((item, why))
            return
        self.accepted.append(item)
        self.open_case.append(item.code or "")
        if len(self.open_case) == self.line.packaging.items_per_case:
            self.full_cases.append(PhysicalCase(self.open_case))
            self.open_case = []

    def in_transit(self) -> int:
        """Items printed and not yet at the gate."""
        return len(self.printed_at)

    def push_partial_case(self) -> None:
        """Batch end: the packer pushes the part-filled case to the station."""
        if self.open_case:
            self.full_cases.append(PhysicalCase(self.open_case))
            self.open_case = []

    def case_at_station(self) -> PhysicalCase | None:
        return self.full_cases[0] if self.full_cases else None

    def apply_label(self, data: str | None, for_pallet: bool) -> None:
        """A label came out of the printer and was applied (replacing a removed wrong one)."""
        if for_pallet:
            self.open_pallet.label = data
        elif self.full_cases:
            self.full_cases[0].label = data

    def release_case(self) -> None:
        """The controller sealed the case at the station: it moves on to the pallet."""
        if not self.full_cases:
            return
        case = self.full_cases.popleft()
        self.cases.append(case)
        self.to_palletizer.append(case)
        self._palletize()

    def release_pallet(self) -> None:
        """The controller sealed the pallet: it leaves for the warehouse, an empty one takes
        its place and the palletizer goes on with the cases queued for it."""
        self.pallets.append(self.open_pallet)
        self.open_pallet = PhysicalPallet()
        self._palletize()

    def record(self) -> dict[str, Any]:
        """What physically happened, as JSON-able data: every printed code, the items the
        gate accepted and rejected, each case (its label and items) and each pallet that
        left (its label and its cases' labels), and the cases still waiting for a pallet."""
        return {
            "printed": [item.code for item in self.items.items if item.code is not None],
            "accepted": [item.code for item in self.accepted if item.code is not None],
            "rejected": [item.code for item, _ in self.rejected if item.code is not None],
            "cases": [{"label": case.label, "items": case.items} for case in self.cases],
            "pallets": [{"label": pallet.label, "cases": [c.label for c in pallet.cases]}
                        for pallet in self.pallets],
            "not_shipped_cases": len(self.to_palletizer) + len(self.open_pallet.cases),
        }

    def _palletize(self) -> None:
        room = self.line.packaging.cases_per_pallet - len(self.open_pallet.cases)
        while self.to_palletizer and room > 0:
            case = self.to_palletizer.popleft()
            self.pallet_cases.arrive(case.label)
            self.open_pallet.cases.append(case)
            room -= 1
