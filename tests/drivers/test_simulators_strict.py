"""Simulators refuse what the real devices refuse, over their real transports: a simulator
that accepts more than the device hides the driver's mistakes."""

from __future__ import annotations

import asyncio

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from drivers.readers import dmcc_codec
from simulators.dmcc import DmccReaderSim, DmccSettings
from simulators.items import ItemStream
from simulators.laser import LaserSim
from simulators.wsi import WsiPrinterSim, WsiSettings

STX, ETX = b"\x02", b"\x03"


async def wsi_exchange(where: str, frame: bytes) -> bytes:
    host, port = where.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(frame)
        await writer.drain()
        async with asyncio.timeout(2):
            return await reader.readexactly(3)
    finally:
        writer.close()


@pytest.mark.parametrize(("frame", "answer"), [
    (STX + b"RA" + ETX, b"$93"),               # PROTOCOLS §1's own examples
    (STX + b"O0" + ETX, b"$7F"),
    (STX + ETX, b"!00"),                        # an empty frame is an unknown command
    (STX + b"U1\nAB\x01C" + ETX, b"!57"),       # 0x01 is no data byte of the protocol
    (STX + b"U1\nAB\x7fC" + ETX, b"$D5"),       # 0x20-0x7F are (sum mod 256: 0x1D5)
])
async def test_the_cij_simulator_answers_and_refuses_as_the_protocol_says(
        frame: bytes, answer: bytes) -> None:
    sim = WsiPrinterSim(WsiSettings())
    where = await sim.serve_tcp()
    try:
        assert await wsi_exchange(where, frame) == answer
    finally:
        await sim.stop()


async def test_the_laser_serves_its_four_coils_and_no_other_unit() -> None:
    sim = LaserSim()
    host, port = (await sim.serve_tcp()).split(":")
    client = AsyncModbusTcpClient(host, port=int(port), timeout=1, retries=0)
    await client.connect()
    try:
        assert not (await client.read_coils(0, count=4, device_id=1)).isError()
        outside = await client.read_coils(4, count=4, device_id=1)
        assert outside.isError() and outside.exception_code == 2  # ILLEGAL DATA ADDRESS
        write = await client.write_coil(5, True, device_id=1)
        assert write.isError() and write.exception_code == 2
        with pytest.raises(ModbusIOException):  # a unit that is not there answers nothing
            await client.read_coils(0, count=4, device_id=7)
    finally:
        client.close()
        await sim.stop()


async def dmcc_lines(where: str, *commands: bytes, answers: int) -> list[bytes]:
    host, port = where.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        for command in commands:
            writer.write(command)
        await writer.drain()
        async with asyncio.timeout(2):
            return [await reader.readuntil(b"\r\n") for _ in range(answers)]
    finally:
        writer.close()


async def test_the_dataman_simulator_answers_cognex_headers_and_refuses_bad_checksums() -> None:
    items = ItemStream()
    items.arrive("ITEM0001")
    sim = DmccReaderSim(DmccSettings(send_grade=False), items)
    where = await sim.serve_tcp()
    bad = dmcc_codec.encode_command(dmcc_codec.Command("TRIGGER ON", checksum=True))
    bad = bad[:-3] + bytes([bad[-3] ^ 0x01]) + b"\r\n"
    try:
        lines = await dmcc_lines(where, b"||>SET COM.DMCC-RESPONSE 1\r\n",
                                 b"||0:123>trigger on\r\n", bad, b"||>FROBNICATE\r\n",
                                 answers=5)
        assert lines[0] == b"||[0]\r\n"
        assert lines[1] == b"||0:123[0]\r\n"       # Cognex's own example, answered
        assert lines[2] == b"||0:123[1]ITEM0001\r\n"
        assert lines[3].startswith(b"||1[103]")      # checksum incorrect
        assert lines[4] == b"||[101]\r\n"           # command invalid
    finally:
        await sim.stop()
