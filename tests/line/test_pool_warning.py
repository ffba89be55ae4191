"""A line warns before a pool runs dry: with fewer case codes than the batch's plan needs, a
real ``codeline run`` shows a standing case-pool alarm to the PLC and in the live view while it
still prints, and ``pool stats`` flags only the levels under their own marks."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from simulators.line import LineSimSettings
from tests.line.harness import Rig, rig, until_alarm

pytestmark = pytest.mark.timeout(240)

EXECUTE = 6


def codeline(r: Rig, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge.cli.main", "--config",
                           str(r.config_path), *args], capture_output=True, text=True,
                          timeout=60)


async def test_the_case_pool_is_warned_before_it_runs_dry(tmp_path: Path) -> None:
    # 240 items at 24 per case need 10 cases; the pool holds 6.
    async with rig(tmp_path, LineSimSettings(seed=5, rate=40, transit_ms=300), 240,
                   case_pool=6) as r:
        await r.plc.run_batch("LOT1")
        await r.plc.wait_state(EXECUTE, within=30)
        alarm = await until_alarm(r.plc, "runs dry", within=10)
        assert "case pool runs dry before the batch ends: " in alarm
        assert "the plan needs 10" in alarm
        assert r.plc.state == EXECUTE  # a warning, not a hold
        status = json.loads((await asyncio.to_thread(codeline, r, "status", "--json")).stdout)
        line = status["lines"][0]
        assert "runs dry" in line["active_alarms"]["pool.case"]
        assert set(line["active_alarms"]) >= {"pool.case"}
        view = (await asyncio.to_thread(codeline, r, "status", "--once")).stdout
        assert "case pool runs dry" in view
        stats = json.loads((await asyncio.to_thread(codeline, r, "pool", "stats", "--json"))
                           .stdout)
        marks = {s["level"]: s["low_water"] for s in stats}
        assert marks == {"item": 5000, "case": 209, "pallet": 21}  # one number, per level
        assert all(s["low"] == (s["available"] < s["low_water"]) for s in stats)
