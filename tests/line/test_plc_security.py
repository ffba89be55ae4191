"""The PLC link as plants deploy it: Basic256Sha256 SignAndEncrypt, the PLC's client
certificate in the controller's trusted folder, a user whose password is checked against its
scrypt hash. The PLC simulator runs a whole batch that way; strangers are turned away."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from asyncua.ua.uaerrors import UaError

from edge.cli.line_harness import plc_endpoint
from simulators.line import LineSimSettings
from simulators.plc import PlcSecurity
from tests.line.harness import PLC_PASSWORD, Rig, compare, rig, trusted_plc, wait_complete

pytestmark = pytest.mark.timeout(240)



async def connects(r: Rig, security: PlcSecurity) -> bool:
    """Whether a PLC with ``security`` gets a session with the controller."""
    client = await security.client(plc_endpoint(r.config))
    try:
        async with asyncio.timeout(15):
            await client.connect()
    except (UaError, OSError, TimeoutError, ConnectionError):
        return False
    await client.disconnect()
    return True


async def test_the_plc_runs_a_batch_over_sign_and_encrypt_and_strangers_are_refused(
        tmp_path: Path) -> None:
    security, overrides = await trusted_plc(tmp_path, ["sign", "sign_encrypt"])
    async with rig(tmp_path, LineSimSettings(rate=200, transit_ms=500), 48, security,
                   overrides) as r:
        await r.plc.run_batch("LOT1")
        await wait_complete(r.plc, 60)

        assert await connects(r, security)  # the checks below fail for their own reason
        wrong_password = PlcSecurity("sign_encrypt", security.cert_dir, "plc1", "guess")
        assert not await connects(r, wrong_password)
        stranger = PlcSecurity("sign_encrypt", tmp_path / "other-pki", "plc1", PLC_PASSWORD)
        assert not await connects(r, stranger)  # a certificate not in the trusted folder
        assert not await connects(r, PlcSecurity("none", None, "plc1", PLC_PASSWORD))

        assert await r.stop_daemon() == 0
        assert compare(r).problems == []
        assert len(r.sim.cases) == 2
