"""Ctrl-C at the operator's terminal reaches the controller and its decoding worker alike
(one process group): the controller stops its line cleanly and exits 0, and nothing but JSON
log lines reaches stderr — no worker traceback, no binding's leak report."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from simulators.line import LineSimSettings
from tests.line.harness import rig

pytestmark = pytest.mark.timeout(180)


async def test_ctrl_c_stops_the_controller_and_its_decoding_worker_quietly(
        tmp_path: Path) -> None:
    async with rig(tmp_path, LineSimSettings(seed=4, rate=200, transit_ms=400), 240) as r:
        await r.plc.run_batch("LOT1")
        for _ in range(600):  # until the case camera has decoded (the worker runs)
            if r.sim.cases:
                break
            await asyncio.sleep(0.05)
        assert r.sim.cases and r.daemon is not None
        os.killpg(r.daemon.pid, signal.SIGINT)
        assert await asyncio.to_thread(r.daemon.wait, 60) == 0
        assert r.log_path is not None
        output = r.log_path.read_text().splitlines()
        noise = [line for line in output if line.strip() and not line.startswith("{")
                 and not line.startswith("codeline running")]
        assert noise == []
