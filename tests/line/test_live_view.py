"""The live view as a person reads it: progress against the plan with elapsed time and ETA,
the rate achieved against the rate asked, and device health in words (what NO_COLOR and
colour-blind operators see is the same text)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from edge.cli.status_view import line_panel
from edge.daemon.snapshot import LineSnapshot
from simulators.line import LineSimSettings
from tests.line.harness import rig

pytestmark = pytest.mark.timeout(240)

EXECUTE = 6


async def test_the_live_view_of_a_running_line_says_progress_eta_and_rate_in_words(
        tmp_path: Path) -> None:
    async with rig(tmp_path, LineSimSettings(seed=6, rate=30, transit_ms=300), 2000) as r:
        await r.stop_daemon()
        data = yaml.safe_load(r.config_path.read_text())
        data["lines"][0]["speed"] = 40
        r.config_path.write_text(yaml.safe_dump(data))
        r.start_daemon()
        await r.plc.wait_state(2, within=60)
        await r.plc.run_batch("LOT1")
        await r.plc.wait_state(EXECUTE, within=30)
        await asyncio.sleep(4)

        def status(*lang: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "edge.cli.main", *lang, "--config", str(r.config_path),
                 "status", "--once"], capture_output=True, text=True, timeout=60,
                env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"})

        shown = await asyncio.to_thread(status)
        chinese = await asyncio.to_thread(status, "--lang", "zh")
    view = shown.stdout
    assert chinese.returncode == 0, chinese.stderr
    assert "/ 2,000 件（" in chinese.stdout and "已用时 0:00:0" in chinese.stdout
    assert "预计剩余 " in chinese.stdout and " 件/秒，设定 40.0（" in chinese.stdout
    assert "：正常" in chinese.stdout and "时间为 UTC" in chinese.stdout
    assert shown.returncode == 0, shown.stderr
    assert "/ 2,000 good items (" in view and "elapsed 0:00:0" in view
    assert "ETA " in view and "ETA unknown" not in view
    assert " items/s of 40.0 asked (" in view
    for device in r.config.lines[0].devices:
        assert f"{device.id}: up" in view
    assert "times in UTC" in view
    assert "\x1b[" not in view  # NO_COLOR: words only


def test_a_device_down_reads_down_since_when_and_why_without_colour() -> None:
    at = time.time() * 1000
    line = {"line": "L1", "state": 11, "state_name": "Held", "stop_reason": "verify is down",
            "batch": {"id": 3, "lot": "L7", "product": "p1", "planned": 1000,
                      "started_at": at - 3_725_000},
            "rate": 0.0, "speed": 20.0,
            "counts": {s: {"printed": 400, "commissioned": 380, "rejected": 20, "cases": 15,
                           "pallets": 0, "rejected_by_reason": {"no-read": 20}}
                       for s in ("batch", "total")},
            "buffers": {"printer": 3, "buffer_ahead": 8, "in_transit": 0, "item_seq": 400,
                        "judged_through": 400},
            "devices": {"printer": {"up": True, "since": at, "cause": ""},
                        "verify": {"up": False, "since": at - 60_000,
                                   "cause": "connection refused"}},
            "alarms": [], "active_alarms": {"verify": "camera verify is down"}}
    console = Console(no_color=True, width=160, record=True)
    console.print(line_panel(LineSnapshot.from_dict(line), now=at / 1000))
    text = console.export_text()
    assert "verify: DOWN since " in text and "(connection refused)" in text
    assert "printer: up" in text
    assert "380 / 1,000 good items (38.0 %)" in text and "elapsed 1:02:05" in text
    assert "ETA unknown (not printing)" in text
    assert "0.0 items/s of 20.0 asked (0 %)" in text
    assert "ALARM" in text and "camera verify is down" in text
