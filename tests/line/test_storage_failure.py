"""The box's storage fails under a running line: a full disk (a real 24 MB tmpfs), the
database folder renamed away (as when it is deleted or unmounted). A real ``codeline run``
holds the line with an alarm naming the cause, keeps its PLC server up, refuses Unhold
while the storage is still bad, and resumes after it is fixed with nothing lost: the batch
completes and the line matches the database item by item."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from pathlib import Path

import pytest

from edge.store.database import Store
from simulators.line import LineSimSettings
from tests.line.harness import complete_and_close, printed, rig
from tests.mounts import tmpfs

pytestmark = pytest.mark.timeout(300)

HELD, EXECUTE = 11, 6


def fill(folder: Path, leave_kb: int) -> Path:
    """A file taking all the free space of ``folder``'s filesystem but ``leave_kb``."""
    import errno
    import os

    space = os.statvfs(folder)
    filler = folder / "filler"
    with filler.open("wb") as out:
        out.truncate(0)
        left = space.f_bavail * space.f_frsize - leave_kb * 1024
        chunk = b"\0" * (1 << 20)
        try:
            while left > 0:
                left -= out.write(chunk[:left])
            out.flush()
            os.fsync(out.fileno())
        except OSError as exc:  # the running controller took some of what was left: full
            if exc.errno != errno.ENOSPC:
                raise
    return filler


async def until_held_by_the_database(r: object, cause: str) -> None:
    plc = r.plc  # type: ignore[attr-defined]
    for _ in range(600):
        if plc.state == HELD and cause in plc.alarm:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not held for the database: state {plc.state}, alarm {plc.alarm!r}")


@pytest.mark.parametrize("failure", ["disk_full", "folder_renamed"])
async def test_a_storage_failure_holds_the_line_and_unhold_after_the_fix_loses_nothing(
        tmp_path: Path, failure: str) -> None:
    planned = 3 * 10 * 24
    settings = LineSimSettings(seed=4, rate=150, transit_ms=600, noread_rate=0.01)
    with contextlib.ExitStack() as stack:
        disk = stack.enter_context(tmpfs(tmp_path / "disk", 24)) \
            if failure != "folder_renamed" else tmp_path / "disk"
        data = disk / "data"
        data.mkdir(parents=True)
        async with rig(tmp_path, settings, planned, item_pool=2000, db_dir=data) as r:
            await r.plc.run_batch("LOT1")
            await r.plc.wait_state(EXECUTE, within=60)
            await printed(r, 150)
            if failure == "disk_full":
                filler = fill(disk, 64)
                cause = "the disk is full"
            else:
                moved = data.rename(tmp_path / "moved")
                cause = "removed or replaced"
            await until_held_by_the_database(r, cause)
            assert r.daemon is not None and r.daemon.poll() is None  # still running

            await r.plc.call("Unhold")  # answered on acceptance; refused in Unholding
            await until_held_by_the_database(r, "still not writable")

            if failure == "disk_full":
                filler.unlink()
            else:
                moved.rename(data)
            await r.plc.call("Unhold")
            _, closed = await complete_and_close(r)
            assert closed.contained, closed.containment
            assert closed.levels["item"].packed == sum(len(c.items) for c in r.sim.cases)


def test_a_read_only_database_is_a_storage_failure_that_changes_nothing(
        tmp_path: Path) -> None:
    """A filesystem remounted read-only under open files is refused by the kernel ("busy"),
    so the read-only case is made by SQLite itself: its writes fail as on a read-only
    mount (SQLITE_READONLY), and the store names it and keeps nothing of the attempt."""
    from edge.store.database import StorageFailure

    with Store(tmp_path / "codeline.db", create=True) as store:
        store.conn.execute("PRAGMA query_only = 1")
        with pytest.raises(StorageFailure, match="read-only"), store.transaction() as conn:
            conn.execute("INSERT INTO events (at, kind) VALUES (1, 'x')")
        assert not store.conn.in_transaction
        store.conn.execute("PRAGMA query_only = 0")
        assert store.read().execute("SELECT count(*) FROM events").fetchone()[0] == 0
        assert store.storage_problem() is None


def test_a_controller_started_on_a_full_disk_says_so_in_one_line(tmp_path: Path) -> None:
    import sys

    from edge.cli.line_harness import stock_line
    from tests.line.harness import site_config

    with tmpfs(tmp_path / "disk", 8) as disk:
        config, config_path = site_config(tmp_path, db_dir=disk)
        stock_line(config, Path(config.store.path), {"item": 500, "case": 50, "pallet": 5},
                   "LOT1", 100, "test")
        fill(disk, 4)
        run = subprocess.run([sys.executable, "-m", "edge.cli.main", "--config",
                              str(config_path), "run"], capture_output=True, text=True,
                             timeout=60)
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(f"error: database {config.store.path} cannot be written")
    assert "KB free on its filesystem" in lines[0]
