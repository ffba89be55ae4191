"""The Modbus laser: its register map and the faults of PROTOCOLS.md section 3."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.errors import DeviceFault
from drivers.printers import laser_map as m
from drivers.printers.modbus_laser import ModbusLaser
from line_config import devices as cfg
from simulators.laser import LaserSettings, LaserSim
from tests.drivers.helpers import Ledger, collect

CODES = [f"LZ{i:05d}" for i in range(40)]


@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126),
               min_size=1, max_size=m.MAX_TEXT))
def test_a_text_survives_its_registers(text: str) -> None:
    registers = m.encode_text(text)
    assert len(registers) == (len(text) + 1) // 2 <= m.TEXT.count
    assert m.decode_text(registers, len(text)) == text


def test_the_map_has_no_overlapping_registers() -> None:
    for table in ("coil", "discrete_input", "holding"):
        used: set[int] = set()
        for register in (r for r in m.MAP if r.table == table):
            span = set(range(register.address, register.address + register.count))
            assert not used & span, f"{register.name} overlaps"
            used |= span


def test_a_text_too_long_for_the_map_is_refused() -> None:
    with pytest.raises(ValueError, match="1 to 128"):
        m.encode_text("X" * 129)


async def laser(settings: LaserSettings) -> tuple[LaserSim, ModbusLaser]:
    sim = LaserSim(settings)
    host, port = (await sim.serve_tcp()).rsplit(":", 1)
    driver = ModbusLaser(cfg.ModbusLaser(
        id="laser", driver="modbus_laser", reconnect_min_ms=20, reconnect_max_ms=100,
        transport={"kind": "modbus_tcp", "host": host, "port": int(port)}))
    await driver.connect(attempts=3)
    return sim, driver


@pytest.fixture
async def running() -> AsyncIterator[tuple[LaserSim, ModbusLaser]]:
    sim, driver = await laser(LaserSettings(mark_timeout_at=5))
    yield sim, driver
    await driver.close()
    await sim.stop()


async def marks(sim: LaserSim, n: int) -> None:
    for _ in range(n):
        for _ in range(500):
            if sim.ready():
                break
            await asyncio.sleep(0.002)
        sim.product_detect()


async def test_a_mark_that_times_out_loses_its_text_and_faults(
        running: tuple[LaserSim, ModbusLaser]) -> None:
    sim, driver = running
    await driver.send(CODES[:10])
    await driver.start()
    await marks(sim, 5)  # the fifth trigger times out
    ledger = Ledger()
    await collect(driver.event_stream, ledger, 5, faults=1)
    assert ledger.printed == CODES[:4]
    assert ledger.lost == [CODES[4]]
    assert "MARK_TIMEOUT" in ledger.faults
    assert sim.items.printed()[4] is None


async def test_commands_are_refused_until_the_error_is_cleared(
        running: tuple[LaserSim, ModbusLaser]) -> None:
    sim, driver = running
    sim.open_interlock()
    with pytest.raises(DeviceFault, match="refused"):
        await driver.start()
    sim.close_interlock()
    await driver.clear_faults()
    await driver.start()
    assert sim.armed and sim.error_code == 0


async def test_the_laser_reports_its_identity_and_an_open_interlock() -> None:
    sim, driver = await laser(LaserSettings())
    try:
        sim.open_interlock()
        status = await driver.status()
        assert "LASER-SIM" in status.identity
        assert status.state == "fault" and "INTERLOCK_OPEN" in status.faults
    finally:
        await driver.close()
        await sim.stop()
