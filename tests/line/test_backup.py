"""``codeline backup`` while a real line runs, and the read commands on an archive that sits on
read-only media (a real tmpfs remounted read-only)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from edge.domain.lifecycle import State
from simulators.line import LineSimSettings
from tests.line.harness import Rig, complete_and_close, printed, rig
from tests.mounts import remount_read_only, tmpfs

pytestmark = pytest.mark.timeout(300)


def codeline(*args: str, db: Path, config: Path | None = None
             ) -> subprocess.CompletedProcess[str]:
    extra = ["--config", str(config)] if config else []
    return subprocess.run([sys.executable, "-m", "edge.cli.main", "--db", str(db), *extra,
                           "--operator", "alice", *args],
                          capture_output=True, text=True, timeout=120)


def states(db: Path) -> dict[State, int]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return {State(s): n for s, n in
                conn.execute("SELECT state, count(*) FROM codes GROUP BY state")}


async def backup_now(r: Rig, dest: Path) -> dict[str, object]:
    made = await asyncio.to_thread(codeline, "backup", str(dest), "--json", db=r.db_path)
    assert made.returncode == 0, made.stderr
    return dict(json.loads(made.stdout))


async def test_backups_taken_while_the_line_runs_are_whole_and_verified(
        tmp_path: Path) -> None:
    dest = tmp_path / "backups"
    dest.mkdir()
    async with rig(tmp_path, LineSimSettings(seed=8, rate=120, transit_ms=300), 480) as r:
        await r.plc.run_batch("LOT1")
        await printed(r, 120)
        first = await backup_now(r, dest / "during-1.db")
        await printed(r, 300)
        second = await backup_now(r, dest / "during-2.db")
        await complete_and_close(r)
        final = await backup_now(r, dest)  # a folder: a file named by the time
    for made in (first, second, final):
        copy = Path(str(made["path"]))
        assert made["integrity_check"] == "ok" and int(str(made["audit_entries"])) > 0
        assert not copy.with_name(copy.name + "-wal").exists()  # self-contained
        with sqlite3.connect(copy) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    during = [states(Path(str(m["path"]))).get(State.COMMISSIONED, 0) for m in (first, second)]
    assert 0 < during[0] < during[1]  # each a snapshot of the line at its moment
    assert states(Path(str(final["path"]))) == states(r.db_path)
    again = codeline("backup", str(final["path"]), db=r.db_path)
    assert again.returncode == 1 and "never overwrites" in again.stderr


def test_read_commands_work_on_an_archive_on_read_only_media(tmp_path: Path) -> None:
    live = tmp_path / "live.db"
    config = tmp_path / "site.yaml"
    from tests.conftest import SMALL_SITE

    config.write_text(SMALL_SITE)
    for args in (("init",), ("pool", "generate", "--level", "item", "--count", "50"),
                 ("batch", "create", "--product", "p1", "--lot", "L1")):
        assert codeline(*args, db=live, config=config).returncode == 0
    with tmpfs(tmp_path / "media", 16) as media:
        made = codeline("backup", str(media / "archive.db"), db=live)
        assert made.returncode == 0, made.stderr
        remount_read_only(media)
        archive = media / "archive.db"
        before = sorted(p.name for p in media.iterdir())
        verified = codeline("audit", "verify", "--json", db=archive)
        assert verified.returncode == 0, verified.stderr
        assert json.loads(verified.stdout)["ok"] is True
        listed = codeline("batch", "list", "--json", db=archive)
        assert json.loads(listed.stdout)[0]["lot"] == "L1"
        stats = codeline("pool", "stats", "--json", db=archive, config=config)
        assert stats.returncode == 0, stats.stderr
        refused = codeline("batch", "create", "--product", "p1", "--lot", "L2", db=archive,
                           config=config)
        assert refused.returncode == 1 and "read-only" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert sorted(p.name for p in media.iterdir()) == before  # nothing created there
