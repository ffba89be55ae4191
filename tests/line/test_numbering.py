"""Item numbers and the PLC across PackML cycles: numbering restarts at 1 with a new epoch
whenever production starts again, the reject list is cleared with it, and the PLC's gate
follows the published rule. Stop/Reset/Start, Abort/Clear/Reset/Start, Hold/Unhold and
Suspend/Unsuspend mid-batch, with read faults: no good item is rejected for lack of a
verdict, no bad item passes, and the line matches the database item by item."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from simulators.line import LineSimSettings
from simulators.plc import PlcSim
from tests.line.harness import compare, rig, wait_complete

pytestmark = pytest.mark.timeout(300)

STOPPED, IDLE, SUSPENDED, EXECUTE, ABORTED, HELD = 2, 4, 5, 6, 9, 11


async def printed_more(plc: PlcSim, items: int) -> None:
    """Let the line run until ``items`` more products are printed."""
    start = len(plc.line.items.items)
    for _ in range(1200):
        if len(plc.line.items.items) >= start + items:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the line did not print")


async def cycle(plc: PlcSim, *steps: tuple[str, int]) -> None:
    for command, settles in steps:
        await plc.call(command)
        await plc.wait_state(settles, within=60)


async def test_every_packml_cycle_keeps_the_gate_and_the_database_in_step(
        tmp_path: Path) -> None:
    settings = LineSimSettings(seed=9, rate=200, transit_ms=600, noread_rate=0.02,
                               misread_rate=0.01)
    # every Stop and Abort voids the printer's buffer: a pool with room for that
    async with rig(tmp_path, settings, 2 * 10 * 24, item_pool=2000) as r:
        plc = r.plc
        await plc.run_batch("LOT1")
        await plc.wait_state(EXECUTE, within=60)
        # every cycle with cases sealed and travelling to the pallet reader
        await printed_more(plc, 60)
        await cycle(plc, ("Stop", STOPPED), ("Reset", IDLE), ("Start", EXECUTE))
        await printed_more(plc, 40)
        await cycle(plc, ("Abort", ABORTED), ("Clear", STOPPED), ("Reset", IDLE),
                    ("Start", EXECUTE))
        await printed_more(plc, 40)
        await cycle(plc, ("Hold", HELD), ("Unhold", EXECUTE))
        await printed_more(plc, 40)
        await cycle(plc, ("Suspend", SUSPENDED), ("Unsuspend", EXECUTE))
        await wait_complete(plc, 180)
        assert await r.stop_daemon() == 0
        found = compare(r)
        assert found.problems == []
        assert found.stranded == 0  # no good item rejected at the gate for want of a verdict
        assert r.sim.rejected  # the faulty reads were rejected physically
        epochs = [s.epoch for s in plc.sessions]
        assert len(epochs) == len(set(epochs)) >= 3  # controller start and the Starts
