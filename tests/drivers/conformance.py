"""The (driver, simulator) pairs of the conformance suite: one entry per device kind.

Each entry knows how to start its simulator with the common faults, connect its driver, let
one product pass (printers) or put items in front (readers), and raise a device fault. A new
driver gets the whole suite in ``test_conformance.py`` by adding one entry here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from drivers.interfaces import CodeReader
from drivers.opcua.autoid import AutoIdReader
from drivers.opcua.printer import OpcUaPrinter
from drivers.printers.clarity import ClarityPrinter
from drivers.printers.modbus_laser import ModbusLaser
from drivers.printers.wsi import WsiPrinter
from drivers.readers.dmcc import DmccReader
from drivers.readers.keyence import KeyenceReader
from line_config import devices as cfg
from simulators.autoid import AutoIdReaderSim, AutoIdSettings
from simulators.clarity import ClarityPrinterSim, ClaritySettings
from simulators.dmcc import DmccReaderSim, DmccSettings
from simulators.items import ItemStream, MarkingDevice
from simulators.keyence import KeyenceReaderSim, KeyenceSettings
from simulators.laser import LaserSettings, LaserSim
from simulators.opcua_printer import OpcUaPrinterSettings, OpcUaPrinterSim
from simulators.wsi import FAULT_INK, WsiPrinterSim, WsiSettings
from tests.drivers.helpers import tcp


@dataclass(frozen=True)
class Faults:
    """The faults every simulator offers, in the suite's words."""

    garbage: bool = False
    disconnect_after: int = 0


@dataclass(frozen=True)
class PrinterEntry:
    """How the suite drives one printer family."""

    name: str
    start: Callable[[Faults], Awaitable[tuple[Any, Any]]]
    product: Callable[[Any], bool]  # a product passes; False if the device has nothing to print
    fault: Callable[[Any], str]  # raise a stopping fault on the device; its code


@dataclass(frozen=True)
class ReaderEntry:
    """How the suite drives one reader family."""

    name: str
    start: Callable[[Faults, ItemStream], Awaitable[tuple[Any, CodeReader]]]


RECONNECT = {"reconnect_min_ms": 20, "reconnect_max_ms": 100}


async def _wsi(faults: Faults) -> tuple[WsiPrinterSim, WsiPrinter]:
    sim = WsiPrinterSim(WsiSettings(garbage_every=7 if faults.garbage else 0,
                                    disconnect_after=faults.disconnect_after))
    where = await sim.serve_tcp()
    driver = WsiPrinter(cfg.WsiPrinter(id="cij", driver="wsi", transport=tcp(where),
                                       message="M", counter_poll_ms=1, **RECONNECT))
    await driver.connect(attempts=3)
    return sim, driver


def _wsi_product(sim: WsiPrinterSim) -> bool:
    # A CIJ prints whatever its field holds: the product waits for fresh data, as a line
    # paced by the printer does.
    last = sim.items.items[-1].code if sim.items.items else None
    if not sim.fields.get("1") or sim.fields.get("1") == last:
        return False
    sim.product_detect()
    return True


def _wsi_fault(sim: WsiPrinterSim) -> str:
    sim.raise_fault(FAULT_INK)
    return "INK_EMPTY"


async def _clarity(faults: Faults) -> tuple[ClarityPrinterSim, ClarityPrinter]:
    sim = ClarityPrinterSim(ClaritySettings(garbage_every=7 if faults.garbage else 0,
                                            disconnect_after=faults.disconnect_after))
    where = await sim.serve_tcp()
    driver = ClarityPrinter(cfg.ClarityPrinter(id="tij", driver="clarity", transport=tcp(where),
                                               job="J", low_water=20, high_water=60,
                                               **RECONNECT))
    await driver.connect(attempts=3)
    return sim, driver


def _clarity_product(sim: ClarityPrinterSim) -> bool:
    if not sim.buffer or sim.state != 3 or sim.faults:
        return False
    sim.product_detect()
    return True


def _clarity_fault(sim: ClarityPrinterSim) -> str:
    sim._fault("HEAD", "print head fault", "0")
    return "HEAD"


