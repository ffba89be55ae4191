"""The PLC server against an attacker's OPC UA client (asyncua), on a real ``codeline run``,
and against malformed calls and settings.

Each row is something a client on the plant network tried: a channel without security with
the password in clear, an anonymous caller, ``admin`` with any password, writing the reject
list, deleting a PackML method. A positive control shows that the checks fail for their own
reason: the configured PLC, with its certificate and password, can command the line.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.uaerrors import (
    BadArgumentsMissing,
    BadTooManyArguments,
    BadTypeMismatch,
    UaError,
)

from edge.cli.line_harness import stock_line
from edge.daemon.plc_security import certificate_paths
from edge.domain import batches
from edge.store.database import Store
from simulators.plc import NAMESPACE, PlcSecurity
from tests.line.harness import (
    PLC_PASSWORD,
    Controller,
    lone_controller,
    site_config,
    trusted_plc,
)

pytestmark = pytest.mark.timeout(120)

STOPPED, ABORTED = 2, 9
REFUSED = (UaError, OSError, TimeoutError, ConnectionError)


def node(client: Client, ns: int, line: str, name: str) -> ua.NodeId:
    return ua.NodeId.from_string(f"ns={ns};s={line}.{name}")


async def command(client: Client, line: str, name: str) -> None:
    """Call PackML method ``name`` (raises what the server answers)."""
    ns = await client.get_namespace_index(NAMESPACE)
    parent = client.get_node(node(client, ns, line, "Line"))
    await parent.call_method(node(client, ns, line, f"PackML.{name}"))


class HostileClient(Client):
    """asyncua's client without its own courtesy: it opens a session on a channel without
    security even when no endpoint offers one (asyncua's client would stop there), taking the
    identity-token rules of whatever endpoint the server lists, as a hand-made client would."""

    async def create_session(self) -> ua.CreateSessionResult:
        params = ua.CreateSessionParameters()
        params.ClientNonce = secrets.token_bytes(32)
        params.ClientDescription = ua.ApplicationDescription(
            ApplicationUri="urn:attacker", ApplicationType=ua.ApplicationType.Client)
        params.EndpointUrl = self.server_url.geturl()
        params.SessionName = "attacker"
        params.RequestedSessionTimeout = 60_000
        response = await self.uaclient.create_session(params)
        self._server_nonce = response.ServerNonce
        self._policy_ids = response.ServerEndpoints[0].UserIdentityTokens
        return response


def hostile(endpoint: str, username: str | None = None, password: str | None = None
            ) -> HostileClient:
    client = HostileClient(endpoint, timeout=4)
    if username is not None:
        client.set_user(username)
        client.set_password(password or "")
    return client


async def state_of(security: PlcSecurity, c: Controller) -> int:
    """The line's PackML state as the configured PLC reads it."""
    client = await security.client(c.endpoint)
    async with client:
        ns = await client.get_namespace_index(NAMESPACE)
        line = c.config.lines[0].id
        return int(await client.get_node(node(client, ns, line, "PackML.State")).read_value())


async def eventually_state(security: PlcSecurity, c: Controller, wanted: int,
                           within: float = 10) -> bool:
    """Whether the line reaches PackML state ``wanted`` within ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        if await state_of(security, c) == wanted:
            return True
        await asyncio.sleep(0.1)
    return False


async def try_command(security: PlcSecurity | Client, c: Controller, name: str) -> bool:
    """Whether a client (or one set up as ``security``) got ``name`` accepted."""
    client = security if isinstance(security, Client) else await security.client(c.endpoint)
    try:
        async with asyncio.timeout(15):
            await client.connect()
    except REFUSED:
        return False
    try:
        await command(client, c.config.lines[0].id, name)
    except REFUSED:
        return False
    finally:
        with contextlib.suppress(*REFUSED):
            await client.disconnect()
    return True


async def test_a_channel_without_security_is_answered_for_discovery_and_nothing_else(
        tmp_path: Path) -> None:
    plc, overrides = await trusted_plc(tmp_path, ["sign_encrypt"])
    async with lone_controller(tmp_path, overrides) as c:
        discovery = Client(c.endpoint, timeout=4)
        endpoints = await discovery.connect_and_get_server_endpoints()
        assert {e.SecurityMode for e in endpoints} == {ua.MessageSecurityMode.SignAndEncrypt}

        assert not await try_command(hostile(c.endpoint, "plc1", PLC_PASSWORD), c, "Abort")
        assert not await try_command(hostile(c.endpoint), c, "Abort")
        assert not await _call_without_activation(c, "Abort")
        stranger = PlcSecurity("sign_encrypt", tmp_path / "stranger-pki", "plc1", PLC_PASSWORD)
        assert not await try_command(stranger, c, "Abort")
        wrong_password = PlcSecurity("sign_encrypt", plc.cert_dir, "plc1", "guess")
        assert not await try_command(wrong_password, c, "Abort")
        assert await state_of(plc, c) == STOPPED

        assert await try_command(plc, c, "Abort")  # the positive control
        assert await eventually_state(plc, c, ABORTED)


async def _call_without_activation(c: Controller, name: str) -> bool:
    """A raw session on a channel without security: CreateSession, then a call with no
    ActivateSession at all."""
    client = hostile(c.endpoint)
    try:
        await client.connect_socket()
        await client.send_hello()
        await client.open_secure_channel()
        await client.create_session()
    except REFUSED:
        return False
    try:
        ns = await client.get_namespace_index(NAMESPACE)
        await command_with(client, ns, c.config.lines[0].id, name)
    except REFUSED:
        return False
    finally:
        client.disconnect_socket()
    return True


async def command_with(client: Client, ns: int, line: str, name: str) -> None:
    parent = client.get_node(node(client, ns, line, "Line"))
    await parent.call_method(node(client, ns, line, f"PackML.{name}"))


async def test_nobody_is_admin_nothing_is_writable_and_the_server_key_is_private(
        tmp_path: Path) -> None:
    # The default security (sign_encrypt), no users file and no trust list: what a loopback
    # installation runs. Any certificate may connect; no one may more than a PLC may.
    async with lone_controller(tmp_path, {"security": ["sign_encrypt"]}) as c:
        line = c.config.lines[0].id
        assert not await try_command(hostile(c.endpoint), c, "Abort")
        admin = PlcSecurity("sign_encrypt", tmp_path / "attacker-pki", "admin", "anything")
        assert not await try_command(admin, c, "Abort")

        attacker = PlcSecurity("sign_encrypt", tmp_path / "attacker-pki")
        client = await attacker.client(c.endpoint)
        async with client:
            ns = await client.get_namespace_index(NAMESPACE)
            verdicts = client.get_node(node(client, ns, line, "Reject.Verdicts"))
            before = await verdicts.read_value()
            with pytest.raises(UaError):
                await verdicts.write_value(ua.Variant([before[0], 999999],
                                                      ua.VariantType.Int64))
            assert await verdicts.read_value() == before
            stop = client.get_node(node(client, ns, line, "PackML.Stop"))
            with pytest.raises(UaError):
                await client.delete_nodes([stop])
            with pytest.raises(UaError):
                await client.get_node(node(client, ns, line, "Line")).add_variable(
                    ua.NodeId.from_string(f"ns={ns};s=planted"), f"{ns}:planted", 1)
            assert (await stop.read_browse_name()).Name == "Stop"
            assert await state_of(attacker, c) == STOPPED  # reading is what a PLC does

        _, key = certificate_paths(Path(c.config.lines[0].plc.cert_dir))  # type: ignore[union-attr]
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700


async def test_a_malformed_start_batch_gets_the_status_opc_ua_names_and_starts_nothing(
        tmp_path: Path) -> None:
    async with lone_controller(tmp_path, {"security": ["none"]}) as c:
        line = c.config.lines[0].id
        client = Client(c.endpoint, timeout=4)
        async with client:
            ns = await client.get_namespace_index(NAMESPACE)
            parent = client.get_node(node(client, ns, line, "Line"))
            start_batch = node(client, ns, line, "PackML.StartBatch")
            for args, refusal in [((), BadArgumentsMissing),
                                  ((ua.Variant(1, ua.VariantType.Int64),), BadTypeMismatch),
                                  (("LOT1", "LOT1"), BadTooManyArguments)]:
                with pytest.raises(refusal):
                    await parent.call_method(start_batch, *args)
            with Store(c.db_path) as store:
                assert batches.get(store.read(), 1).state == "created"
            with pytest.raises(BadTooManyArguments):
                await parent.call_method(node(client, ns, line, "PackML.Reset"), "now")
            answer = await parent.call_method(start_batch, "LOT1")
            assert "running" in answer
        with Store(c.db_path) as store:
            assert batches.get(store.read(), 1).state == "running"


def test_an_empty_trust_list_is_one_error_line_not_a_traceback(tmp_path: Path) -> None:
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    config, config_path = site_config(tmp_path, {"security": ["sign_encrypt"],
                                                 "trusted_certs_dir": str(trusted)})
    stock_line(config, Path(config.store.path), {"item": 4}, "LOT1", 4, "test")
    done = subprocess.run([sys.executable, "-c", "from edge.cli.main import run; run()",
                           "--config", str(config_path), "run"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"plc.trusted_certs_dir {trusted} holds no certificate" in done.stderr
