"""One conformance suite for every (driver, simulator) pair in ``conformance.py``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from drivers.errors import DriverError
from simulators.items import ItemStream
from tests.drivers.conformance import PRINTERS, READERS, Faults, PrinterEntry, ReaderEntry, run_line
from tests.drivers.helpers import Ledger, collect

CODES = [f"CF{i:06d}" for i in range(300)]


@asynccontextmanager
async def printing(entry: PrinterEntry, faults: Faults) -> AsyncIterator[tuple[Any, Any]]:
    sim, driver = await entry.start(faults)
    stop = asyncio.Event()
    line = asyncio.create_task(run_line(entry, sim, stop))
    try:
        yield sim, driver
    finally:
        stop.set()
        await line
        await driver.close()
        await sim.stop()


@pytest.mark.parametrize("entry", PRINTERS, ids=lambda e: e.name)
async def test_printer_connects_selects_a_job_and_reports_its_status(entry: PrinterEntry) -> None:
    async with printing(entry, Faults()) as (_, driver):
        await driver.select_job("JOB2")
        status = await driver.status()
        assert status.online and status.job == "JOB2" and status.pending == 0


@pytest.mark.parametrize("entry", PRINTERS, ids=lambda e: e.name)
async def test_printer_refills_under_load_and_confirms_in_order(entry: PrinterEntry) -> None:
    async with printing(entry, Faults()) as (sim, driver):
        await driver.send(CODES)
        await driver.start()
        ledger = Ledger()
        await collect(driver.event_stream, ledger, len(CODES), seconds=30)
        assert ledger.printed == CODES == [c for c in sim.items.printed() if c]
        ledger.check(CODES)


@pytest.mark.parametrize("entry", PRINTERS, ids=lambda e: e.name)
async def test_printer_fault_is_a_typed_event(entry: PrinterEntry) -> None:
    async with printing(entry, Faults()) as (sim, driver):
        await driver.send(CODES[:50])
        await driver.start()
        ledger = Ledger()
        await collect(driver.event_stream, ledger, 5)
        code = entry.fault(sim)
        await collect(driver.event_stream, ledger, len(ledger.settled()), faults=1)
        assert code in ledger.faults
        ledger.check(CODES)


@pytest.mark.parametrize("entry", PRINTERS, ids=lambda e: e.name)
@pytest.mark.parametrize("faults", [Faults(garbage=True), Faults(disconnect_after=40)],
                         ids=["garbage", "disconnect"])
async def test_printer_never_reports_a_code_twice_or_loses_one(entry: PrinterEntry,
                                                                faults: Faults) -> None:
    async with printing(entry, faults) as (sim, driver):
        await driver.send(CODES[:120])
        await driver.start()
        ledger = Ledger()
        await collect(driver.event_stream, ledger, 120, seconds=30)
        ledger.check(CODES)
        physical = [c for c in sim.items.printed() if c]
        assert set(ledger.printed) <= set(physical), "reported printed but never printed"
        assert not set(ledger.lost) & set(ledger.printed)
        if faults.disconnect_after:
            assert driver.reconnects >= 1


def stream(codes: list[str]) -> ItemStream:
    items = ItemStream()
    for code in codes:
        items.arrive(code)
    return items


@pytest.mark.parametrize("entry", READERS, ids=lambda e: e.name)
async def test_reader_reads_items_in_order(entry: ReaderEntry) -> None:
    sim, reader = await entry.start(Faults(), stream(CODES[:10]))
    try:
        assert [(await reader.read()).data for _ in range(10)] == CODES[:10]
        assert (await reader.read()).data is None, "nothing in front: a no-read"
    finally:
        await reader.close()
        await sim.stop()


@pytest.mark.parametrize("entry", READERS, ids=lambda e: e.name)
async def test_reader_survives_garbage(entry: ReaderEntry) -> None:
    sim, reader = await entry.start(Faults(garbage=True), stream(CODES[:20]))
    try:
        assert [(await reader.read()).data for _ in range(20)] == CODES[:20]
    finally:
        await reader.close()
        await sim.stop()


@pytest.mark.parametrize("entry", READERS, ids=lambda e: e.name)
async def test_reader_recovers_after_a_disconnect(entry: ReaderEntry) -> None:
    sim, reader = await entry.start(Faults(disconnect_after=3), stream(CODES[:20]))
    try:
        assert [(await reader.read()).data for _ in range(3)] == CODES[:3]
        sim.settings = sim.settings.model_copy(update={"disconnect_after": 0})
        for _ in range(100):
            try:
                result = await reader.read()
            except DriverError:
                await asyncio.sleep(0.02)
                continue
            if result.data is not None:
                assert result.data in CODES[3:20]
                break
        else:
            raise AssertionError("the reader never came back")
    finally:
        await reader.close()
        await sim.stop()
