"""Who may talk to the controller's OPC-UA server for the PLC, and how (PROTOCOLS.md §7).

Security as plants deploy it: Basic256Sha256 Sign / SignAndEncrypt endpoints, a server
certificate made on first start (its key 0600), trusted client certificates from a folder,
users with scrypt-hashed passwords from a file. Sessions and calls run only on the configured
policies: a channel without security is answered for discovery (GetEndpoints, FindServers)
and nothing else. Nobody is an administrator, the address space cannot be changed from
outside, and no node is writable: a PLC reads, subscribes and calls methods.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
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
from asyncua.ua.object_ids import ObjectIds
from cryptography.x509.oid import ExtendedKeyUsageOID

from edge.daemon.errors import PlcConfigError

APP_URI = "urn:codeline:controller"

POLICIES = {
    "none": ua.SecurityPolicyType.NoSecurity,
    "sign": ua.SecurityPolicyType.Basic256Sha256_Sign,
    "sign_encrypt": ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
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
        raise PlcConfigError("plc.users_file {path}: {problem}", path=path,
                             problem=exc.strerror) from None
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) != 4 or parts[1] != "scrypt":
            raise PlcConfigError("{path}:{number}: expected name:scrypt:<salt>:<hash> (make "
                                 "one with `codeline certs hash-password`)", path=path,
                                 number=number)
        try:
            users[parts[0]] = (bytes.fromhex(parts[2]), bytes.fromhex(parts[3]))
        except ValueError:
            raise PlcConfigError("{path}:{number}: salt and hash must be hex",
                                 path=path, number=number) from None
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
            raise PlcConfigError("plc.trusted_certs_dir {folder} is not a folder",
                                 folder=folder)
        return [p for p in folder.iterdir() if p.suffix.lower() in (".der", ".pem", ".crt")]

    if not await asyncio.to_thread(certificates):
        raise PlcConfigError(
            "plc.trusted_certs_dir {folder} holds no certificate (.der, .pem or .crt): no PLC "
            "could connect; copy the PLC's client certificate there", folder=folder)
    store = TrustStore([folder], [])
    try:
        await store.load()
    except Exception as exc:
        raise PlcConfigError("plc.trusted_certs_dir {folder}: {exc}", folder=folder,
                             exc=exc) from None
    return CertificateValidator(
        CertificateValidatorOptions.TRUSTED_VALIDATION | CertificateValidatorOptions.PEER_CLIENT,
        store)
