"""The line as an OPC 30050 PackML unit, seen by a generic OPC UA client that knows the
standard and nothing of codeline: it finds the unit by its type, follows browse names of the
PackML namespace, runs a batch with the standard methods, reads the standard status and admin
variables, and receives the alarm that holds the line (and the pool warnings) as
AlarmCondition events."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.uaerrors import BadInvalidState, BadNotSupported, BadOutOfRange

from edge.cli.line_harness import loopback_config, running_line, stock_line
from line_config.loading import example_path, load_config
from simulators.line import LineSimSettings
from simulators.plc import NAMESPACE
from tests.line.harness import lone_controller, site_config, start_controller
from tests.waiting import until_read

pytestmark = pytest.mark.timeout(120)

PACKML = "http://opcfoundation.org/UA/PackML/"


class Events:
    """AlarmCondition events as a subscription delivers them."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def event_notification(self, event: Any) -> None:
        self.seen.append(event)


async def units_of_type(client: Client, pns: int) -> list[Node]:
    """Every PackMLBaseObjectType instance in the PackMLObjects folder (by type, not name)."""
    unit_type = await client.nodes.base_object_type.get_child(f"{pns}:PackMLBaseObjectType")
    folder = await client.nodes.objects.get_child(f"{pns}:PackMLObjects")
    return [node for node in await folder.get_children(refs=ObjectIds.Organizes)
            if await node.read_type_definition() == unit_type.nodeid]


async def names(client: Client, ids: list[ua.NodeId]) -> list[str]:
    return [(await client.get_node(i).read_browse_name()).Name for i in ids]


