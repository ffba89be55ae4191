"""An optical code reader per OPC 30010 AutoID, on an asyncua server.

The server loads the official nodesets (DI, then AutoID) from the standards folder
(``CODELINE_STANDARDS_DIR``, default ``../shared/standards`` beside the repository) and
exposes one ``OpticalReaderDeviceType`` instance in the DI ``DeviceSet``. ``Scan`` reads the
item in front of the reader and returns its ``OpticalScanResult`` (or ``NO_IDENTIFIER``);
each scan that found a code also raises an ``OpticalScanEvent`` and updates
``LastScanData``. ``ScanStart`` scans the given number of cycles in the background, so
clients see events only; ``ScanStop`` ends it.

The AutoID nodeset gives the fields of a structure subtype (``OpticalScanResult``) without
those of its base (``ScanResult``); OPC UA Part 3 has a ``DataTypeDefinition`` hold every
field, so the fields are completed on load, as a conformant server exposes them.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import random
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.common.node import Node
from asyncua.server.server import Server
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from pydantic import Field

from drivers.opcua.link import loaded_type, numeric_node
from drivers.transport import stop_task
from line_config.standards import standard_file
from simulators.items import ItemStream
from simulators.opcua_device import OpcUaDeviceSim
from simulators.reading import Rate, ReaderFaults, what_is_read

AUTOID_URI = "http://opcfoundation.org/UA/AutoID/"
DI_URI = "http://opcfoundation.org/UA/DI/"
NODESET = "http://opcfoundation.org/UA/2011/03/UANodeSet.xsd"
OPTICAL_READER_TYPE = 1008
OPTICAL_SCAN_EVENT_TYPE = 1009
DEVICE_SET = 5001
SCAN_DATA = 3020
SUCCESS, NO_IDENTIFIER = 0, 8
IDLE, ERROR, SCANNING = 0, 1, 2


def nodeset(name: str) -> Path:
    """An official OPC UA nodeset file, by its path below ``opcua/``."""
    return standard_file(f"opcua/{name}")


def complete_inherited_fields(xml: str) -> str:
    """The nodeset with every structure subtype's Definition holding its base's fields."""
    ET.register_namespace("", NODESET)
    root = ET.fromstring(xml)
    q = f"{{{NODESET}}}"
    types = {dt.get("NodeId"): dt for dt in root.iter(f"{q}UADataType")}

    def parent_of(dt: ET.Element) -> ET.Element | None:
        refs = dt.find(f"{q}References")
        for ref in refs if refs is not None else []:
            if ref.get("ReferenceType") == "HasSubtype" and ref.get("IsForward") == "false":
                return types.get((ref.text or "").strip())
        return None

    def own_fields(dt: ET.Element) -> list[ET.Element]:
        definition = dt.find(f"{q}Definition")
        return list(definition.findall(f"{q}Field")) if definition is not None else []

    own = {node_id: own_fields(dt) for node_id, dt in types.items()}  # before any change

    def all_fields(dt: ET.Element) -> list[ET.Element]:
        parent = parent_of(dt)
        inherited = all_fields(parent) if parent is not None else []
        return inherited + own[dt.get("NodeId")]

    for node_id, dt in types.items():
        definition = dt.find(f"{q}Definition")
        parent = parent_of(dt)
        if definition is None or parent is None or parent.find(f"{q}Definition") is None:
            continue
        if any(f.get("Value") is not None for f in own[node_id]):
            continue  # an enumeration
        names = {f.get("Name") for f in own[node_id]}
        inherited = [f for f in all_fields(parent) if f.get("Name") not in names]
        for index, field in enumerate(inherited):
            definition.insert(index, copy.deepcopy(field))
    return ET.tostring(root, encoding="unicode")


class AutoIdSettings(ReaderFaults):
    """Behaviour and faults of the simulated AutoID reader."""

    device_name: str = "Reader"
    symbology: str = "DataMatrix"
    code_type: str = Field(default="GS1", description="the ScanResult CodeType")
    error_rate: Rate = Field(default=0.0, ge=0, le=1,
                             description="Scan fails with MISC_ERROR_TOTAL (nothing read)")
    serial_number: str = "SIM-0001"


class AutoIdReaderSim(OpcUaDeviceSim):
    """The reader's state, served on OPC-UA with the official AutoID model."""

    path = "autoid"
    name = "codeline simulated AutoID reader"

    def __init__(self, settings: AutoIdSettings | None = None, items: ItemStream | None = None,
                 security: tuple[str, ...] = ("none",)) -> None:
        super().__init__(security)
        self.settings = settings or AutoIdSettings()
        self.items = items or ItemStream()
        self.rng = random.Random(self.settings.seed)
        self.reads = 0
        self.results: list[str | None] = []
        self.garbage_events = 0
        self.nodes: dict[str, Node] = {}
        self.device: Node | None = None
        self.ns = 0
        self._events: Any = None
        self._scanning: asyncio.Task[None] | None = None
        self._later: list[asyncio.Task[None]] = []

    async def build(self, server: Server) -> None:
        await server.import_xml(str(nodeset("DI/Opc.Ua.Di.NodeSet2.xml")))
        autoid = nodeset("AutoID/Opc.Ua.AutoID.NodeSet2.xml").read_text(encoding="utf-8")
        await server.import_xml(xmlstring=complete_inherited_fields(autoid))
        await server.load_data_type_definitions()
        self.ns = await server.get_namespace_index(AUTOID_URI)
        di = await server.get_namespace_index(DI_URI)
        own = await server.register_namespace("urn:codeline:sim:autoid")
        device_set = server.get_node(numeric_node(di, DEVICE_SET))
        self.device = await device_set.add_object(
            own, self.settings.device_name,
            objecttype=numeric_node(self.ns, OPTICAL_READER_TYPE))
        await _drop_placeholders(server, self.device)
        for child in await self.device.get_children():
            self.nodes[(await child.read_browse_name()).Name] = child
        # The nodeset leaves LastScanData's DataType out (asyncua then takes Null and refuses
        # every write): it holds a ScanData.
        await self.nodes["LastScanData"].write_attribute(
            AttributeIds.DataType,
            ua.DataValue(ua.Variant(numeric_node(self.ns, SCAN_DATA), ua.VariantType.NodeId)))
        await self.nodes["DeviceName"].write_value(self.settings.device_name)
        await self._write("DeviceStatus", ua.Variant(IDLE, ua.VariantType.Int32))
        # What DI's DeviceType and AutoID's device type make mandatory, filled as a real
        # reader fills it (a client that reads the identification finds no nulls).
        identity: dict[str, str | int | bool] = {
            "Manufacturer": "codeline", "Model": "AutoID reader sim",
            "SerialNumber": self.settings.serial_number, "RevisionCounter": 0,
            "HardwareRevision": "1.0", "SoftwareRevision": "1.0", "DeviceRevision": "1",
            "DeviceManual": "codeline PROTOCOLS.md section 6 (simulated reader)",
            "DeviceInfo": "codeline simulated optical reader", "ScanActive": False,
            "DeviceHealth": 0, "AutoIdModelVersion": "1.01"}
        for name, value in identity.items():
            if name in self.nodes:
                await _write_as_declared(self.nodes[name], value)
        server.link_method(self.nodes["Scan"], self._scan)
        server.link_method(self.nodes["ScanStart"], self._scan_start)
        server.link_method(self.nodes["ScanStop"], self._scan_stop)
        self._events = await server.get_event_generator(
            numeric_node(self.ns, OPTICAL_SCAN_EVENT_TYPE), self.device.nodeid)
        # asyncua cannot map the nodeset's structure-typed fields to a variant type itself.
        self._events.event.data_types["ScanResult"] = ua.VariantType.ExtensionObject
        self._events.event.data_types["DeviceName"] = ua.VariantType.String

    async def _write(self, name: str, value: Any) -> None:
        if name in self.nodes:
            await self.nodes[name].write_value(value)

    # --- reading ---
    def _result(self, data: str) -> Any:
        grade = self.rng.choice([4, 4, 4, 3, 3, 2])
        return loaded_type("OpticalScanResult")(
            CodeType=self.settings.code_type,
            ScanData=loaded_type("ScanData")(Encoding=2, Value=data),
            Timestamp=datetime.datetime.now(datetime.UTC),
            Grade=float(grade), Symbology=self.settings.symbology)

    async def _read_once(self) -> tuple[list[Any], int]:
        """One scan of the item in front: the results and the AutoID status."""
        s, rng = self.settings, self.rng
        self.reads += 1
        if s.disconnect_after and self.reads == s.disconnect_after:
            # after this answer is on its way
            asyncio.get_running_loop().call_later(
                0.005, lambda: self._later.append(asyncio.create_task(self.drop_link())))
        if s.garbage_rate and rng.random() < s.garbage_rate:
            await self._garbage_event()
        if s.error_rate and rng.random() < s.error_rate:
            return [], 1
        data = what_is_read(self.items, s.name, rng, s.noread_rate, s.misread_rate,
                            s.repeat_rate)
        self.results.append(data)
        if data is None:
            return [], NO_IDENTIFIER
        result = self._result(data)
        await self._publish(result)
        if s.duplicate_rate and rng.random() < s.duplicate_rate:
            await self._publish(result)
        return [result], SUCCESS

    async def _publish(self, result: Any) -> None:
        await self._write("LastScanData",
                          ua.Variant(result.ScanData, ua.VariantType.ExtensionObject))
        await self._write("LastScanTimestamp",
                          ua.Variant(result.Timestamp, ua.VariantType.DateTime))
        self._events.event.ScanResult = [result]  # an array in the model (ValueRank 1)
        self._events.event.DeviceName = self.settings.device_name
        await self._events.trigger(message=f"scan {result.ScanData.Value}")

    async def _garbage_event(self) -> None:
        """A stray scan event of a kind an optical reader never sends (an RFID EPC)."""
        self.garbage_events += 1
        epc = loaded_type("ScanDataEpc")(PC=0x3000, UId=self.rng.randbytes(12), XPC_W1=0,
                                         XPC_W2=0)
        junk = loaded_type("OpticalScanResult")(
            CodeType="EPC", ScanData=loaded_type("ScanData")(Encoding=3, Value=epc),
            Timestamp=datetime.datetime.now(datetime.UTC))
        self._events.event.ScanResult = [junk]
        await self._events.trigger(message="stray")

    # --- methods ---
    async def _scan(self, parent: ua.NodeId, settings: ua.Variant) -> list[ua.Variant]:
        await self._write("DeviceStatus", ua.Variant(SCANNING, ua.VariantType.Int32))
        try:
            results, status = await self._read_once()
        finally:
            await self._write("DeviceStatus", ua.Variant(IDLE, ua.VariantType.Int32))
        return [ua.Variant(results, ua.VariantType.ExtensionObject),
                ua.Variant(status, ua.VariantType.Int32)]

    async def _scan_start(self, parent: ua.NodeId, settings: ua.Variant) -> list[ua.Variant]:
        cycles = int(getattr(settings.Value, "Cycles", 0) or 0)
        await self._stop_scanning()
        self._scanning = asyncio.create_task(self._scan_cycles(cycles), name="autoid-scan")
        return [ua.Variant(SUCCESS, ua.VariantType.Int32)]

    async def _scan_cycles(self, cycles: int) -> None:
        await self._write("ScanActive", True)
        await self._write("DeviceStatus", ua.Variant(SCANNING, ua.VariantType.Int32))
        try:
            done = 0
            while cycles <= 0 or done < cycles:
                await self._read_once()
                done += 1
                await asyncio.sleep(0.01)
        finally:
            await self._write("ScanActive", False)
            await self._write("DeviceStatus", ua.Variant(IDLE, ua.VariantType.Int32))

    async def _stop_scanning(self) -> None:
        await stop_task(self._scanning)
        self._scanning = None

    async def _scan_stop(self, parent: ua.NodeId) -> list[ua.Variant]:
        await self._stop_scanning()
        return []

    async def set_error(self, on: bool) -> None:
        """The reader reports an error state (lens dirty, trigger fault)."""
        await self._write("DeviceStatus", ua.Variant(ERROR if on else IDLE, ua.VariantType.Int32))

    async def on_stopping(self) -> None:
        await self._stop_scanning()
        await asyncio.gather(*self._later, return_exceptions=True)


async def _drop_placeholders(server: Server, node: Node) -> None:
    """Instantiating a type copies its placeholder children (``<CPIdentifier>``,
    ``<ImageIdentifier>``…) as if they were real: they stand for "any number of these" and
    are removed from the instance."""
    for child in await node.get_children(refs=ObjectIds.HierarchicalReferences):
        name = (await child.read_browse_name()).Name
        if name.startswith("<") and name.endswith(">"):
            await server.delete_nodes([child], recursive=True)
        else:
            await _drop_placeholders(server, child)


async def _write_as_declared(node: Node, value: str | int | bool) -> None:
    """Write ``value`` in the variant type the node's DataType declares."""
    declared = await node.read_data_type()
    if declared.NamespaceIndex == 0 and declared.Identifier == ObjectIds.LocalizedText:
        await node.write_value(ua.LocalizedText(str(value)))
    elif isinstance(value, bool):
        await node.write_value(ua.Variant(value, ua.VariantType.Boolean))
    elif isinstance(value, int):
        await node.write_value(ua.Variant(value, ua.VariantType.Int32))
    else:
        await node.write_value(ua.Variant(value, ua.VariantType.String))
