"""One process per site: ``codeline run`` alone serves the lines, the pull API and the push
worker; a sync part that fails (the cloud unreachable) never stops a line."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from simulators.line import LineSimSettings
from sync.serving import free_port
from tests.line.harness import rig, run_batch_to_close

pytestmark = pytest.mark.timeout(240)


async def test_codeline_run_alone_serves_the_lines_the_pull_api_and_the_push_worker(
        tmp_path: Path) -> None:
    unreachable = free_port()  # nothing listens there: every push fails
    async with rig(tmp_path, LineSimSettings(seed=11, rate=60, transit_ms=300), 48,
                   env={"CODELINE_PUSH_TOKEN": "t0ken"},
                   sync_in_run=("api", "push", "metrics")) as r:
        def codeline(*args: str) -> str:
            done = subprocess.run([sys.executable, "-m", "edge.cli.main", "--config",
                                   str(r.config_path), *args], capture_output=True, text=True,
                                  timeout=60, env={**os.environ, "CODELINE_OPERATOR": "t"})
            assert done.returncode == 0, done.stderr
            return done.stdout

        codeline("keys", "generate")
        token = codeline("tokens", "create", "--name", "cloud", "--scope",
                         "manifests:read").splitlines()[-1].strip()
        await r.plc.wait_state(2, within=60)
        await run_batch_to_close(r)  # started before the key existed, the API part waited
        pallet = sqlite3.connect(r.db_path).execute(
            "SELECT serial FROM codes WHERE level = 2 AND parent_id IS NULL "
            "AND state = 3").fetchone()[0]
        codeline("ship", "create", "--to", "D1", "--region", "east")
        codeline("ship", "add", "1", pallet)
        codeline("ship", "confirm", "1")  # a manifest waits for the cloud
        data = yaml.safe_load(r.config_path.read_text())
        data["sync"].update({"push_url": f"http://127.0.0.1:{unreachable}/manifests",
                             "push_token_env": "CODELINE_PUSH_TOKEN"})
        r.config_path.write_text(yaml.safe_dump(data))
        r.start_daemon()
        api = f"http://127.0.0.1:{r.config.sync.api.port}"
        async with httpx.AsyncClient(timeout=5) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if (await client.get(f"{api}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the pull API never answered"
                await asyncio.sleep(0.2)
            listed = (await client.get(f"{api}/api/v2/manifests",
                                       headers={"Authorization": f"Bearer {token}"})).json()
            assert [m["shipment"] for m in listed["manifests"]] == [1]
            scraped = (await client.get(f"{api}/metrics")).text  # on the API's server
            assert f'codeline_outbox_pending_manifests{{site="{r.config.site.id}"}} 1.0' \
                in scraped.splitlines()
        deadline = time.monotonic() + 30
        while True:  # the push worker in the controller tries, and fails
            row = sqlite3.connect(r.db_path).execute(
                "SELECT attempts, last_error FROM outbox").fetchone()
            if row[0] >= 2:
                break
            assert time.monotonic() < deadline, "the push worker never tried twice"
            await asyncio.sleep(0.2)
        assert "ConnectError" in row[1]
        # the line is unaffected: it takes its commands and reaches Idle
        await r.plc.wait_state(2, within=60)
        await asyncio.to_thread(codeline, "line", "reset")  # the simulators run on this loop
        await r.plc.wait_state(4, within=30)
        assert r.daemon is not None and r.daemon.poll() is None
        status = json.loads(codeline("status", "--json"))
        assert status["lines"][0]["state_name"] == "Idle"
