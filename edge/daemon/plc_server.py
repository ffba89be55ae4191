"""The controller's OPC-UA server for the PLC of one line (PROTOCOLS.md §7).

Address space, all under the object ``Line <id>`` in namespace ``urn:codeline:plc`` with
string node ids ``<line>.<name>``: PackML state (numbered as ISA-TR88), its commands as
methods, the current batch, admin counters per batch and accumulated, the rate, alarms, and
the reject interface: ``Reject.Verdicts`` = [epoch, judged-through item number, then the most
recent item numbers to reject]. One array, so a PLC never sees an item judged without its
reject, nor the numbers of one epoch with the list of another. Item numbers count from 1
within an epoch; the epoch (also in ``Reject.Epoch``) changes whenever numbering restarts.

Security as plants deploy it: Basic256Sha256 Sign / SignAndEncrypt endpoints, a server
certificate made on first start (its key 0600), trusted client certificates from a folder,
users with scrypt-hashed passwords from a file. Sessions and calls run only on the configured
policies: a channel without security is answered for discovery (GetEndpoints, FindServers)
and nothing else. Nobody is an administrator, the address space cannot be changed from
outside, and no node is writable: a PLC reads, subscribes and calls methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.permission_rules import (
    PermissionRuleset,
    SimpleRoleRuleset,
    User,
    UserRole,
)
from asyncua.crypto.security_policies import SecurityPolicyFactory, SecurityPolicyNone
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from asyncua.server.server import Server
from asyncua.server.user_managers import UserManager
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes
from cryptography.x509.oid import ExtendedKeyUsageOID

from edge.daemon.errors import AddressInUse, PlcConfigError
from edge.daemon.failpoints import failpoint
from edge.daemon.line import LineRuntime
from edge.daemon.packml import Command, CommandRefused
from edge.domain.errors import DomainError
from line_config.models import PlcServer

log = logging.getLogger("codeline.plc")

NAMESPACE = "urn:codeline:plc"
RECENT_REJECTS = 64
APP_URI = "urn:codeline:controller"

POLICIES = {
    "none": ua.SecurityPolicyType.NoSecurity,
    "sign": ua.SecurityPolicyType.Basic256Sha256_Sign,
    "sign_encrypt": ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
}


MethodResult = list[ua.Variant] | ua.StatusCode

DESCRIPTIONS = {
    "Reject.Verdicts": "[epoch, judged-through item number, item numbers to reject...]. Items "
                       "are numbered from 1 within an epoch, in the order the printer confirms "
                       "them (the PLC counts the same products). An item numbered beyond the "
                       "judged-through number when it reaches the gate is rejected.",
    "Reject.Epoch": "Changes whenever item numbering restarts at 1 (every Start of production, "
                    "every controller start); Reject.Verdicts starts empty with it. Products "
                    "counted after the change belong to the new epoch.",
}


def hash_password(password: str, salt: bytes | None = None) -> str:
    """``scrypt:<salt>:<hash>`` for a users file line ``name:scrypt:<salt>:<hash>``."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt:{salt.hex()}:{digest.hex()}"


def load_users(path: Path) -> dict[str, tuple[bytes, bytes]]:
    """Users from ``name:scrypt:<salt hex>:<hash hex>`` lines (# comments allowed)."""
    users: dict[str, tuple[bytes, bytes]] = {}
    try:
        text = path.read_text()
    except OSError as exc:
        raise PlcConfigError(f"plc.users_file {path}: {exc.strerror}") from None
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) != 4 or parts[1] != "scrypt":
            raise PlcConfigError(f"{path}:{number}: expected name:scrypt:<salt>:<hash> "
                                 "(make one with `codeline certs hash-password`)")
        try:
            users[parts[0]] = (bytes.fromhex(parts[2]), bytes.fromhex(parts[3]))
        except ValueError:
            raise PlcConfigError(f"{path}:{number}: salt and hash must be hex") from None
    return users


