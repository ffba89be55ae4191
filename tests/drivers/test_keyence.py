"""The Keyence SR driver against its simulator over TCP, faults included."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.errors import DriverError
from drivers.readers import keyence_codec as codec
from drivers.readers.keyence import KeyenceReader
from line_config.devices import KeyenceReader as KeyenceConfig
from simulators.items import ItemStream
from simulators.keyence import KeyenceReaderSim, KeyenceSettings
from tests.drivers.helpers import tcp

CODES = [f"K{i:05d}" for i in range(40)]


async def start(settings: KeyenceSettings) -> tuple[KeyenceReaderSim, KeyenceReader]:
    items = ItemStream()
    for code in CODES:
        items.arrive(code)
    sim = KeyenceReaderSim(settings, items)
    driver = KeyenceReader(KeyenceConfig(id="sr", driver="keyence_sr",
                                         transport=tcp(await sim.serve_tcp()),
                                         error_string=settings.error_string,
                                         reconnect_min_ms=20, reconnect_max_ms=100),
                           result_timeout=0.3)
    await driver.connect(attempts=3)
    return sim, driver


async def test_each_lon_reads_the_item_in_front() -> None:
    sim, driver = await start(KeyenceSettings())
    try:
        assert [(await driver.read()).data for _ in range(5)] == CODES[:5]
    finally:
        await driver.close()
        await sim.stop()


async def test_error_and_over_are_no_reads_and_duplicates_are_drained() -> None:
    sim, driver = await start(KeyenceSettings(seed=4, noread_rate=0.15, over_rate=0.1,
                                              duplicate_rate=0.2, garbage_rate=0.2,
                                              misread_rate=0.05, error_string="NG",
                                              split_writes=True))
    try:
        results = [await driver.read() for _ in range(len(CODES))]
        for k, result in enumerate(results):
            sent = sim.results[k]
            assert result.data == (None if sent in ("NG", "OVER") else sent)
        assert driver.stale_results > 0 and driver.overflows > 0 and driver.framer.garbage > 0
    finally:
        await driver.close()
        await sim.stop()


async def test_the_reader_comes_back_after_a_disconnect() -> None:
    sim, driver = await start(KeyenceSettings(disconnect_after=3))
    try:
        assert [(await driver.read()).data for _ in range(3)] == CODES[:3]
        sim.settings = sim.settings.model_copy(update={"disconnect_after": 0})
        for _ in range(50):
            if driver.reconnects:
                break
            with pytest.raises(DriverError):
                await driver.read()
            await asyncio.sleep(0.02)
        assert (await driver.read()).data in CODES
    finally:
        await driver.close()
        await sim.stop()


@given(st.sampled_from(["LON", "LOFF", "BLOAD"]), st.none() | st.from_regex(r"[0-9]{2}",
                                                                            fullmatch=True))
def test_keyence_replies_round_trip(command: str, code: str | None) -> None:
    reply = codec.Reply(command, code)
    assert codec.Framer("host").feed(codec.encode_reply(reply)) == [reply]


@given(st.binary(max_size=500))
def test_random_bytes_never_crash_the_keyence_framer(noise: bytes) -> None:
    for role in ("host", "reader"):
        framer = codec.Framer(role)
        framer.feed(noise)
        assert framer.garbage >= 0
