"""A 5,000,000-code segment is imported (`codeline pool import`, its own process) while a line
runs at 1,000 items/s on the same database: the import writes in short transactions, so no
group commit of the line waits 100 ms or more (the controller's own commit histogram, read
from /metrics), nothing says "database is locked", and the line matches the database item by
item. A second import is killed mid-load: nothing of it is usable, and the next bulk command
removes what it left."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge.domain.serials import SerialScheme
from simulators.line import LineSimSettings
from tests.line.harness import conveyor_empty, gate_against_database, printed, rig
from tests.waiting import until

pytestmark = [pytest.mark.timeout(600), pytest.mark.solo]

EXECUTE = 6
CODES = 5_000_000
PLANNED = 60_000  # more than the line prints while the imports run


def segment_file(path: Path, scheme: SerialScheme, count: int) -> None:
    """``count`` fresh serials, one per line, written a million at a time."""
    width = scheme.total_length
    with path.open("wb") as f:
        for start in range(0, count, 1_000_000):
            block = scheme.draw_sorted(min(1_000_000, count - start))
            f.write(b"".join(block[i:i + width] + b"\n" for i in range(0, len(block), width)))


def import_process(config_path: Path, path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "edge.cli.main", "--config", str(config_path), "pool",
         "import", "--level", "item", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


async def lock_waits(url: str) -> dict[float, float]:
    """The controller's write-lock waits so far: count at or below each bound (seconds)."""
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(url)).text
    return {float(s.labels["le"]): s.value for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == "codeline_write_lock_wait_seconds_bucket"}


def usable_items(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(
            "SELECT count(*) FROM codes c JOIN segments s ON s.id = c.segment_id "
            "WHERE c.state = 0 AND s.level = 0 AND s.loading IS NULL").fetchone()[0])


async def test_a_5m_import_beside_a_line_at_1000_per_second_never_stalls_its_commits(
        tmp_path: Path) -> None:
    settings = LineSimSettings(seed=11, rate=1000, transit_ms=500, noread_rate=0.01)
    async with rig(tmp_path, settings, PLANNED, item_pool=PLANNED * 2, case_pool=PLANNED // 12,
                   pallet_pool=PLANNED // 120, sync_in_run=("metrics",),
                   reject={"consecutive_limit": 1000}) as r:
        scheme = SerialScheme.from_config(r.config.lines[0].codes.item.serial)
        big, killed = tmp_path / "segment-5m.txt", tmp_path / "segment-killed.txt"
        await asyncio.to_thread(segment_file, big, scheme, CODES)
        await asyncio.to_thread(segment_file, killed, scheme, 1_000_000)
        await r.plc.run_batch("LOT1")
        await r.plc.wait_state(EXECUTE, within=60)
        await printed(r, 1000)
        url = f"http://127.0.0.1:{r.config.sync.api.port}/metrics"
        before = await lock_waits(url)

        importing = import_process(r.config_path, big)
        output, _ = await asyncio.to_thread(importing.communicate, None, 300)
        assert importing.returncode == 0, output.decode()
        assert r.plc.state == EXECUTE  # the line ran through the whole import
        after = await lock_waits(url)
        waits = after[float("inf")] - before[float("inf")]
        slow = waits - (after[0.1] - before[0.1])
        stalled = waits - (after[0.25] - before[0.25])
        assert waits > 1000 and slow <= waits / 1000 and stalled == 0, \
            f"of {waits:.0f} transactions, {slow:.0f} waited ≥ 100 ms and {stalled:.0f} " \
            "≥ 250 ms for the write lock"

        # A second import, killed while it loads: none of its codes is ever usable.
        usable = await asyncio.to_thread(usable_items, r.db_path)
        interrupted = import_process(r.config_path, killed)
        with sqlite3.connect(r.db_path) as conn:
            await until(lambda: conn.execute(
                "SELECT count(*) FROM segments WHERE loading IS NOT NULL").fetchone()[0] > 0,
                "the second import loading", within=120, poll=0.01)
        os.kill(interrupted.pid, signal.SIGKILL)
        await asyncio.to_thread(interrupted.communicate, None, 30)
        assert await asyncio.to_thread(usable_items, r.db_path) <= usable

        assert r.plc.state == EXECUTE
        assert await r.stop_daemon() == 0
        await conveyor_empty(r)
        assert r.log_path is not None
        assert "database is locked" not in r.log_path.read_text(errors="replace")
        requested, accepted = gate_against_database(r)
        assert len(accepted) > 30_000

    # The next bulk command removes what the killed import left.
    generate = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "edge.cli.main", "--config", str(r.config_path),
                         "pool", "generate", "--level", "case", "--count", "10"],
        capture_output=True, text=True, timeout=120)
    assert generate.returncode == 0, generate.stderr
    with sqlite3.connect(r.db_path) as conn:
        assert conn.execute("SELECT count(*) FROM segments WHERE loading IS NOT NULL"
                            ).fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM codes c LEFT JOIN segments s ON "
                            "s.id = c.segment_id WHERE s.id IS NULL").fetchone()[0] == 0
        imported = conn.execute("SELECT count FROM segments WHERE origin = ?",
                                (big.name,)).fetchone()[0]
    assert imported == CODES
