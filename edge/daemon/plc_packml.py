"""The line as a PackML unit of OPC 30050 (PackML), for generic OPC UA clients.

The unit is an instance of the standard's ``PackMLBaseObjectType``, organized under its
``PackMLObjects`` folder, built from the official nodeset (never copied into the repository):
the three nested state machines (Base → Machine → Execute) with CurrentState, AvailableStates
and AvailableTransitions; Status (UnitModeCurrent, MachSpeed, CurMachSpeed, StateRequested,
Product); Admin (ProdProcessedCount, ProdDefectiveCount, StopReason, Warning, Alarm,
StateCurrentTime, StateCumulativeTime, AccTimeSinceReset); the standard methods; and the
line's alarms as OPC UA AlarmCondition events. Node ids are strings in codeline's namespace,
``<line>.Unit.<browse path>`` (e.g. ``L1.Unit.BaseStateMachine.MachineState.Stop``).

Speeds are in primary packages per minute, as OPC 30050 has them (the config's
``lines[].speed`` is per second).
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.common.instantiate_util import _instantiate_node, instantiate
from asyncua.common.node import Node
from asyncua.server.event_generator import EventGenerator
from asyncua.server.server import Server
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes

from edge.daemon.line import LineRuntime
from edge.daemon.packml import ACTING_DONE, Command, CommandRefused, State
from edge.daemon.snapshot import Figures, LineSnapshot
from edge.domain.errors import DomainError

log = logging.getLogger("codeline.plc")

PACKML_URI = "http://opcfoundation.org/UA/PackML/"
NODESET = "opcua/PackML/Opc.Ua.PackML.NodeSet2.xml"

PRODUCE = 1  # ProductionMaintenanceModeEnum: Invalid 0, Produce 1, Maintenance 2, Manual 3
UNIT_MODES = 4
ALARM_EXTENT = 32
# UNECE Recommendation 20 "H87" (piece), as OPC UA Part 8 encodes a common code in UnitId.
PIECE = ua.EUInformation(NamespaceUri="http://www.opcfoundation.org/UA/units/un/cefact",
                         UnitId=(ord("H") << 16) | (ord("8") << 8) | ord("7"),
                         DisplayName=ua.LocalizedText("pcs"),
                         Description=ua.LocalizedText("piece"))
HOLD_SEVERITY = 700
WARNING_SEVERITY = 300

# The optional children the unit serves, by the type that declares them.
ADMIN_CHILDREN = ("ProdProcessedCount", "ProdDefectiveCount", "StopReason", "StopReasonExtent",
                  "Warning", "WarningExtent", "Alarm", "AlarmExtent", "StateCurrentTime",
                  "StateCumulativeTime", "AccTimeSinceReset")
STATUS_CHILDREN = ("StateRequested", "StateChangeInProcess", "Product")
BASE_CHILDREN = ("TagID",)
# State machine methods, the machine that declares each, and the command it gives.
MACHINE_METHODS: dict[str, dict[str, Command | str]] = {
    "BaseStateMachine": {"Abort": Command.ABORT, "Clear": Command.CLEAR},
    "MachineState": {"Reset": Command.RESET, "Stop": Command.STOP},
    "ExecuteState": {"Start": Command.START, "Hold": Command.HOLD, "Unhold": Command.UNHOLD,
                     "Suspend": Command.SUSPEND, "Unsuspend": Command.UNSUSPEND,
                     "Reset": Command.RESET, "ToComplete": "complete"},
}

MethodResult = list[ua.Variant] | ua.StatusCode


def nested_states(state: State) -> tuple[str, str | None, str | None]:
    """The current state of each nested machine (Base, Machine, Execute); None where a
    machine is not active (its parent is elsewhere)."""
    if state in (State.ABORTING, State.ABORTED):
        return state.label, None, None
    if state in (State.CLEARING, State.STOPPED, State.STOPPING, State.UNDEFINED):
        return "Cleared", "Stopped" if state is State.UNDEFINED else state.label, None
    return "Cleared", "Running", state.label


def bad(code: int) -> ua.StatusCode:
    return ua.StatusCode(ua.UInt32(code))


@dataclass
class Machine:
    """One of the nested state machines: its instance and its type's states and transitions."""

    path: str  # below the unit, e.g. "BaseStateMachine.MachineState"
    states: dict[str, ua.NodeId] = field(default_factory=dict)
    leaving: dict[str, list[ua.NodeId]] = field(default_factory=dict)

    async def learn(self, type_node: Node) -> None:
        """The type's states and transitions (the FromState of each)."""
        for child in await type_node.get_children(refs=ObjectIds.HasComponent):
            definition = await child.read_type_definition()
            name = (await child.read_browse_name()).Name
            if definition is None:
                continue
            if definition.Identifier in (ObjectIds.StateType, ObjectIds.InitialStateType):
                self.states[name] = child.nodeid
            elif definition.Identifier == ObjectIds.TransitionType:
                for source in await child.get_referenced_nodes(
                        refs=ObjectIds.FromState, direction=ua.BrowseDirection.Forward):
                    source_name = (await source.read_browse_name()).Name
                    self.leaving.setdefault(source_name, []).append(child.nodeid)


