"""The OPC-UA client link every OPC-UA driver opens: endpoint, message security, user.

asyncua errors are turned into the driver error tree here, so a device driver sees
:class:`ConnectionLost` for a lost session and :class:`CommandRefused` for a Bad status.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from asyncua import Client, ua
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from asyncua.ua.uaerrors import UaError, UaStatusCodeError

from drivers.errors import CommandRefused, ConnectionLost, DriverError
from line_config.devices import OpcUaTransport

MODES = {"sign": ua.MessageSecurityMode.Sign,
         "sign_encrypt": ua.MessageSecurityMode.SignAndEncrypt}


class MissingCredentials(DriverError):
    """The config names an environment variable that is not set."""


async def client_for(transport: OpcUaTransport, timeout_s: float = 4.0) -> Client:
    """An unconnected client for ``transport``, with its security and user set."""
    client = Client(transport.endpoint, timeout=timeout_s)
    client.application_uri = "urn:codeline:controller"
    if transport.security != "none":
        assert transport.client_cert_file and transport.client_key_file
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


@contextlib.contextmanager
def ua_errors(device: str, what: str) -> Iterator[None]:
    """Map asyncua and socket errors to driver errors."""
    try:
        yield
    except UaStatusCodeError as exc:
        code = exc.code
        if code in (ua.StatusCodes.BadSessionIdInvalid, ua.StatusCodes.BadSessionClosed,
                    ua.StatusCodes.BadConnectionClosed, ua.StatusCodes.BadSecureChannelClosed,
                    ua.StatusCodes.BadTimeout, ua.StatusCodes.BadServerNotConnected):
            raise ConnectionLost(f"{device}: {what}: {exc}") from exc
        raise CommandRefused(f"{device}: {what} refused: {exc}") from exc
    except (UaError, ConnectionError, OSError, TimeoutError) as exc:
        raise ConnectionLost(f"{device}: {what}: {exc or type(exc).__name__}") from exc