class PlcUsers(UserManager):
    """Who may hold a PLC session: with a users file, a listed user whose password matches
    its scrypt hash; without one, anonymous. Never an administrator, and never a session on a
    channel without security when the server requires security."""

    def __init__(self, users: dict[str, tuple[bytes, bytes]] | None,
                 secure_channel_required: bool) -> None:
        self.users = users
        self.secure_channel_required = secure_channel_required

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> User | None:
        if self.secure_channel_required and certificate is None:
            return None  # a channel without security: its password would cross in clear
        if self.users is None:
            return User(role=UserRole.User, name="anonymous") if username is None else None
        if username is None or password is None or username not in self.users:
            return None
        salt, digest = self.users[username]
        given = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
        return User(role=UserRole.User, name=username) if hmac.compare_digest(given, digest) \
            else None


_ID = ObjectIds
PLC_SERVICES = frozenset((
    _ID.CreateSessionRequest_Encoding_DefaultBinary,
    _ID.CloseSessionRequest_Encoding_DefaultBinary,
    _ID.ActivateSessionRequest_Encoding_DefaultBinary,
    _ID.GetEndpointsRequest_Encoding_DefaultBinary,
    _ID.FindServersRequest_Encoding_DefaultBinary,
    _ID.CloseSecureChannelRequest_Encoding_DefaultBinary,
    _ID.ReadRequest_Encoding_DefaultBinary,
    _ID.BrowseRequest_Encoding_DefaultBinary,
    _ID.BrowseNextRequest_Encoding_DefaultBinary,
    _ID.TranslateBrowsePathsToNodeIdsRequest_Encoding_DefaultBinary,
    _ID.RegisterNodesRequest_Encoding_DefaultBinary,
    _ID.UnregisterNodesRequest_Encoding_DefaultBinary,
    _ID.CallRequest_Encoding_DefaultBinary,
    _ID.CreateSubscriptionRequest_Encoding_DefaultBinary,
    _ID.ModifySubscriptionRequest_Encoding_DefaultBinary,
    _ID.DeleteSubscriptionsRequest_Encoding_DefaultBinary,
    _ID.TransferSubscriptionsRequest_Encoding_DefaultBinary,
    _ID.SetPublishingModeRequest_Encoding_DefaultBinary,
    _ID.CreateMonitoredItemsRequest_Encoding_DefaultBinary,
    _ID.ModifyMonitoredItemsRequest_Encoding_DefaultBinary,
    _ID.DeleteMonitoredItemsRequest_Encoding_DefaultBinary,
    _ID.SetMonitoringModeRequest_Encoding_DefaultBinary,
    _ID.PublishRequest_Encoding_DefaultBinary,
    _ID.RepublishRequest_Encoding_DefaultBinary,
))


class PlcPermissions(SimpleRoleRuleset):
    """What an activated PLC session may ask: read, browse, subscribe, call. No Write, no
    node management, no history update, no server registration."""

    def __init__(self) -> None:
        pass  # the rule is check_validity alone, not the parent's role table

    def check_validity(self, user: User, action_type_id: ua.NodeId, body: Any) -> bool:
        return (user.role is UserRole.User and action_type_id.NamespaceIndex == 0
                and action_type_id.Identifier in PLC_SERVICES)


class DiscoveryOnly(PermissionRuleset):
    """A channel without security on a server that requires security: asyncua answers
    discovery and session set-up before any rule is asked; everything else is refused."""

    def check_validity(self, user: User, action_type_id: ua.NodeId, body: Any) -> bool:
        return False


class PlcOpcServer(Server):
    """asyncua's server with a rule on the channel without security when no endpoint
    offers it. asyncua accepts such a channel for discovery whatever the endpoints say, and
    without a rule of its own every service would run on it."""

    def __init__(self, user_manager: UserManager, none_is_discovery_only: bool) -> None:
        super().__init__(user_manager=user_manager)
        self.none_is_discovery_only = none_is_discovery_only

    async def _setup_server_nodes(self) -> None:
        await super()._setup_server_nodes()
        if self.none_is_discovery_only:
            self._policies.append(SecurityPolicyFactory(  # type: ignore[no-untyped-call]
                SecurityPolicyNone, ua.MessageSecurityMode.None_,
                permission_ruleset=DiscoveryOnly()))


