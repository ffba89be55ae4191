"""The controller's OPC-UA server for the PLC of one line (PROTOCOLS.md §7).

Address space, all under the object ``Line <id>`` in namespace ``urn:codeline:plc`` with
string node ids ``<line>.<name>``: PackML state (numbered as ISA-TR88), its commands as
methods, the current batch, admin counters per batch and accumulated, the rate, alarms, and
the reject interface: ``Reject.Verdicts`` = [epoch, judged-through item number, then the most
recent item numbers to reject]. One array, so a PLC never sees an item judged without its
reject, nor the numbers of one epoch with the list of another. Item numbers count from 1
within an epoch; the epoch (also in ``Reject.Epoch``) changes whenever numbering restarts.

Who may connect, and how: :mod:`edge.daemon.plc_security`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.server.server import Server
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.status_codes import StatusCodes

from edge.daemon.errors import AddressInUse, PackMLModelMissing
from edge.daemon.failpoints import failpoint
from edge.daemon.line import LineRuntime
from edge.daemon.packml import Command, CommandRefused
from edge.daemon.plc_packml import NODESET, PackMLUnit
from edge.daemon.plc_security import (
    APP_URI,
    POLICIES,
    PlcOpcServer,
    PlcPermissions,
    PlcUsers,
    certificate_paths,
    ensure_certificate,
    load_users,
    trusted_clients,
)
from edge.domain.errors import DomainError
from line_config.plc import PlcServer
from line_config.standards import standards_dir

log = logging.getLogger("codeline.plc")

NAMESPACE = "urn:codeline:plc"
RECENT_REJECTS = 64

MethodResult = list[ua.Variant] | ua.StatusCode

DESCRIPTIONS = {
    "Reject.Verdicts": "[epoch, judged-through item number, item numbers to reject...]. Items "
                       "are numbered from 1 within an epoch, in the order the printer confirms "
                       "them (the PLC counts the same products). An item in the list, or "
                       "numbered beyond the judged-through number when it reaches the gate, is "
                       "rejected; a reject may be listed before judged-through reaches it.",
    "Reject.Epoch": "Changes whenever item numbering restarts at 1 (every Start of production, "
                    "every controller start); Reject.Verdicts starts empty with it. Products "
                    "counted after the change belong to the new epoch.",
}


class LineNode:
    """One line's objects in the server; implements :class:`LineOutputs` for the runtime."""

    def __init__(self, server: Server, ns: int, line: LineRuntime,
                 unit: PackMLUnit | None = None) -> None:
        self.server = server
        self.ns = ns
        self.line = line
        self.unit = unit
        self.vars: dict[str, Any] = {}
        self.recent: deque[int] = deque(maxlen=RECENT_REJECTS)
        self.judged_through = 0
        # Item numbers count from 1 within an epoch; a new epoch starts whenever numbering
        # restarts (every Start of production, every controller start). Time-based, so it
        # also differs across controller restarts.
        self.epoch = time.time_ns() // 1_000_000
        self.releases = {"case": 0, "pallet": 0}
        self._dirty = asyncio.Event()
        self._released = asyncio.Event()

    def node_id(self, name: str) -> ua.NodeId:
        return ua.NodeId.from_string(f"ns={self.ns};s={self.line.line.id}.{name}")

    async def build(self, nodeset: Path | None) -> None:
        """The line's codeline object, and its PackML unit when the nodeset is there."""
        objects = self.server.nodes.objects
        root = await objects.add_object(self.node_id("Line"), f"{self.ns}:Line {self.line.line.id}")
        if nodeset is not None:
            self.unit = PackMLUnit(self.server, self.ns, self.line)
            await self.unit.build(nodeset, root)
        variables: list[tuple[str, Any, ua.VariantType]] = [
            ("PackML.State", 2, ua.VariantType.Int32),
            ("PackML.StateName", "Stopped", ua.VariantType.String),
            ("PackML.StopReason", "", ua.VariantType.String),
            ("Batch.Id", 0, ua.VariantType.Int64),
            ("Batch.Lot", "", ua.VariantType.String),
            ("Rate", 0.0, ua.VariantType.Double),
            ("Alarm.Active", False, ua.VariantType.Boolean),
            ("Alarm.Text", "", ua.VariantType.String),
            ("Reject.Verdicts", [self.epoch, 0], ua.VariantType.Int64),
            ("Reject.Epoch", self.epoch, ua.VariantType.Int64),
            ("Reject.ItemSeq", 0, ua.VariantType.Int64),
            ("Release.Cases", 0, ua.VariantType.UInt64),
            ("Release.Pallets", 0, ua.VariantType.UInt64),
        ]
        for scope in ("Batch", "Total"):
            for figure in ("Printed", "Commissioned", "Rejected", "Cases", "Pallets"):
                variables.append((f"Counters.{scope}.{figure}", 0, ua.VariantType.UInt64))
        for name, value, vtype in variables:
            node = await root.add_variable(self.node_id(name), f"{self.ns}:{name}",
                                           ua.Variant(value, vtype))
            self.vars[name] = (node, vtype)
            if name in DESCRIPTIONS:
                await node.write_attribute(AttributeIds.Description, ua.DataValue(
                    ua.Variant(ua.LocalizedText(DESCRIPTIONS[name]))))
        for command in Command:
            await root.add_method(self.node_id(f"PackML.{command.label}"),
                                  f"{self.ns}:{command.label}", self._command_method(command),
                                  [], [ua.VariantType.String])
        await root.add_method(self.node_id("PackML.StartBatch"), f"{self.ns}:StartBatch",
                              self._start_batch, [ua.VariantType.String],
                              [ua.VariantType.String])

    def _command_method(self, command: Command) -> Callable[..., Awaitable[MethodResult]]:
        async def call(parent: ua.NodeId, *args: ua.Variant) -> MethodResult:
            if args:
                return ua.StatusCode(ua.UInt32(StatusCodes.BadTooManyArguments))
            return await self._run(self.line.command(command))
        return call

    async def _start_batch(self, parent: ua.NodeId, *args: ua.Variant) -> MethodResult:
        """``StartBatch(String id or lot)``; a missing, extra or non-string argument is the
        status OPC UA Part 4 names for it, not an unexpected error."""
        if not args:
            return ua.StatusCode(ua.UInt32(StatusCodes.BadArgumentsMissing))
        if len(args) > 1:
            return ua.StatusCode(ua.UInt32(StatusCodes.BadTooManyArguments))
        ref = args[0]
        if ref.VariantType is not ua.VariantType.String or not isinstance(ref.Value, str):
            return ua.StatusCode(ua.UInt32(StatusCodes.BadTypeMismatch))
        return await self._run(self.line.command("start_batch", ref.Value))

    async def _run(self, outcome: Awaitable[str]) -> MethodResult:
        """The command's answer, or the status code a PLC expects for a refusal (asyncua
        turns an exception raised by a method into BadUnexpectedError, so it is returned)."""
        try:
            text = await outcome
        except CommandRefused as exc:
            log.info("PLC command refused: %s", exc, extra={"line": self.line.line.id})
            return ua.StatusCode(ua.UInt32(StatusCodes.BadInvalidState))
        except DomainError as exc:
            log.info("PLC command refused: %s", exc, extra={"line": self.line.line.id})
            return ua.StatusCode(ua.UInt32(StatusCodes.BadInvalidArgument))
        return [ua.Variant(text, ua.VariantType.String)]

    async def write(self, name: str, value: Any) -> None:
        node, vtype = self.vars[name]
        await self.server.write_attribute_value(node.nodeid,
                                                ua.DataValue(ua.Variant(value, vtype)))

    # --- LineOutputs ---
    async def verdicts(self, through_seq: int, rejects: Sequence[int]) -> None:
        self.recent.extend(rejects)
        self.judged_through = max(self.judged_through, through_seq)
        await self.write("Reject.Verdicts", [self.epoch, self.judged_through, *self.recent])

    async def numbering_restarted(self) -> None:
        """A new epoch: its number, judged-through 0 and no rejects, in one write."""
        self.epoch = max(self.epoch + 1, time.time_ns() // 1_000_000)
        self.recent.clear()
        self.judged_through = 0
        await self.write("Reject.Verdicts", [self.epoch, 0])
        await self.write("Reject.Epoch", self.epoch)

    def changed(self) -> None:
        self._dirty.set()

    def released(self, level: str) -> None:
        self.releases[level] += 1
        self._released.set()

    async def publish_forever(self) -> None:
        """Refresh the slow-moving variables at most every 50 ms, releases at once."""
        async def releases() -> None:
            while True:
                await self._released.wait()
                self._released.clear()
                await self.write("Release.Cases", self.releases["case"])
                await self.write("Release.Pallets", self.releases["pallet"])

        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(releases())
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await self._dirty.wait()
                self._dirty.clear()
                try:
                    failpoint("plc.publish")
                    await self._refresh()
                except Exception as exc:
                    # The PLC would go on seeing a stale state: hold the line and say why;
                    # the next pass publishes again.
                    log.error("PLC variables not refreshed: %s: %s", type(exc).__name__, exc,
                              exc_info=exc, extra={"line": self.line.line.id})
                    self.line.alarm("plc", f"PLC variables not refreshed: "
                                    f"{type(exc).__name__}: {exc}", hold=True)
                    await asyncio.sleep(1.0)
                await asyncio.sleep(0.05)

    async def _refresh(self) -> None:
        snap = self.line.snapshot()
        await self.write("PackML.State", snap.state)
        await self.write("PackML.StateName", snap.state_name)
        await self.write("PackML.StopReason", snap.stop_reason)
        await self.write("Batch.Id", snap.batch.id if snap.batch else 0)
        await self.write("Batch.Lot", snap.batch.lot if snap.batch else "")
        await self.write("Rate", float(snap.rate))
        active = snap.active_alarms
        await self.write("Alarm.Active", bool(active))
        await self.write("Alarm.Text", "; ".join(f"{k}: {v}" for k, v in active.items()))
        await self.write("Reject.ItemSeq", snap.buffers.item_seq)
        for scope, c in (("Batch", snap.counts.batch), ("Total", snap.counts.total)):
            for figure, value in (("Printed", c.printed), ("Commissioned", c.commissioned),
                                  ("Rejected", c.rejected), ("Cases", c.cases),
                                  ("Pallets", c.pallets)):
                await self.write(f"Counters.{scope}.{figure}", value)
        if self.unit is not None:
            await self.unit.refresh(snap)


class PlcServerRunner:
    """The OPC-UA server of one line."""

    def __init__(self, settings: PlcServer, line: LineRuntime, base_dir: Path) -> None:
        self.settings = settings
        self.line = line
        self.base_dir = base_dir
        self.server = Server()
        self.node: LineNode | None = None
        self.endpoint = f"opc.tcp://{settings.host}:{settings.port}/codeline/"

    def _path(self, value: str) -> Path:
        path = Path(value)
        return path if path.is_absolute() else self.base_dir / path

    async def start(self) -> None:
        s = self.settings
        line_id = self.line.line.id
        reasons = s.insecure_reasons()
        if reasons:
            log.warning("PLC server on %s accepts %s (allow_insecure_remote is set): anyone "
                        "on that network can command the line", s.host, ", ".join(reasons),
                        extra={"line": line_id})
        secure = [m for m in s.security if m != "none"]
        users = load_users(self._path(s.users_file)) if s.users_file is not None else None
        self.server = PlcOpcServer(PlcUsers(users, secure_channel_required=len(secure) ==
                                            len(s.security)),
                                   none_is_discovery_only="none" not in s.security)
        self.server.iserver.bind_condition_methods = True  # ConditionRefresh for alarm clients
        await self.server.init()
        self.server.set_endpoint(self.endpoint)
        self.server.set_server_name(f"codeline line {line_id}")
        await self.server.set_application_uri(APP_URI)
        self.server.allow_remote_admin(False)
        self.server.set_security_policy([POLICIES[m] for m in s.security],
                                        permission_ruleset=PlcPermissions())
        self.server.set_identity_tokens(
            [ua.UserNameIdentityToken] if users is not None else [ua.AnonymousIdentityToken])
        if secure:
            cert_dir = self._path(s.cert_dir)
            await ensure_certificate(cert_dir, s.host)
            cert, key = certificate_paths(cert_dir)
            await self.server.load_certificate(str(cert))
            await self.server.load_private_key(str(key))
            if s.trusted_certs_dir is not None:
                self.server.set_certificate_validator(
                    await trusted_clients(self._path(s.trusted_certs_dir)))
        ns = await self.server.register_namespace(NAMESPACE)
        self.node = LineNode(self.server, ns, self.line)
        await self.node.build(self._packml_nodeset())
        self.line.outputs = self.node
        try:
            await self.server.start()
        except OSError as exc:
            raise AddressInUse("line {line_id}: the PLC server cannot listen on {host}:{port}: "
                               "{problem}", line_id=line_id, host=s.host, port=s.port,
                               problem=exc.strerror or exc) from None
        log.info("PLC server listening", extra={"line": line_id,
                                                "endpoint": self.endpoint})

    def _packml_nodeset(self) -> Path | None:
        """The OPC 30050 nodeset: as configured (it must be there), or from the standards
        folder; without it the line is served by its codeline nodes only, and says so."""
        configured = self.settings.packml_nodeset
        if configured is not None:
            path = self._path(configured)
            if not path.is_file():
                raise PackMLModelMissing(
                    "line {line_id}: plc.packml_nodeset {path} is not a file: download "
                    "Opc.Ua.PackML.NodeSet2.xml there (see the README, Standards)",
                    line_id=self.line.line.id, path=str(path))
            return path
        path = standards_dir() / NODESET
        if path.is_file():
            return path
        text = (f"no PackML unit (OPC 30050) for generic OPC UA clients: {path} not found; "
                "download the nodeset there or set plc.packml_nodeset (README, Standards)")
        log.warning(text, extra={"line": self.line.line.id})
        self.line.standing_alarm("plc-model", text)
        return None

    async def run(self) -> None:
        assert self.node is not None
        await self.node.publish_forever()

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.server.stop()
