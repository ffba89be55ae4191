"""The whole line end to end: a real ``codeline run`` process, the simulated line and PLC."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulators.line import LineSimSettings
from tests.line.harness import (
    complete_and_close,
    conveyor_empty,
    printed,
    restart,
    rig,
    run_batch_to_close,
)

pytestmark = pytest.mark.timeout(240)

FAULTS = LineSimSettings(seed=11, rate=200, transit_ms=1500, noread_rate=0.01,
                         misread_rate=0.005, repeat_rate=0.002, printer_disconnect_after=300,
                         label_roll_change_at=6)


async def test_a_faulty_line_rejects_exactly_the_bad_items_and_reconciles(
        tmp_path: Path) -> None:
    planned = 2 * 10 * 24
    async with rig(tmp_path, FAULTS, planned) as r:
        closed = await run_batch_to_close(r)
        items = closed.levels["item"]
        assert items.commissioned == planned == items.packed
        assert items.rejected == len(r.sim.rejected) > 0
        assert "no-read" in items.rejected_by_reason
        assert len(r.sim.cases) == 20 and len(r.sim.pallets) == 2
        assert r.plc.rejected_no_verdict == 0
        case = closed.levels["case"]
        assert case.rejected == 1  # the roll-change label, read back and refused
        # The printer's link did drop once, and every physical print is in the database.
        assert r.log_path is not None and "device back online" in r.log_path.read_text()
        assert items.printed == len(r.sim.items.items)


async def test_a_killed_controller_restarts_and_finishes_the_batch(tmp_path: Path) -> None:
    planned = 2 * 10 * 24
    settings = LineSimSettings(seed=5, rate=200, transit_ms=1000, noread_rate=0.01,
                               misread_rate=0.005)
    async with rig(tmp_path, settings, planned) as r:
        await r.plc.run_batch("LOT1")
        await printed(r, 250)  # about half the batch
        r.kill_daemon()
        await conveyor_empty(r)
        await restart(r)
        found, closed = await complete_and_close(r)
        items = closed.levels["item"]
        # Items judged good but not yet told to the PLC when it died were rejected at the
        # gate (fail-safe); at batch end the line decommissions them: nothing commissioned
        # is left outside a case, and no physically rejected item is in one.
        assert found.stranded == 0
        assert items.packed == items.commissioned - items.decommissioned
        assert items.decommissioned <= 60
        assert items.void > 0  # the printer's buffer at the kill: VOID, never printed again
        assert r.plc.rejected_no_verdict > 0
        assert items.packed == sum(len(case.items) for case in r.sim.cases)
