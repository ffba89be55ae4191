"""Invariant 5's one exception, against a real ``codeline run`` killed with SIGKILL: a reject is
told to the PLC before its verdict is durable, an accept only after. Whatever the instant of
the kill, no item the gate rejected on request is COMMISSIONED, and every item the gate let
through has its verdict on disk."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from edge.domain.lifecycle import State
from simulators.line import LineSimSettings
from tests.line.harness import (
    Rig,
    complete_and_close,
    conveyor_empty,
    gate_against_database,
    printed,
    restart,
    rig,
)
from tests.waiting import until

pytestmark = pytest.mark.timeout(240)

PLANNED = 2 * 10 * 24
REJECTING = LineSimSettings(seed=7, rate=200, transit_ms=800, noread_rate=0.06,
                            misread_rate=0.02)


def told_ahead(r: Rig) -> int:
    """Rejects the PLC holds for items beyond its judged-through number."""
    session = r.plc.sessions[-1]
    return sum(1 for number in session.rejects if number > session.judged_through)


async def test_rejects_told_while_commits_hang_stay_rejected_after_a_kill(
        tmp_path: Path) -> None:
    # The 30th group commit hangs on the database thread, as a disk that stops answering.
    env = {"CODELINE_FAILPOINTS": "flow.commit_stall@30"}
    async with rig(tmp_path, REJECTING, PLANNED, env=env) as r:
        await r.plc.run_batch("LOT1")
        await until(lambda: told_ahead(r) >= 3, "rejects told ahead of their commit", 20)
        ahead = told_ahead(r)
        r.kill_daemon()
        await conveyor_empty(r)
        requested, accepted = gate_against_database(r)
        # Told and physically rejected, with nothing on disk yet: the print confirmation and
        # the verdict were in the hung commit.
        undecided = [s for s in requested if s in (State.RESERVED, State.PRINTED)]
        assert len(undecided) >= ahead
        assert accepted

        r.env = None  # the next controller's disk answers
        await restart(r)  # recovery has run: VOID (never confirmed) or REJECTED
        requested, _ = gate_against_database(r)
        assert set(requested) <= {State.VOID, State.REJECTED}
        found, closed = await complete_and_close(r)
        assert found.problems == []
        assert closed.levels["item"].commissioned == PLANNED


async def test_controllers_killed_at_random_instants_never_accept_without_a_durable_verdict(
        tmp_path: Path) -> None:
    chance = random.Random(20261124)
    # Each kill voids the printer's buffer: a deeper item pool.
    async with rig(tmp_path, REJECTING, PLANNED, item_pool=PLANNED * 5) as r:
        await r.plc.run_batch("LOT1")
        for _ in range(3):
            await printed(r, len(r.sim.items.items) + chance.randint(60, 160))
            await asyncio.sleep(chance.random() * 0.05)  # the kill's instant, not an order
            r.kill_daemon()
            await conveyor_empty(r)
            gate_against_database(r)
            await restart(r)
            gate_against_database(r)
        found, _ = await complete_and_close(r)
        assert found.problems == []
        assert r.plc.rejected_requested > 0
