"""The realistic example config (``line_config/examples/plant.yaml``) end to end: the laser
over Modbus TCP marks, the AutoID reader over OPC-UA (SignAndEncrypt) verifies, against the
simulators of ``codeline sim line`` and a real ``codeline run`` process."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulators.laser import LaserSim
from simulators.line import LineSimSettings
from tests.line.harness import rig, run_batch_to_close

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
        closed = await run_batch_to_close(r)
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
