"""One controller per database: a second ``codeline run`` started by mistake beside a
running line is refused before it touches anything, and operator commands keep working."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from edge.daemon.site import status_path
from edge.domain.lifecycle import State
from edge.store.database import Store
from simulators.line import LineSimSettings
from tests.line.harness import rig, run_batch_to_close

pytestmark = pytest.mark.timeout(240)

EXECUTE = 6


def codes_in(db_path: Path, state: State) -> int:
    with Store(db_path) as store:
        return int(store.read().execute(
            "SELECT count(*) FROM codes WHERE state = ?", (int(state),)).fetchone()[0])


def codeline(config_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from edge.cli.main import run; run()",
                           "--config", str(config_path), *args],
                          capture_output=True, text=True, timeout=60)


async def test_a_second_controller_is_refused_and_the_live_line_loses_nothing(
        tmp_path: Path) -> None:
    settings = LineSimSettings(seed=3, rate=150, transit_ms=600)
    async with rig(tmp_path, settings, 2 * 10 * 24) as r:
        assert r.daemon is not None
        first = r.daemon.pid
        finishing = asyncio.create_task(run_batch_to_close(r))
        await r.plc.wait_state(EXECUTE, within=60)
        for _ in range(400):  # until some items are printed
            if len(r.sim.items.items) >= 60:
                break
            await asyncio.sleep(0.05)
        reserved = codes_in(r.db_path, State.RESERVED)
        voided = codes_in(r.db_path, State.VOID)
        assert reserved > 0  # the printer's buffer: codes about to go on bottles

        second = await asyncio.to_thread(codeline, r.config_path, "run")
        assert second.returncode == 1
        assert f"pid {first} on host" in second.stderr
        assert "Traceback" not in second.stderr
        assert codes_in(r.db_path, State.VOID) == voided
        assert status_path(r.db_path).exists()

        added = await asyncio.to_thread(codeline, r.config_path, "pool", "generate", "--level",
                                        "item", "--count", "5")
        assert added.returncode == 0, added.stderr

        await finishing  # the line finishes its batch; line and database agree, reconciled