async def _laser(faults: Faults) -> tuple[LaserSim, ModbusLaser]:
    sim = LaserSim(LaserSettings(busy_every=7 if faults.garbage else 0,
                                 disconnect_after=faults.disconnect_after))
    host, port = (await sim.serve_tcp()).rsplit(":", 1)
    driver = ModbusLaser(cfg.ModbusLaser(
        id="laser", driver="modbus_laser", **RECONNECT,
        transport={"kind": "modbus_tcp", "host": host, "port": int(port), "timeout_ms": 500}))
    await driver.connect(attempts=3)
    return sim, driver


def _laser_fault(sim: LaserSim) -> str:
    sim.laser_alarm()
    return "LASER_ALARM"


async def _opcua_printer(faults: Faults) -> tuple[OpcUaPrinterSim, OpcUaPrinter]:
    sim = OpcUaPrinterSim(OpcUaPrinterSettings(refuse_every=5 if faults.garbage else 0,
                                               disconnect_after=faults.disconnect_after))
    await sim.serve_tcp()
    driver = OpcUaPrinter(cfg.OpcUaPrinter(
        id="opc", driver="opcua_printer", job="J", queue_target=60, **RECONNECT,
        transport={"kind": "opcua", "endpoint": sim.endpoint, "security": "none"}))
    await driver.connect(attempts=3)
    return sim, driver


def _when_ready(sim: MarkingDevice) -> bool:
    """A product passes a printer that says when it is ready (laser, OPC-UA printer)."""
    if not sim.ready():
        return False
    sim.product_detect()
    return True


def _opcua_printer_fault(sim: OpcUaPrinterSim) -> str:
    sim.raise_fault("RIBBON_OUT", "ribbon out")
    return "RIBBON_OUT"


PRINTERS = [
    PrinterEntry("wsi", _wsi, _wsi_product, _wsi_fault),
    PrinterEntry("clarity", _clarity, _clarity_product, _clarity_fault),
    PrinterEntry("modbus_laser", _laser, _when_ready, _laser_fault),
    PrinterEntry("opcua_printer", _opcua_printer, _when_ready, _opcua_printer_fault),
]


async def _dmcc(faults: Faults, items: ItemStream) -> tuple[DmccReaderSim, CodeReader]:
    sim = DmccReaderSim(DmccSettings(garbage_rate=0.3 if faults.garbage else 0.0,
                                     disconnect_after=faults.disconnect_after), items)
    driver = DmccReader(cfg.DmccReader(id="dm", driver="dmcc",
                                       transport=tcp(await sim.serve_tcp()), **RECONNECT),
                        result_timeout=0.3)
    await driver.connect(attempts=3)
    return sim, driver


async def _keyence(faults: Faults, items: ItemStream) -> tuple[KeyenceReaderSim, CodeReader]:
    sim = KeyenceReaderSim(KeyenceSettings(garbage_rate=0.3 if faults.garbage else 0.0,
                                           disconnect_after=faults.disconnect_after), items)
    driver = KeyenceReader(cfg.KeyenceReader(id="sr", driver="keyence_sr",
                                             transport=tcp(await sim.serve_tcp()), **RECONNECT),
                           result_timeout=0.3)
    await driver.connect(attempts=3)
    return sim, driver


async def _autoid(faults: Faults, items: ItemStream) -> tuple[AutoIdReaderSim, CodeReader]:
    sim = AutoIdReaderSim(AutoIdSettings(garbage_rate=0.3 if faults.garbage else 0.0,
                                         disconnect_after=faults.disconnect_after), items)
    await sim.serve_tcp()
    driver = AutoIdReader(cfg.AutoIdReader(
        id="autoid", driver="autoid_opcua", **RECONNECT,
        transport={"kind": "opcua", "endpoint": sim.endpoint, "security": "none"}))
    await driver.connect(attempts=3)
    return sim, driver


READERS = [
    ReaderEntry("dmcc", _dmcc),
    ReaderEntry("keyence", _keyence),
    ReaderEntry("autoid", _autoid),
]


async def run_line(entry: PrinterEntry, sim: Any, stop: asyncio.Event) -> None:
    """Products pass the printer while it has something to print, until ``stop``."""
    while not stop.is_set():
        entry.product(sim)
        await asyncio.sleep(0.001)