class PackMLUnit:
    """One line's PackML unit in the PLC server."""

    def __init__(self, server: Server, ns: int, line: LineRuntime) -> None:
        self.server = server
        self.ns = ns
        self.line = line
        self.line_id = line.line.id
        self.machines = [Machine("BaseStateMachine"),
                         Machine("BaseStateMachine.MachineState"),
                         Machine("BaseStateMachine.MachineState.ExecuteState")]
        self.written: dict[str, Any] = {}
        self.raised: dict[str, str] = {}
        self.alarm_ids: dict[str, int] = {}
        # Every alarm is sent as a copy of the event as built: the server keeps the events of
        # standing conditions for ConditionRefresh.
        self.events: EventGenerator | None = None
        self.event_template: Any = None
        self.types: dict[str, type] = {}

    def node_id(self, path: str = "") -> ua.NodeId:
        return ua.NodeId.from_string(
            f"ns={self.ns};s={self.line_id}.Unit{'.' + path if path else ''}")

    async def build(self, nodeset: Path, line_object: Node) -> Node:
        """Import the standard's nodeset into this line's server, instantiate the unit, link
        its methods; ``line_object`` (codeline's own) organizes it too."""
        await self.server.import_xml(str(nodeset))
        pns = await self.server.get_namespace_index(PACKML_URI)
        await self.server.load_data_type_definitions()
        for name in ("PackMLCountDataType", "PackMLAlarmDataType", "PackMLProductDataType"):
            self.types[name] = getattr(ua, name)
        objects = self.server.nodes.objects
        folder = await objects.get_child(f"{pns}:PackMLObjects")
        unit_type = await self.server.nodes.base_object_type.get_child(
            f"{pns}:PackMLBaseObjectType")
        unit: Node = (await instantiate(
            folder, unit_type, nodeid=self.node_id(),
            bname=ua.QualifiedName(f"Line {self.line_id}", self.ns),
            instantiate_optional=False))[0]
        await line_object.add_reference(unit.nodeid, ObjectIds.Organizes)
        fsm = self.server.get_node(ObjectIds.FiniteStateMachineType)
        admin_type = await self.server.nodes.base_object_type.get_child(
            f"{pns}:PackMLAdminObjectType")
        status_type = await self.server.nodes.base_object_type.get_child(
            f"{pns}:PackMLStatusObjectType")
        await self._add_declared(unit_type, "", BASE_CHILDREN, pns)
        await self._add_declared(admin_type, "Admin", ADMIN_CHILDREN, pns)
        await self._add_declared(status_type, "Status", STATUS_CHILDREN, pns)
        for machine, type_name in zip(self.machines, (
                "PackMLBaseStateMachineType", "PackMLMachineStateMachineType",
                "PackMLExecuteStateMachineType"), strict=True):
            machine_type = await fsm.get_child(f"{pns}:{type_name}")
            await machine.learn(machine_type)
            methods = MACHINE_METHODS[machine.path.rsplit(".", 1)[-1]]
            await self._add_declared(machine_type, machine.path, tuple(methods), pns)
            for name, command in methods.items():
                self.server.link_method(self.server.get_node(self.node_id(
                    f"{machine.path}.{name}")), self._command(command, name))
            await self._write(f"{machine.path}.AvailableStates", list(machine.states.values()),
                              ua.VariantType.NodeId)
        for name, handler in (("SetMachSpeed", self._set_mach_speed),
                              ("SetUnitMode", self._set_unit_mode),
                              ("SetProduct", self._set_product),
                              ("SetParameter", self._set_parameter)):
            self.server.link_method(self.server.get_node(self.node_id(name)), handler)
        await self._write("TagID", self.line_id, ua.VariantType.String)
        await self._write("Status.UnitModeCurrent", PRODUCE, ua.VariantType.Int32)
        modes = await self.server.get_node(ObjectIds.Enumeration).get_child(
            f"{pns}:ProductionMaintenanceModeEnum")
        await self._write("Status.UnitSupportedModes", modes.nodeid, ua.VariantType.NodeId)
        await self._write("Admin.AlarmExtent", ALARM_EXTENT, ua.VariantType.Int32)
        await self._write("Admin.WarningExtent", ALARM_EXTENT, ua.VariantType.Int32)
        await self._write("Admin.StopReasonExtent", 1, ua.VariantType.Int32)
        # The controller does not see the conveyor's neighbours.
        await self._write("Status.EquipmentBlocked", False, ua.VariantType.Boolean)
        await self._write("Status.EquipmentStarved", False, ua.VariantType.Boolean)
        # From the Server object, the root of the event notifiers, where alarm clients look;
        # SourceNode names the unit. One emitter, so ConditionRefresh replays each standing
        # condition once.
        self.events = await self.server.get_event_generator(
            ObjectIds.AlarmConditionType, self.server.nodes.server.nodeid)
        self.event_template = self.events.event
        return unit

    async def _add_declared(self, type_node: Node, path: str, names: tuple[str, ...],
                            pns: int) -> None:
        """Instantiate optional children of ``type_node``'s declaration under ``path``
        (asyncua's instantiate copies only what the type's own declarations hold)."""
        wanted = {name: None for name in names}
        for description in await type_node.get_children_descriptions():
            name = description.BrowseName.Name
            if name in wanted and description.BrowseName.NamespaceIndex == pns:
                await _instantiate_node(
                    self.server.iserver.isession, self.server.get_node(description.NodeId),
                    self.node_id(path), description,
                    self.node_id(f"{path}.{name}" if path else name), description.BrowseName,
                    instantiate_optional=False)
                del wanted[name]
        if wanted:
            raise LookupError(f"the PackML nodeset does not declare {', '.join(wanted)} "
                              f"in {(await type_node.read_browse_name()).Name}")

    # --- methods ---
    def _command(self, command: Command | str,
                 name: str) -> Callable[..., Awaitable[MethodResult]]:
        async def call(parent: ua.NodeId, *args: ua.Variant) -> MethodResult:
            if len(args) > 1:
                return bad(StatusCodes.BadTooManyArguments)
            if args and args[0].Value:
                log.info("PLC %s refused: this unit takes no parameters", name,
                         extra={"line": self.line_id})
                return bad(StatusCodes.BadInvalidArgument)
            return await self._run(self.line.command(command), name)
        return call

    async def _run(self, outcome: Awaitable[object], name: str) -> MethodResult:
        try:
            await outcome
        except CommandRefused as exc:
            log.info("PLC %s refused: %s", name, exc, extra={"line": self.line_id})
            return bad(StatusCodes.BadInvalidState)
        except DomainError as exc:
            log.info("PLC %s refused: %s", name, exc, extra={"line": self.line_id})
            return bad(StatusCodes.BadInvalidArgument)
        self.line.outputs.changed()
        return []

    @staticmethod
    def _one(args: tuple[ua.Variant, ...]) -> ua.Variant | ua.StatusCode:
        if not args:
            return bad(StatusCodes.BadArgumentsMissing)
        if len(args) > 1:
            return bad(StatusCodes.BadTooManyArguments)
        return args[0]

    async def _set_mach_speed(self, parent: ua.NodeId, *args: ua.Variant) -> MethodResult:
        """``SetMachSpeed(Float ppm)``: the speed the line is asked to run at."""
        arg = self._one(args)
        if isinstance(arg, ua.StatusCode):
            return arg
        if arg.VariantType not in (ua.VariantType.Float, ua.VariantType.Double):
            return bad(StatusCodes.BadTypeMismatch)
        ppm = float(arg.Value)
        if not math.isfinite(ppm) or ppm < 0:
            return bad(StatusCodes.BadOutOfRange)
        self.line.speed = ppm / 60.0
        log.info("PLC set the machine speed to %.1f/min", ppm, extra={"line": self.line_id})
        self.line.outputs.changed()
        return []

    async def _set_unit_mode(self, parent: ua.NodeId, *args: ua.Variant) -> MethodResult:
        """``SetUnitMode(mode)``: a coding line has one mode, Produce."""
        arg = self._one(args)
        if isinstance(arg, ua.StatusCode):
            return arg
        if not isinstance(arg.Value, int) or isinstance(arg.Value, bool):
            return bad(StatusCodes.BadTypeMismatch)
        if arg.Value == PRODUCE:
            return []
        return bad(StatusCodes.BadNotSupported if 0 < arg.Value < UNIT_MODES
                   else StatusCodes.BadInvalidArgument)

    async def _set_product(self, parent: ua.NodeId, *args: ua.Variant) -> MethodResult:
        """``SetProduct([Product])``: ProductID is a batch id of this line; the batch starts
        (the standard form of codeline's StartBatch)."""
        arg = self._one(args)
        if isinstance(arg, ua.StatusCode):
            return arg
        products = arg.Value if isinstance(arg.Value, list) else [arg.Value]
        product_type = self.types["PackMLProductDataType"]
        if not all(isinstance(p, product_type) for p in products):
            return bad(StatusCodes.BadTypeMismatch)
        if len(products) != 1 or products[0].ProductID <= 0:
            return bad(StatusCodes.BadInvalidArgument)
        return await self._run(self.line.command("start_batch", str(products[0].ProductID)),
                               "SetProduct")

    async def _set_parameter(self, parent: ua.NodeId, *args: ua.Variant) -> MethodResult:
        """``SetParameter``: a coding line has no machine parameters to set from the PLC."""
        return bad(StatusCodes.BadNotSupported)

    # --- values ---
    async def _write(self, path: str, value: Any, vtype: ua.VariantType) -> None:
        if self.written.get(path, ...) == value:
            return
        await self.server.write_attribute_value(self.node_id(path),
                                                ua.DataValue(ua.Variant(value, vtype)))
        self.written[path] = value

    async def refresh(self, snap: LineSnapshot) -> None:
        packml = self.line.packml
        state = packml.state
        for machine, current in zip(self.machines, nested_states(state), strict=True):
            state_id = machine.states.get(current) if current else None
            await self._write(f"{machine.path}.CurrentState",
                              ua.LocalizedText(current) if current else ua.LocalizedText(),
                              ua.VariantType.LocalizedText)
            await self._write(f"{machine.path}.CurrentState.Id", state_id or ua.NodeId(),
                              ua.VariantType.NodeId)
            await self._write(f"{machine.path}.AvailableTransitions",
                              machine.leaving.get(current, []) if current else [],
                              ua.VariantType.NodeId)
        requested = packml.requested if packml.requested is not None else state
        await self._write("Status.StateRequested", int(requested), ua.VariantType.Int32)
        await self._write("Status.StateChangeInProcess", state in ACTING_DONE,
                          ua.VariantType.Boolean)
        await self._write("Status.MachSpeed", float((snap.speed or 0.0) * 60),
                          ua.VariantType.Float)
        await self._write("Status.CurMachSpeed", float(snap.rate * 60), ua.VariantType.Float)
        product = self.types["PackMLProductDataType"]
        await self._write("Status.Product", [] if snap.batch is None else [
            product(ProductID=snap.batch.id, ProcessVariables=[], Ingredients=[])],
            ua.VariantType.ExtensionObject)
        await self._write_counts(snap)
        await self._write_times()
        await self._write_alarms(snap)

    async def _write_counts(self, snap: LineSnapshot) -> None:
        count = self.types["PackMLCountDataType"]
        batch, total = snap.counts.batch, snap.counts.total

        def entry(number: int, name: str, now: int, acc: int) -> Any:
            clamp = 2**31 - 1
            return count(ID=number, Name=name, Unit=PIECE, Count=min(now, clamp),
                         AccCount=min(acc, clamp))
        processed = [entry(1, "printed", batch.printed, total.printed),
                     entry(2, "commissioned", batch.commissioned, total.commissioned),
                     entry(3, "cases sealed", batch.cases, total.cases),
                     entry(4, "pallets sealed", batch.pallets, total.pallets)]
        defective = [entry(1, "rejected", batch.rejected, total.rejected)]
        for number, reason in enumerate(sorted(_reasons(batch, total)), start=2):
            defective.append(entry(number, f"rejected: {reason}",
                                   batch.rejected_by_reason.get(reason, 0),
                                   total.rejected_by_reason.get(reason, 0)))
        await self._write("Admin.ProdProcessedCount", processed, ua.VariantType.ExtensionObject)
        await self._write("Admin.ProdDefectiveCount", defective, ua.VariantType.ExtensionObject)

    async def _write_times(self) -> None:
        packml = self.line.packml
        states = len(State)
        current = [[0] * states for _ in range(UNIT_MODES)]
        current[PRODUCE][packml.state] = int(packml.seconds_in_state())
        cumulative = [[0] * states for _ in range(UNIT_MODES)]
        for state, seconds in packml.seconds_per_state().items():
            cumulative[PRODUCE][state] = int(seconds)
        await self._write("Admin.StateCurrentTime", current, ua.VariantType.Int32)
        await self._write("Admin.StateCumulativeTime", cumulative, ua.VariantType.Int32)
        await self._write("Admin.AccTimeSinceReset", int(packml.seconds_since_reset()),
                          ua.VariantType.Int32)

    async def _write_alarms(self, snap: LineSnapshot) -> None:
        alarm = self.types["PackMLAlarmDataType"]
        raised_at = {record.source: record.at for record in snap.alarms if record.active}
        now = dt.datetime.now(dt.UTC)

        def entry(source: str, text: str, category: int) -> Any:
            at = raised_at.get(source)
            number = self.alarm_ids.setdefault(source, len(self.alarm_ids) + 1)
            return alarm(ID=number, Value=number, Message=f"{source}: {text}",
                         Category=category, Trigger=True,
                         DateTime=now if at is None else dt.datetime.fromtimestamp(
                             at / 1000, dt.UTC))
        active = sorted(snap.active_alarms.items())
        warnings = set(snap.warnings)
        await self._write("Admin.Alarm", [entry(s, t, 1) for s, t in active
                                          if s not in warnings][:ALARM_EXTENT],
                          ua.VariantType.ExtensionObject)
        await self._write("Admin.Warning", [entry(s, t, 2) for s, t in active
                                            if s in warnings][:ALARM_EXTENT],
                          ua.VariantType.ExtensionObject)
        await self._write("Admin.StopReason", alarm(
            ID=0, Value=0, Message=snap.stop_reason or "", Category=0,
            Trigger=bool(snap.stop_reason)), ua.VariantType.ExtensionObject)
        await self._conditions(snap, warnings)

    async def _conditions(self, snap: LineSnapshot, warnings: set[str]) -> None:
        """An AlarmCondition event for every alarm raised, changed or cleared."""
        changes: list[tuple[str, str, bool]] = [
            (source, text, True) for source, text in snap.active_alarms.items()
            if self.raised.get(source) != text]
        changes += [(source, text, False) for source, text in self.raised.items()
                    if source not in snap.active_alarms]
        for source, text, active in changes:
            if active:
                self.raised[source] = text
            else:
                del self.raised[source]
            severity = WARNING_SEVERITY if source in warnings else HOLD_SEVERITY
            assert self.events is not None
            event = self.events.event = copy.deepcopy(self.event_template)
            event.NodeId = self.node_id(f"Alarms.{source}")
            event.ConditionName = source
            event.SourceNode = self.node_id()
            event.SourceName = f"Line {self.line_id}"
            event.Severity = severity
            event.Retain = active
            event.ActiveState = ua.LocalizedText("Active" if active else "Inactive")
            setattr(event, "ActiveState/Id", active)
            event.EnabledState = ua.LocalizedText("Enabled")
            setattr(event, "EnabledState/Id", True)
            # Acknowledged at the line (Reset, Unhold), not over OPC UA.
            event.AckedState = ua.LocalizedText("Acknowledged")
            setattr(event, "AckedState/Id", True)
            await self.events.trigger(message=text if active else f"cleared: {text}")


def _reasons(batch: Figures, total: Figures) -> set[str]:
    return set(batch.rejected_by_reason) | set(total.rejected_by_reason)