def certificate_paths(cert_dir: Path) -> tuple[Path, Path]:
    return cert_dir / "server-cert.der", cert_dir / "server-key.pem"


async def ensure_certificate(cert_dir: Path, host: str, renew: bool = False) -> Path:
    """The server certificate (made on first start, or again with ``renew``); the folder
    is 0700 and the private key 0600 whoever made them."""
    cert, key = certificate_paths(cert_dir)

    def prepare() -> None:
        cert_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if renew:
            for path in (cert, key):
                path.unlink(missing_ok=True)

    await asyncio.to_thread(prepare)
    await setup_self_signed_certificate(
        key, cert, APP_URI, host, [ExtendedKeyUsageOID.SERVER_AUTH],
        {"countryName": "CN", "organizationName": "codeline", "commonName": "codeline controller"})
    await asyncio.to_thread(_private, cert_dir, key)
    return cert


def _private(cert_dir: Path, key: Path) -> None:
    if cert_dir.stat().st_uid == os.geteuid():
        cert_dir.chmod(0o700)
    key.chmod(0o600)


async def trusted_clients(folder: Path) -> CertificateValidator:
    """A validator that accepts exactly the client certificates in ``folder``."""
    def certificates() -> list[Path]:
        if not folder.is_dir():
            raise PlcConfigError(f"plc.trusted_certs_dir {folder} is not a folder")
        return [p for p in folder.iterdir() if p.suffix.lower() in (".der", ".pem", ".crt")]

    if not await asyncio.to_thread(certificates):
        raise PlcConfigError(
            f"plc.trusted_certs_dir {folder} holds no certificate (.der, .pem or .crt): no PLC "
            "could connect; copy the PLC's client certificate there")
    store = TrustStore([folder], [])
    try:
        await store.load()
    except Exception as exc:
        raise PlcConfigError(f"plc.trusted_certs_dir {folder}: {exc}") from None
    return CertificateValidator(
        CertificateValidatorOptions.TRUSTED_VALIDATION | CertificateValidatorOptions.PEER_CLIENT,
        store)


class LineNode:
    """One line's objects in the server; implements :class:`LineOutputs` for the runtime."""

    def __init__(self, server: Server, ns: int, line: LineRuntime) -> None:
        self.server = server
        self.ns = ns
        self.line = line
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

    async def build(self) -> None:
        objects = self.server.nodes.objects
        root = await objects.add_object(self.node_id("Line"), f"{self.ns}:Line {self.line.line.id}")
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
        self.judged_through = through_seq
        await self.write("Reject.Verdicts", [self.epoch, through_seq, *self.recent])

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
        await self.write("PackML.State", snap["state"])
        await self.write("PackML.StateName", snap["state_name"])
        await self.write("PackML.StopReason", snap["stop_reason"])
        batch = snap["batch"] or {"id": 0, "lot": ""}
        await self.write("Batch.Id", batch["id"])
        await self.write("Batch.Lot", batch["lot"])
        await self.write("Rate", float(snap["rate"]))
        active = snap["active_alarms"]
        await self.write("Alarm.Active", bool(active))
        await self.write("Alarm.Text", "; ".join(f"{k}: {v}" for k, v in active.items()))
        await self.write("Reject.ItemSeq", snap["buffers"]["item_seq"])
        for scope, key in (("Batch", "batch"), ("Total", "total")):
            counts = snap["counts"][key]
            for figure in ("Printed", "Commissioned", "Rejected", "Cases", "Pallets"):
                await self.write(f"Counters.{scope}.{figure}", counts[figure.lower()])


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
        await self.node.build()
        self.line.outputs = self.node
        try:
            await self.server.start()
        except OSError as exc:
            raise AddressInUse(f"line {line_id}: the PLC server cannot listen on "
                               f"{s.host}:{s.port}: {exc.strerror or exc}") from None
        log.info("PLC server listening", extra={"line": line_id,
                                                "endpoint": self.endpoint})

    async def run(self) -> None:
        assert self.node is not None
        await self.node.publish_forever()

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.server.stop()
