"""No failure of a task leaves a line in Execute: an unexpected error injected into each kind
of production task of a real ``codeline run`` (``CODELINE_FAILPOINTS``) aborts the line with
an alarm that names it, logged as JSON with its traceback; the controller still stops on
SIGTERM, and Clear, Reset, Start run the line again."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from edge.domain.lifecycle import State
from edge.store.database import Store
from simulators.line import LineSimSettings
from tests.line.harness import rig

pytestmark = pytest.mark.timeout(180)

ABORTED, STOPPED, IDLE, EXECUTE, HELD = 9, 2, 4, 6, 11

PRODUCTION = {"flow.feed": 3, "flow.printer_events": 30, "flow.verify": 30, "flow.commit": 5,
              "station.case": 0, "station.pallet": 0}


@pytest.mark.parametrize("failpoint", list(PRODUCTION))
async def test_a_failed_production_task_aborts_the_line_with_an_alarm_naming_it(
        tmp_path: Path, failpoint: str) -> None:
    env = {"CODELINE_FAILPOINTS": f"{failpoint}@{PRODUCTION[failpoint]}"}
    settings = LineSimSettings(seed=2, rate=200, transit_ms=500)
    async with rig(tmp_path, settings, 2 * 10 * 24, env=env) as r:
        await r.plc.run_batch("LOT1")
        await r.plc.wait_state(ABORTED, within=60)
        assert f"failpoint {failpoint} fired" in r.plc.alarm
        assert r.log_path is not None
        records = [json.loads(line) for line in r.log_path.read_text().splitlines()
                   if line.startswith("{")]
        stopped = [rec for rec in records if rec["msg"].startswith("production stopped")]
        assert stopped and "InjectedFault" in json.dumps(stopped[0])

        with Store(r.db_path) as store:  # the cleared printer buffer is VOID already
            reserved = store.read().execute("SELECT count(*) FROM codes WHERE state = ?",
                                            (int(State.RESERVED),)).fetchone()[0]
        assert reserved == 0

        if failpoint == "flow.verify":  # once is enough: the way back is the same for all
            await r.plc.call("Clear")
            await r.plc.wait_state(STOPPED, within=30)
            await r.plc.call("Reset")
            await r.plc.wait_state(IDLE, within=30)
            await r.plc.call("Start")
            await r.plc.wait_state(EXECUTE, within=30)  # fresh tasks, the failpoint spent

        began = time.monotonic()
        assert await r.stop_daemon() == 0
        assert time.monotonic() - began < 60


async def test_a_failed_plc_refresh_holds_the_line_and_publishing_goes_on(
        tmp_path: Path) -> None:
    env = {"CODELINE_FAILPOINTS": "plc.publish@8"}
    settings = LineSimSettings(seed=2, rate=200, transit_ms=500)
    async with rig(tmp_path, settings, 2 * 10 * 24, env=env) as r:
        await r.plc.run_batch("LOT1")
        await r.plc.wait_state(HELD, within=60)
        assert "PLC variables not refreshed" in r.plc.alarm
        await r.plc.call("Unhold")
        await r.plc.wait_state(EXECUTE, within=30)
        await asyncio.sleep(0.5)
        assert await r.stop_daemon() == 0
