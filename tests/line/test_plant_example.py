"""The realistic example config (``line_config/examples/plant.yaml``) end to end: the laser
over Modbus TCP marks, the AutoID reader over OPC-UA (SignAndEncrypt) verifies, against the
simulators of ``codeline sim line`` and a real ``codeline run`` process."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from edge.domain import batches
from edge.store.database import Store
from simulators.laser import LaserSim
from simulators.line import LineSimSettings
from tests.line.harness import compare, operator, rig, wait_complete

pytestmark = pytest.mark.timeout(240)

# The PLC's own security is the line runtime's concern; here the PLC link runs on loopback
# without it, and the devices keep what the example configures.
LOOPBACK_PLC: dict[str, object] = {"security": ["none"], "users_file": None,
                                   "trusted_certs_dir": None}


async def test_the_plant_example_marks_with_the_laser_and_verifies_over_autoid(
        tmp_path: Path) -> None:
    planned = 10 * 12  # ten cases of twelve, one part-filled pallet at batch end
    settings = LineSimSettings(seed=3, rate=120, transit_ms=800, noread_rate=0.02,
                               misread_rate=0.01)
    async with rig(tmp_path, settings, planned, plc_overrides=LOOPBACK_PLC,
                   example="plant") as r:
        assert isinstance(r.sim.printer, LaserSim)
        await r.plc.run_batch("LOT1")
        acknowledging = asyncio.create_task(operator(r.plc))
        await wait_complete(r.plc, 180)
        acknowledging.cancel()
        assert r.stop_daemon() == 0
        found = compare(r)
        assert found.problems == []
        assert found.stranded == 0
        with Store(r.db_path) as store:
            closed = batches.close(store, 1, operator="test")
        assert closed.reconciled, closed.problems
        items = closed.levels["item"]
        assert items.commissioned == planned == items.packed
        assert items.rejected == len(r.sim.rejected) > 0
        assert items.printed == len(r.sim.items.items)
        assert len(r.sim.cases) == 10 and len(r.sim.pallets) == 1
        verifier = r.sim.sims["verifier"]
        assert verifier.reads >= len(r.sim.items.items)  # type: ignore[attr-defined]
        assert r.plc.rejected_no_verdict == 0
        # The controller made its device client certificate and used it (SignAndEncrypt).
        assert (tmp_path / "pki" / "devices" / "client-cert.der").is_file()
