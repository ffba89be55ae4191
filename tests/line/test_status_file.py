"""The files beside the database: the status file a running controller keeps, written without
following a planted symlink and never able to end the controller when it cannot be written;
the database itself, readable by its owner and group only."""

from __future__ import annotations

import asyncio
import json
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from asyncua.client.client import Client

from edge.daemon.site import status_path
from edge.store.database import Store
from tests.line.harness import lone_controller

pytestmark = pytest.mark.timeout(120)
RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


async def test_a_symlink_planted_beside_the_database_is_replaced_never_followed(
        tmp_path: Path) -> None:
    victim = tmp_path / "victim.conf"
    victim.write_text("precious\n")
    async with lone_controller(tmp_path, {"security": ["none"]}) as c:
        status = status_path(c.db_path)
        for name in (status.with_suffix(".tmp"), status):  # the old temp name, the file
            name.unlink(missing_ok=True)
            name.symlink_to(victim)
        await asyncio.sleep(1.5)
        assert victim.read_text() == "precious\n"
        assert not status.is_symlink()
        assert json.loads(status.read_text())["lines"][0]["line"] == c.config.lines[0].id
        assert stat.S_IMODE(status.stat().st_mode) == 0o640


async def test_status_json_writes_its_times_as_rfc3339_utc(tmp_path: Path) -> None:
    async with lone_controller(tmp_path, {"security": ["none"]}) as c:
        await asyncio.sleep(1.0)
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "edge.cli.main", "--config",
                             str(c.config_path), "status", "--json"],
            capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    snapshot = json.loads(done.stdout)
    times = [snapshot["at"], snapshot["started_at"],
             *(a["at"] for line in snapshot["lines"] for a in line["alarms"])]
    assert all(RFC3339_UTC.fullmatch(t) for t in times), times


async def test_a_status_file_that_cannot_be_written_leaves_the_controller_running(
        tmp_path: Path) -> None:
    async with lone_controller(tmp_path, {"security": ["none"]}) as c:
        status = status_path(c.db_path)
        status.unlink(missing_ok=True)
        status.mkdir()  # os.replace onto a directory fails every time
        await asyncio.sleep(2.0)
        assert c.process.poll() is None
        async with Client(c.endpoint, timeout=4) as client:  # the PLC is still served
            assert await client.get_namespace_array()
        assert c.log().count("status not written") == 1  # once per cause, not every 0.5 s
        status.rmdir()
        await asyncio.sleep(1.0)
        assert json.loads(status.read_text())["pid"] == c.process.pid


def test_a_new_database_and_its_journal_are_not_world_readable(tmp_path: Path) -> None:
    with Store(tmp_path / "site.db", create=True) as store:
        store.conn.execute("CREATE TABLE t (x)")  # the WAL exists while a connection is open
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes["site.db"] == 0o640
    assert all(mode & 0o007 == 0 for mode in modes.values()), modes
