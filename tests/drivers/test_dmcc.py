"""The DMCC reader driver against its simulator over TCP, faults included."""

from __future__ import annotations

import asyncio

import pytest

from drivers.errors import DriverError
from drivers.readers.dmcc import DmccReader
from line_config.devices import DmccReader as DmccConfig
from simulators.dmcc import DmccReaderSim, DmccSettings
from simulators.items import ItemStream
from tests.drivers.helpers import tcp

CODES = [f"ITEM{i:04d}" for i in range(60)]


async def start(settings: DmccSettings, extended: bool = True,
                result_s: float = 0.3, data: str = "text") -> tuple[DmccReaderSim, DmccReader]:
    items = ItemStream()
    for code in CODES:
        items.arrive(code)
    sim = DmccReaderSim(settings, items)
    where = await sim.serve_tcp()
    driver = DmccReader(DmccConfig(id="verify", driver="dmcc", transport=tcp(where),
                                   extended_response=extended, extended_data=data,
                                   noread_string=settings.noread_string,
                                   reconnect_min_ms=20, reconnect_max_ms=100),
                        result_timeout=result_s)
    await driver.connect(attempts=3)
    return sim, driver


@pytest.mark.parametrize("extended", [True, False])
async def test_each_trigger_reads_the_item_in_front_with_its_grade(extended: bool) -> None:
    sim, driver = await start(DmccSettings(grade="B"), extended)
    try:
        results = [await driver.read() for _ in range(10)]
        assert [r.data for r in results] == CODES[:10]
        assert {r.grade for r in results} == {"B"}
        assert dict(results[0].parameters)["SC"] == 3
        if extended:
            assert driver.identity.startswith("DataMan")
    finally:
        await driver.close()
        await sim.stop()


async def test_the_configured_no_read_string_is_a_no_read() -> None:
    sim, driver = await start(DmccSettings(noread_rate=1.0, noread_string="FAIL"))
    try:
        assert (await driver.read()).data is None
    finally:
        await driver.close()
        await sim.stop()


async def test_faults_never_shift_a_result_onto_the_wrong_trigger() -> None:
    settings = DmccSettings(seed=11, noread_rate=0.1, misread_rate=0.05, duplicate_rate=0.2,
                            garbage_rate=0.2, late_rate=0.1, late_ms=400, low_grade_rate=0.2,
                            split_writes=True)
    sim, driver = await start(settings)
    try:
        results = [await driver.read() for _ in range(len(CODES))]
        for k, result in enumerate(results):
            sent = sim.results[k]
            if result.data is not None:
                assert sent.startswith(result.data), "a result was attributed to another trigger"
        assert driver.stale_results > 0 and driver.framer.garbage > 0
        assert any(r.data is None for r in results)
        assert any(r.grade == "D" for r in results)
    finally:
        await driver.close()
        await sim.stop()


async def test_the_reader_comes_back_after_a_disconnect() -> None:
    sim, driver = await start(DmccSettings(disconnect_after=5))
    try:
        first = [await driver.read() for _ in range(5)]
        assert [r.data for r in first] == CODES[:5]
        sim.settings = sim.settings.model_copy(update={"disconnect_after": 0})
        for _ in range(50):
            if driver.reconnects:
                break
            with pytest.raises(DriverError):  # typed: the link is down
                await driver.read()
            await asyncio.sleep(0.02)
        assert driver.reconnects >= 1
        later = await driver.read()
        assert later.data in CODES
    finally:
        await driver.close()
        await sim.stop()


async def test_read_data_in_base64_as_older_firmware_sends_it() -> None:
    sim, driver = await start(DmccSettings(base64_data=True, grade="B"), data="base64")
    try:
        results = [await driver.read() for _ in range(3)]
        assert [r.data for r in results] == CODES[:3] and results[0].grade == "B"
        assert sim.results[0].startswith(CODES[0])  # what the reader read, before encoding
    finally:
        await driver.close()
        await sim.stop()
