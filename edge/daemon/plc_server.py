"""The controller's OPC-UA server for the PLC of one line (PROTOCOLS.md §7).

Address space, all under the object ``Line <id>`` in namespace ``urn:codeline:plc`` with
string node ids ``<line>.<name>``: PackML state (numbered as ISA-TR88), its commands as
methods, the current batch, admin counters per batch and accumulated, the rate, alarms, and
the reject interface: ``Reject.Verdicts`` = [judged-through item number, then the most recent
item numbers to reject]. One array, so a PLC never sees an item judged without its reject.

Security as plants deploy it: Basic256Sha256 Sign / SignAndEncrypt endpoints, a server
certificate made on first start, trusted client certificates from a folder, users with
scrypt-hashed passwords from a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from asyncua.server.server import Server
from asyncua.server.user_managers import UserManager
from asyncua.ua.status_codes import StatusCodes
from cryptography.x509.oid import ExtendedKeyUsageOID

from edge.daemon.line import LineRuntime
from edge.daemon.packml import Command, CommandRefused
from edge.domain.errors import DomainError
from line_config.devices import is_loopback
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


class PlcConfigError(Exception):
    """The PLC server cannot start as configured (certificate, users file)."""


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


class PasswordUsers(UserManager):
    """Accepts a user whose password matches its scrypt hash; nobody else."""

    def __init__(self, users: dict[str, tuple[bytes, bytes]]) -> None:
        self.users = users

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> User | None:
        if username is None or password is None or username not in self.users:
            return None
        salt, digest = self.users[username]
        given = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
        return User(role=UserRole.User, name=username) if hmac.compare_digest(given, digest) \
            else None


def certificate_paths(cert_dir: Path) -> tuple[Path, Path]:
    return cert_dir / "server-cert.der", cert_dir / "server-key.pem"


async def ensure_certificate(cert_dir: Path, host: str, renew: bool = False) -> Path:
    """The server certificate (made on first start, or again with ``renew``)."""
    cert, key = certificate_paths(cert_dir)

    def prepare() -> None:
        cert_dir.mkdir(parents=True, exist_ok=True)
        if renew:
            for path in (cert, key):
                path.unlink(missing_ok=True)

    await asyncio.to_thread(prepare)
    await setup_self_signed_certificate(
        key, cert, APP_URI, host, [ExtendedKeyUsageOID.SERVER_AUTH],
        {"countryName": "CN", "organizationName": "codeline", "commonName": "codeline controller"})
    return cert


class LineNode:
    """One line's objects in the server; implements :class:`LineOutputs` for the runtime."""

    def __init__(self, server: Server, ns: int, line: LineRuntime) -> None:
        self.server = server
        self.ns = ns
        self.line = line
        self.vars: dict[str, Any] = {}
        self.recent: deque[int] = deque(maxlen=RECENT_REJECTS)
        self.judged_through = 0
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
            ("Reject.Verdicts", [0], ua.VariantType.Int64),
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
        for command in Command:
            await root.add_method(self.node_id(f"PackML.{command.label}"),
                                  f"{self.ns}:{command.label}", self._command_method(command),
                                  [], [ua.VariantType.String])
        await root.add_method(self.node_id("PackML.StartBatch"), f"{self.ns}:StartBatch",
                              self._start_batch, [ua.VariantType.String],
                              [ua.VariantType.String])

    def _command_method(self, command: Command) -> Callable[..., Awaitable[MethodResult]]:
        async def call(parent: ua.NodeId) -> MethodResult:
            return await self._run(self.line.command(command))
        return call

    async def _start_batch(self, parent: ua.NodeId, ref: ua.Variant) -> MethodResult:
        return await self._run(self.line.command("start_batch", str(ref.Value)))

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
        await self.write("Reject.Verdicts", [through_seq, *self.recent])

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
                await self._refresh()
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
        if "none" in s.security and not is_loopback(s.host):
            log.warning("PLC server on %s accepts connections WITHOUT security "
                        "(allow_insecure_remote is set)", s.host,
                        extra={"line": self.line.line.id})
        if s.users_file is not None:
            self.server = Server(user_manager=PasswordUsers(load_users(self._path(s.users_file))))
        await self.server.init()
        self.server.set_endpoint(self.endpoint)
        self.server.set_server_name(f"codeline line {self.line.line.id}")
        await self.server.set_application_uri(APP_URI)
        self.server.set_security_policy([POLICIES[m] for m in s.security])
        if s.users_file is not None:
            self.server.set_identity_tokens([ua.UserNameIdentityToken])
        if any(m != "none" for m in s.security):
            cert_dir = self._path(s.cert_dir)
            await ensure_certificate(cert_dir, s.host)
            cert, key = certificate_paths(cert_dir)
            await self.server.load_certificate(str(cert))
            await self.server.load_private_key(str(key))
            if s.trusted_certs_dir is not None:
                store = TrustStore([self._path(s.trusted_certs_dir)], [])
                await store.load()
                validator = CertificateValidator(
                    CertificateValidatorOptions.TRUSTED_VALIDATION
                    | CertificateValidatorOptions.PEER_CLIENT, store)
                self.server.set_certificate_validator(validator)
        ns = await self.server.register_namespace(NAMESPACE)
        self.node = LineNode(self.server, ns, self.line)
        await self.node.build()
        self.line.outputs = self.node
        await self.server.start()
        log.info("PLC server listening", extra={"line": self.line.line.id,
                                                "endpoint": self.endpoint})

    async def run(self) -> None:
        assert self.node is not None
        await self.node.publish_forever()

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.server.stop()
