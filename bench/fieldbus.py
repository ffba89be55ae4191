"""Modbus TCP and OPC-UA devices against their simulators on loopback:
``python -m bench.fieldbus [--laser N] [--opcua N] [--scans N]``.

Prints items/s through the laser (Modbus TCP) and through the OPC-UA printer, the round
trips each laser item costs, and p50/p99 per command round trip (Modbus read, OPC-UA method
call, AutoID ``Scan``). Products pass as fast as the printer is ready, so the figures are
the controller's and the link's, not a line's.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from drivers.interfaces import Printed
from drivers.opcua import printer_model as pm
from drivers.opcua.autoid import AutoIdReader
from drivers.opcua.printer import OpcUaPrinter
from drivers.printers import laser_map as m
from drivers.printers.modbus_laser import ModbusLaser
from line_config import devices as cfg
from simulators.autoid import AutoIdReaderSim
from simulators.items import ItemStream
from simulators.laser import LaserSim
from simulators.opcua_printer import OpcUaPrinterSim


def percentiles(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return f"p50 {statistics.median(ms):.2f} ms, p99 {p99:.2f} ms"


async def timed(call: Callable[[], Awaitable[Any]], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - start)
    return samples


async def products(sim: Any, stop: asyncio.Event) -> None:
    while not stop.is_set():
        if sim.ready():
            sim.product_detect()
        await asyncio.sleep(0)


async def printed_per_second(driver: Any, sim: Any, n: int) -> float:
    codes = [f"BF{i:07d}" for i in range(n)]
    await driver.send(codes)
    await driver.start()
    stop = asyncio.Event()
    line = asyncio.create_task(products(sim, stop))
    start = time.perf_counter()
    seen = 0
    while seen < n:
        if isinstance(await driver.event_stream.next(30), Printed):
            seen += 1
    elapsed = time.perf_counter() - start
    stop.set()
    await line
    return n / elapsed


async def laser(n: int) -> None:
    sim = LaserSim()
    host, port = (await sim.serve_tcp()).rsplit(":", 1)
    driver = ModbusLaser(cfg.ModbusLaser(
        id="laser", driver="modbus_laser",
        transport={"kind": "modbus_tcp", "host": host, "port": int(port)}))
    await driver.connect(attempts=3)
    try:
        rate = await printed_per_second(driver, sim, n)
        per_item = driver.round_trips / n
        print(f"laser over Modbus TCP: {rate:,.0f} items/s ({n} marks, "
              f"{per_item:.1f} round trips per item incl. polling; target >= 200)")
        reads = await timed(lambda: driver._request("read_holding_registers",
                                                    m.ERROR_CODE.address, count=4), 1000)
        print(f"  Modbus read round trip: {percentiles(reads)}")
        loads = await timed(lambda: driver._load(["BENCHTXT"]), 16)
        await driver.clear()
        print(f"  queue one text (data + command handshake): {percentiles(loads)}")
    finally:
        await driver.close()
        await sim.stop()


async def opcua_printer(n: int) -> None:
    sim = OpcUaPrinterSim()
    await sim.serve_tcp()
    driver = OpcUaPrinter(cfg.OpcUaPrinter(
        id="opc", driver="opcua_printer", job="J", queue_target=400,
        transport={"kind": "opcua", "endpoint": sim.endpoint, "security": "none"}))
    await driver.connect(attempts=3)
    try:
        await driver.select_job("J")
        rate = await printed_per_second(driver, sim, n)
        print(f"OPC-UA printer: {rate:,.0f} items/s ({n} prints, EnqueueCodes in batches "
              f"of {driver.LOAD_CHUNK}; target >= 1,000)")
        calls = await timed(lambda: driver._call(pm.SELECT_JOB, "J"), 300)
        print(f"  method call round trip: {percentiles(calls)}")
        reads = await timed(driver._snapshot, 300)
        print(f"  read of count, depth, state, fault: {percentiles(reads)}")
    finally:
        await driver.close()
        await sim.stop()


async def autoid(n: int) -> None:
    items = ItemStream()
    for i in range(n):
        items.arrive(f"SCAN{i:06d}")
    sim = AutoIdReaderSim(items=items)
    await sim.serve_tcp()
    reader = AutoIdReader(cfg.AutoIdReader(
        id="autoid", driver="autoid_opcua",
        transport={"kind": "opcua", "endpoint": sim.endpoint, "security": "none"}))
    await reader.connect(attempts=3)
    try:
        scans = await timed(reader.read, n)
        print(f"AutoID Scan (one read per trigger): {percentiles(scans)}, "
              f"{n / sum(scans):,.0f} reads/s")
    finally:
        await reader.close()
        await sim.stop()


async def main(args: argparse.Namespace) -> None:
    await laser(args.laser)
    await opcua_printer(args.opcua)
    await autoid(args.scans)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--laser", type=int, default=2000, help="marks through the laser")
    parser.add_argument("--opcua", type=int, default=10000, help="prints through OPC-UA")
    parser.add_argument("--scans", type=int, default=500, help="AutoID scans")
    logging.basicConfig(level=logging.ERROR)
    for noisy in ("asyncua", "pymodbus"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    asyncio.run(main(parser.parse_args()))
