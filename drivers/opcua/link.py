"""The OPC-UA client link every OPC-UA driver opens: endpoint, message security, user.

asyncua errors are turned into the driver error tree here, so a device driver sees
:class:`ConnectionLost` for a lost session and :class:`CommandRefused` for a Bad status.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaError, UaStatusCodeError
from cryptography.x509.oid import ExtendedKeyUsageOID

from drivers.errors import CommandRefused, ConnectionLost, DriverError
from line_config.devices import OpcUaTransport

CLIENT_URI = "urn:codeline:controller"
MODES = {"sign": ua.MessageSecurityMode.Sign,
         "sign_encrypt": ua.MessageSecurityMode.SignAndEncrypt}


class MissingCredentials(DriverError):
    """The config names an environment variable that is not set."""


async def client_for(transport: OpcUaTransport, timeout_s: float = 4.0) -> Client:
    """An unconnected client for ``transport``, with its security and user set."""
    client = Client(transport.endpoint, timeout=timeout_s)
    client.application_uri = CLIENT_URI
    if transport.security != "none":
        assert transport.client_cert_file and transport.client_key_file
        await ensure_client_certificate(Path(transport.client_cert_file),
                                        Path(transport.client_key_file))
        await client.set_security(SecurityPolicyBasic256Sha256, transport.client_cert_file,
                                  transport.client_key_file, mode=MODES[transport.security])
    if transport.username_env and transport.password_env:
        user = os.environ.get(transport.username_env)
        password = os.environ.get(transport.password_env)
        if user is None or password is None:
            raise MissingCredentials(
                f"set {transport.username_env} and {transport.password_env} for "
                f"{transport.endpoint}")
        client.set_user(user)
        client.set_password(password)
    return client


def numeric_node(ns: int, identifier: int) -> ua.NodeId:
    """``ns=<ns>;i=<identifier>`` (a node of a companion specification)."""
    return ua.NodeId.from_string(f"ns={ns};i={identifier}")


def loaded_type(name: str) -> Any:
    """A structure class made from the server's DataTypeDefinitions (after
    ``load_data_type_definitions``): ``loaded_type("ScanSettings")``."""
    found = getattr(ua, name, None)
    if found is None:
        raise DriverError(f"the server defines no data type {name!r}")
    return found


async def ensure_client_certificate(cert: Path, key: Path) -> None:
    """Make the controller's client certificate on first use (the plant then adds it to the
    device's trusted list); an existing one is kept."""
    def missing() -> bool:
        if cert.exists() and key.exists():
            return False
        cert.parent.mkdir(parents=True, exist_ok=True)
        key.parent.mkdir(parents=True, exist_ok=True)
        return True

    if not await asyncio.to_thread(missing):
        return
    await setup_self_signed_certificate(
        key, cert, CLIENT_URI, socket.gethostname(), [ExtendedKeyUsageOID.CLIENT_AUTH],
        {"organizationName": "codeline", "commonName": "codeline controller (device client)"})


@contextlib.contextmanager
def ua_errors(device: str, what: str) -> Iterator[None]:
    """Map asyncua and socket errors to driver errors."""
    try:
        yield
    except UaStatusCodeError as exc:
        code = exc.code
        if code in (StatusCodes.BadSessionIdInvalid, StatusCodes.BadSessionClosed,
                    StatusCodes.BadConnectionClosed, StatusCodes.BadSecureChannelClosed,
                    StatusCodes.BadTimeout, StatusCodes.BadServerNotConnected):
            raise ConnectionLost(f"{device}: {what}: {exc}") from exc
        raise CommandRefused(f"{device}: {what} refused: {exc}") from exc
    except (UaError, ConnectionError, OSError, TimeoutError) as exc:
        raise ConnectionLost(f"{device}: {what}: {exc or type(exc).__name__}") from exc
