"""The OPC-UA printer (our model) and the AutoID reader beyond the conformance suite."""

from __future__ import annotations

import asyncio
import contextlib
import xml.etree.ElementTree as ET

import pytest
from asyncua.client.client import Client
from asyncua.ua.object_ids import ObjectIds

from drivers.errors import DeviceFault
from drivers.opcua.autoid import AutoIdReader
from drivers.opcua.printer import OpcUaPrinter
from line_config import devices as cfg
from simulators.autoid import NODESET, AutoIdReaderSim, AutoIdSettings, complete_inherited_fields
from simulators.autoid import nodeset as nodeset_file
from simulators.items import ItemStream
from simulators.opcua_printer import OpcUaPrinterSettings, OpcUaPrinterSim
from tests.drivers.helpers import Ledger, collect


def test_the_autoid_scan_result_gets_the_fields_of_its_base() -> None:
    xml = complete_inherited_fields(
        nodeset_file("AutoID/Opc.Ua.AutoID.NodeSet2.xml").read_text(encoding="utf-8"))
    q = f"{{{NODESET}}}"
    fields = {dt.get("BrowseName"): [f.get("Name") for f in dt.iter(f"{q}Field")]
              for dt in ET.fromstring(xml).iter(f"{q}UADataType")}
    assert fields["1:OpticalScanResult"][:4] == ["CodeType", "ScanData", "Timestamp", "Location"]
    verifier = fields["1:OpticalVerifierScanResult"]
    assert verifier.count("CodeType") == 1 and "Grade" in verifier and "IsoGrade" in verifier


async def test_the_printer_takes_what_fits_and_the_driver_keeps_the_rest() -> None:
    sim = OpcUaPrinterSim(OpcUaPrinterSettings(capacity=30))
    await sim.serve_tcp()
    driver = OpcUaPrinter(cfg.OpcUaPrinter(
        id="opc", driver="opcua_printer", job="J", queue_target=100,
        transport={"kind": "opcua", "endpoint": sim.endpoint, "security": "none"}))
    await driver.connect(attempts=3)
    try:
        codes = [f"OP{i:04d}" for i in range(80)]
        await driver.send(codes)
        await driver.start()
        for _ in range(200):
            if len(sim.queue) == 30:
                break
            await asyncio.sleep(0.01)
        assert len(sim.queue) == 30 and driver.pending == 80
        ledger = Ledger()
        while len(ledger.printed) < 80:
            if sim.ready():
                sim.product_detect()
            with contextlib.suppress(TimeoutError):
                ledger.take(await driver.event_stream.next(0.01))
        ledger.check(codes)
        assert ledger.printed == codes == sim.items.printed()
        status = await driver.status()
        assert status.identity == "codeline OPC-UA printer sim 1.0"
    finally:
        await driver.close()
        await sim.stop()


async def test_the_printer_fault_blocks_start_until_reset() -> None:
    sim = OpcUaPrinterSim()
    await sim.serve_tcp()
    driver = OpcUaPrinter(cfg.OpcUaPrinter(
        id="opc", driver="opcua_printer", job="J",
        transport={"kind": "opcua", "endpoint": sim.endpoint, "security": "none"}))
    await driver.connect(attempts=3)
    try:
        await driver.select_job("J")
        sim.raise_fault("HEAD", "print head fault")
        ledger = Ledger()
        await collect(driver.event_stream, ledger, 0, faults=1)
        with pytest.raises(DeviceFault):
            await driver.start()
        await driver.clear_faults()
        await driver.start()
        assert sim.state == "Running"
    finally:
        await driver.close()
        await sim.stop()


async def test_the_autoid_reader_counts_scan_events_and_skips_stray_ones() -> None:
    items = ItemStream()
    for i in range(10):
        items.arrive(f"AI{i:04d}")
    sim = AutoIdReaderSim(AutoIdSettings(garbage_rate=0.5, seed=2), items)
    await sim.serve_tcp()
    reader = AutoIdReader(cfg.AutoIdReader(
        id="autoid", driver="autoid_opcua",
        transport={"kind": "opcua", "endpoint": sim.endpoint, "security": "none"}))
    await reader.connect(attempts=3)
    try:
        results = [await reader.read() for _ in range(10)]
        assert [r.data for r in results] == [f"AI{i:04d}" for i in range(10)]
        assert all(r.grade in ("A", "B", "C") for r in results)
        for _ in range(100):
            if reader.scan_events == 10 and reader.stray_events == sim.garbage_events:
                break
            await asyncio.sleep(0.02)
        assert reader.scan_events == 10 and reader.last_event == "AI0009"
        assert reader.stray_events == sim.garbage_events > 0
        await sim.set_error(True)
        for _ in range(100):
            if reader.device_status == "error":
                break
            await asyncio.sleep(0.02)
        with pytest.raises(DeviceFault, match="Error"):
            await reader.read()
    finally:
        await reader.close()
        await sim.stop()


async def test_the_autoid_reader_is_a_complete_instance_without_placeholders() -> None:
    sim = AutoIdReaderSim(AutoIdSettings(serial_number="SN-42"))
    await sim.serve_tcp()
    assert sim.device is not None
    try:
        async with Client(sim.endpoint) as client:
            device = client.get_node(sim.device.nodeid)
            names: list[str] = []
            pending = [device]
            while pending:
                node = pending.pop()
                for child in await node.get_children(refs=ObjectIds.HierarchicalReferences):
                    names.append((await child.read_browse_name()).Name)
                    pending.append(child)
            assert not [n for n in names if n.startswith("<")]  # "any number of" stands-ins
            values = {}
            for name in ("SerialNumber", "RevisionCounter", "HardwareRevision",
                         "SoftwareRevision", "DeviceRevision", "DeviceManual", "Manufacturer",
                         "Model", "DeviceInfo", "ScanActive"):
                node = await device.get_child(f"{await _ns_of(client, name)}:{name}")
                values[name] = await node.read_value()
            assert None not in values.values(), values
            assert values["SerialNumber"] == "SN-42" and values["ScanActive"] is False
    finally:
        await sim.stop()


async def _ns_of(client: Client, name: str) -> int:
    """DI declares the identification properties, AutoID its own variables."""
    uri = ("http://opcfoundation.org/UA/AutoID/" if name in ("DeviceInfo", "ScanActive")
           else "http://opcfoundation.org/UA/DI/")
    return int(await client.get_namespace_index(uri))
