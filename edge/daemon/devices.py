"""A line's drivers, built from its config by role: one driver per device, shared by the
stations that use it; label printer and label reader paired as a bench."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

from drivers.interfaces import CodeReader, Device, Printer
from drivers.registry import (
    MultiReader,
    label_printer_for,
    multi_reader_for,
    printer_for,
    reader_for,
)
from drivers.vision.decode_process import DecodePool
from edge.daemon.errors import root_error
from edge.daemon.snapshot import DeviceHealth
from edge.daemon.stations import LabelBench
from line_config.devices import ZplLabelPrinter
from line_config.models import (
    CasePackStation,
    ItemPrintStation,
    ItemVerifyStation,
    Line,
    PalletBuildStation,
)


@dataclass
class Devices:
    """A line's drivers, by role; a device shared by two stations is one driver."""

    printer: Printer
    reader: CodeReader
    case_camera: MultiReader | None
    pallet_reader: CodeReader | None
    benches: dict[str, LabelBench]
    all: dict[str, Device]

    async def connect_all(self, timeout_s: float) -> None:
        """Every device at once (a slow one does not make the others wait); the first
        failure, named, if any fails."""
        async def connect(name: str, device: Device) -> None:
            try:
                async with asyncio.timeout(timeout_s):
                    await device.connect()
            except TimeoutError:
                raise TimeoutError(f"{name} did not answer within {timeout_s:.0f} s") from None

        try:
            async with asyncio.TaskGroup() as tasks:
                for name, device in self.all.items():
                    tasks.create_task(connect(name, device))
        except BaseExceptionGroup as group:
            raise root_error(group) from None

    async def close_all(self) -> None:
        """Close every device; one that fails to close does not keep the others open."""
        for device in self.all.values():
            with contextlib.suppress(Exception):
                await device.close()

    @classmethod
    def build(cls, line: Line, decoding: DecodePool) -> Devices:
        """The drivers of ``line``; its cameras' frames are decoded in ``decoding``."""
        by_id = {d.id: d for d in line.devices}
        made: dict[tuple[str, str], Any] = {}

        def get(kind: str, device_id: str) -> Any:
            key = (kind, device_id)
            if key not in made:
                device = by_id[device_id]
                made[key] = (printer_for(device) if kind == "printer"
                             else label_printer_for(device) if kind == "label"
                             else multi_reader_for(device, decoding) if kind == "multi"
                             else reader_for(device, decoding))
            return made[key]

        printer = reader = case_camera = pallet_reader = None
        benches: dict[str, LabelBench] = {}
        for station in line.stations:
            if isinstance(station, ItemPrintStation):
                printer = get("printer", station.printer)
            elif isinstance(station, ItemVerifyStation):
                reader = get("reader", station.reader)
            elif isinstance(station, CasePackStation | PalletBuildStation):
                key = _bench_key(station)
                if key not in benches:
                    labels = by_id[station.label_printer]
                    benches[key] = LabelBench(get("label", station.label_printer),
                                              get("reader", station.label_reader),
                                              dpi=labels.dpi if isinstance(
                                                  labels, ZplLabelPrinter) else 203)
                if isinstance(station, CasePackStation):
                    case_camera = get("multi", station.camera)
                else:
                    pallet_reader = get("reader", station.reader)
        if printer is None or reader is None:
            raise ValueError(f"line {line.id} has no item_print/item_verify station")
        return cls(printer, reader, case_camera, pallet_reader, benches,
                   {device_id: driver for (_, device_id), driver in made.items()})

    def bench_for(self, station: CasePackStation | PalletBuildStation) -> LabelBench:
        """The label printer and label reader pair of ``station``."""
        return self.benches[_bench_key(station)]


def _bench_key(station: CasePackStation | PalletBuildStation) -> str:
    return f"{station.label_printer}+{station.label_reader}"


def device_up(device: Device) -> bool:
    """Whether a driver's link is up."""
    return bool(device.availability.up)


def device_health(device: Device) -> DeviceHealth:
    """A device's link in words for people: up, or down since when and why."""
    link = device.availability
    return DeviceHealth(up=bool(link.up), since=round(link.since * 1000),
                        cause="" if link.up else link.cause)
