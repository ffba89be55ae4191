"""An operator commands a running line from the terminal: the real ``codeline line`` command
against a real ``codeline run`` process and its simulated line, over the control socket."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edge.daemon.control import control_path
from simulators.line import LineSimSettings
from tests.line.harness import Rig, rig

pytestmark = pytest.mark.timeout(240)

IDLE, EXECUTE = 4, 6


async def codeline(r: Rig, *args: str, operator: str = "alice"
                   ) -> subprocess.CompletedProcess[str]:
    """The operator's command, as its own process."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "edge.cli.main", "--config", str(r.config_path),
         "--operator", operator, *args],
        capture_output=True, text=True, timeout=120)


async def until_listening(r: Rig) -> None:
    async with asyncio.timeout(60):
        while not control_path(r.db_path).exists():
            assert r.daemon is not None and r.daemon.poll() is None, "controller exited"
            await asyncio.sleep(0.1)


async def test_an_operator_runs_a_batch_from_the_terminal_and_each_command_is_audited(
        tmp_path: Path) -> None:
    async with rig(tmp_path, LineSimSettings(seed=3, rate=60, transit_ms=300), 5000) as r:
        await until_listening(r)
        line = r.config.lines[0].id

        started = await codeline(r, "batch", "start", "1")
        assert started.returncode == 0, started.stderr
        assert f"line {line} is Stopped" in started.stdout
        assert f"`codeline line reset {line}`, then `codeline line start {line}`" in \
            started.stdout

        early = await codeline(r, "line", "start")
        assert early.returncode == 1
        assert early.stderr.startswith("error: ") and "Traceback" not in early.stderr
        assert "Start is not accepted in state Stopped" in early.stderr
        assert "next: codeline line reset" in early.stderr

        for command, state in (("reset", "Idle"), ("start", "Execute"), ("hold", "Held"),
                               ("unhold", "Execute")):
            done = await codeline(r, "line", command, line)
            assert done.returncode == 0, done.stderr
            assert f"line {line}: {command} accepted, the line is {state}" in done.stdout
        await r.plc.wait_state(EXECUTE, within=10)
        judged = len(r.sim.accepted)
        await asyncio.sleep(1.5)
        assert len(r.sim.accepted) > judged  # the line prints again after the unhold

        stopped = await codeline(r, "line", "stop", "--json")
        answer = json.loads(stopped.stdout)
        assert answer["ok"] and answer["state"] == "Stopped"
        assert "reset" in answer["allowed"] and "start" not in answer["allowed"]

        entries = json.loads((await codeline(r, "audit", "list", "--json")).stdout)
        commands = [e for e in entries if e["action"].startswith("line.")]
        assert [e["action"] for e in commands] == [
            "line.reset", "line.start", "line.hold", "line.unhold", "line.stop"]
        assert {e["operator"] for e in commands} == {"alice"}
        assert {e["detail"]["uid"] for e in commands} == {os.getuid()}
        assert {e["target"] for e in commands} == {f"line:{line}"}


async def test_a_line_commanded_by_its_plc_alone_refuses_the_terminal(tmp_path: Path) -> None:
    async with rig(tmp_path, LineSimSettings(seed=3, rate=60), 100) as r:
        await until_listening(r)
        await r.stop_daemon()
        data = yaml.safe_load(r.config_path.read_text())
        data["lines"][0]["terminal_control"] = False
        r.config_path.write_text(yaml.safe_dump(data))
        r.start_daemon()
        await until_listening(r)
        refused = await codeline(r, "line", "reset")
        assert refused.returncode == 1
        assert "takes commands from its PLC only (terminal_control: false" in refused.stderr
        state = json.loads((await codeline(r, "line", "reset", "--json")).stdout)
        assert state["state"] == "Stopped" and not state["ok"]
        entries = json.loads((await codeline(r, "audit", "list", "--json")).stdout)
        assert not [e for e in entries if e["action"].startswith("line.")]
        await r.plc.call("Reset")  # the PLC still commands it
        assert await r.plc.wait_state(IDLE, within=30) == IDLE


async def test_the_terminal_is_told_when_no_controller_runs(tmp_path: Path) -> None:
    async with rig(tmp_path, LineSimSettings(seed=3, rate=60), 100) as r:
        await until_listening(r)
        await r.stop_daemon()
        assert not control_path(r.db_path).exists()
        missing = await codeline(r, "line", "start")
        assert missing.returncode == 1
        assert "no controller is running on" in missing.stderr
        assert "codeline run" in missing.stderr
        started = await codeline(r, "batch", "start", "1")
        assert "no controller runs on this database" in started.stdout