async def test_a_generic_client_runs_the_line_through_its_packml_unit(tmp_path: Path) -> None:
    config = loopback_config(load_config(example_path("simulated")), tmp_path, sync_in_run=())
    db_path = Path(config.store.path)
    batch = stock_line(config, db_path, {"item": 400, "case": 40, "pallet": 5}, "LOT1", 200,
                       "test")
    settings = LineSimSettings(rate=100, transit_ms=300, noread_rate=1.0)
    async with running_line(config, db_path, tmp_path, settings) as run, \
            Client(run.plc.endpoint, timeout=4) as client:
        pns = await client.get_namespace_index(PACKML)
        await client.load_data_type_definitions()
        [unit] = await units_of_type(client, pns)

        async def child(path: str) -> Node:
            return await unit.get_child([f"{pns}:{part}" if part[0].isupper() and
                                         part not in ("CurrentState", "AvailableStates",
                                                      "AvailableTransitions", "Id")
                                         else f"0:{part}" for part in path.split("/")])

        base = "BaseStateMachine"
        machine = f"{base}/MachineState"
        execute = f"{machine}/ExecuteState"

        async def current(path: str) -> str | None:
            text = (await (await child(f"{path}/CurrentState")).read_value()).Text
            return None if text is None else str(text)

        async def call(owner: str, method: str, *args: ua.Variant) -> None:
            """A standard method of the unit (``owner`` "") or of one of its machines."""
            parent = await child(owner) if owner else unit
            method_node = await child(f"{owner}/{method}" if owner else method)
            await parent.call_method(method_node.nodeid, *args)

        assert await current(base) == "Cleared"
        assert await current(machine) == "Stopped"
        assert await current(execute) is None  # not active while the machine is Stopped
        stopped = await (await child(f"{machine}/CurrentState/Id")).read_value()
        assert (await client.get_node(stopped).read_browse_name()).Name == "Stopped"
        leaving = await (await child(f"{machine}/AvailableTransitions")).read_value()
        assert await names(client, leaving) == ["StoppedToRunning"]
        assert await (await child("Status/UnitModeCurrent")).read_value() == 1
        assert await (await child("Status/EquipmentStarved")).read_value() is False
        modes = await (await child("Status/UnitSupportedModes")).read_value()
        assert (await client.get_node(modes).read_browse_name()).Name == \
            "ProductionMaintenanceModeEnum"

        # Refusals a PLC programmer would meet, each with the status the standard names.
        with pytest.raises(BadInvalidState):
            await call(execute, "Start")
        with pytest.raises(BadInvalidState):
            await call(execute, "ToComplete")  # only from Execute
        with pytest.raises(BadNotSupported):
            await call("", "SetUnitMode", ua.Variant(2, ua.VariantType.Int32))
        with pytest.raises(BadOutOfRange):
            await call("", "SetMachSpeed", ua.Variant(-1.0, ua.VariantType.Float))

        await call("", "SetMachSpeed", ua.Variant(6000.0, ua.VariantType.Float))
        product = vars(ua)["PackMLProductDataType"](ProductID=batch.id, ProcessVariables=[],
                                                    Ingredients=[])
        await call("", "SetProduct", ua.Variant([product], ua.VariantType.ExtensionObject))
        await call(machine, "Reset")
        await until_read(lambda: current(execute), lambda s: s == "Idle", "Idle", within=30)
        assert await current(machine) == "Running"

        events = Events()
        subscription = await client.create_subscription(50, events)
        await subscription.subscribe_events(client.nodes.server, ObjectIds.AlarmConditionType)
        await call(execute, "Start")
        await until_read(lambda: current(execute), lambda s: s == "Execute", "Execute",
                         within=30)

        # The camera reads nothing: five rejects in a row hold the line (consecutive_limit).
        await until_read(lambda: current(execute), lambda s: s == "Held", "Held", within=30)
        processed = await (await child("Admin/ProdProcessedCount")).read_value()
        assert [c.Name for c in processed] == ["printed", "commissioned", "cases sealed",
                                               "pallets sealed"]
        assert processed[0].Count >= 5 and processed[1].Count == 0
        defective = await (await child("Admin/ProdDefectiveCount")).read_value()
        assert defective[0].Name == "rejected" and defective[0].Count >= 5
        assert sum(d.Count for d in defective[1:]) == defective[0].Count
        assert await (await child("Status/MachSpeed")).read_value() == pytest.approx(6000.0)
        [running] = await (await child("Status/Product")).read_value()
        assert running.ProductID == batch.id
        stop = await (await child("Admin/StopReason")).read_value()
        assert stop.Trigger and "in a row" in stop.Message
        [alarm] = await (await child("Admin/Alarm")).read_value()
        assert alarm.Message.endswith(stop.Message) and alarm.Category == 1
        warnings = await (await child("Admin/Warning")).read_value()
        # The stock is below every level's low-water mark: standing warnings, not holds.
        assert {w.Message.split(":")[0] for w in warnings} == {
            "pool.item", "pool.case", "pool.pallet"}
        assert {w.Category for w in warnings} == {2}
        times = await (await child("Admin/StateCumulativeTime")).read_value()
        assert len(times) == 4 and len(times[1]) == 18 and times[1][2] >= 0

        raised = await until_read(lambda: conditions(events, 700), bool,
                                  "the hold's AlarmCondition event", within=10)
        assert raised[0].Retain and raised[0].SourceNode == unit.nodeid
        assert stop.Message in raised[0].Message.Text
        assert await conditions(events, 300)  # the pool warnings, as conditions too

        # A client that connects later asks for the standing conditions (ConditionRefresh).
        late = Events()
        replay = await client.create_subscription(50, late)
        await replay.subscribe_events(client.nodes.server, ObjectIds.AlarmConditionType)
        await client.get_node(ObjectIds.ConditionType).call_method(
            ua.NodeId.from_string(f"i={ObjectIds.ConditionType_ConditionRefresh}"),
            ua.Variant(replay.subscription_id, ua.VariantType.UInt32))
        replayed = await until_read(lambda: conditions(late, 700), bool, "the replayed hold",
                                    within=10)
        assert replayed[0].Message == raised[0].Message
        assert {e.ConditionName for e in await conditions(late, 300)} == {
            "pool.item", "pool.case", "pool.pallet"}
        await replay.delete()

        await call(machine, "Stop")
        await until_read(lambda: current(machine), lambda s: s == "Stopped", "Stopped",
                         within=60)
        await subscription.delete()


async def conditions(events: Events, severity: int) -> list[Any]:
    return [e for e in events.seen if e.Severity == severity]


async def test_without_the_nodeset_the_line_runs_on_its_codeline_nodes_and_says_why(
        tmp_path: Path) -> None:
    (tmp_path / "no-standards").mkdir()
    async with lone_controller(tmp_path, {"security": ["none"]},
                               env={"CODELINE_STANDARDS_DIR": str(tmp_path / "no-standards")}
                               ) as c, Client(c.endpoint, timeout=4) as client:
        ns = await client.get_namespace_index(NAMESPACE)
        line = c.config.lines[0].id
        state = client.get_node(ua.NodeId.from_string(f"ns={ns};s={line}.PackML.State"))
        assert await state.read_value() == 2
        assert PACKML not in await client.get_namespace_array()
    assert "no PackML unit (OPC 30050)" in c.log()
    assert "no-standards/opcua/PackML/Opc.Ua.PackML.NodeSet2.xml not found" in c.log()


async def test_a_configured_nodeset_that_is_not_there_refuses_the_start(tmp_path: Path) -> None:
    _, config_path = site_config(tmp_path, {"security": ["none"],
                                            "packml_nodeset": "nodesets/PackML.xml"})
    log_path = tmp_path / "controller.log"
    process = start_controller(config_path, log_path)
    assert await asyncio.to_thread(process.wait, 60) != 0
    text = log_path.read_text()
    assert "plc.packml_nodeset" in text and "nodesets/PackML.xml is not a file" in text
    assert "Traceback" not in text
