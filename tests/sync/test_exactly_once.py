"""Exactly once in effect: a cloud that is down, answers 500s, and an edge killed mid-push
or mid-pull; at the end the cloud's registry equals the edge's activated set and every
manifest was applied once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from edge.domain import batches, shipments
from edge.domain.lifecycle import State
from edge.store.database import Store, now_ms
from line_config.loading import parse_config
from line_config.models import SiteConfig
from simulators.cloud import Cloud, create_app
from sync import keys, push, tokens
from sync.serving import free_port
from tests.conftest import SMALL_SITE, commissioned, packed_pallet, running_batch


def site_config() -> SiteConfig:
    return parse_config(SMALL_SITE)

ROOT = Path(__file__).resolve().parents[2]


def kill(process: asyncio.subprocess.Process) -> None:
    """SIGKILL, whatever the process is doing (it may already be gone)."""
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGKILL)


def ship_pallets(store: Store, site: SiteConfig, shipments_wanted: int) -> None:
    """``shipments_wanted`` confirmed shipments of one pallet; the second one cancelled."""
    batch = running_batch(store, site, items=12 * shipments_wanted)
    for n in range(shipments_wanted):
        items = commissioned(store, batch, "item", 8)
        _, pallet = packed_pallet(store, batch, items)
        s = shipments.create(store, f"D-{n}", "east" if n % 2 else "north", operator="t")
        shipments.add(store, s.id, pallet, operator="t", allow_mixed_batches=False)
        shipments.confirm(store, s.id, operator="t")
        if n == 1:
            shipments.cancel(store, s.id, operator="t", reason="customer called")


class CloudServer:
    """The cloud simulator on a real loopback port that can go down and come back."""

    def __init__(self, cloud: Cloud, port: int, fail_pushes: int) -> None:
        self.app = create_app(cloud, fail_pushes=fail_pushes)
        self.port = port
        self.server: uvicorn.Server | None = None
        self.task: asyncio.Task[None] | None = None

    async def up(self) -> None:
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="off"))
        self.task = asyncio.create_task(self.server.serve())
        for _ in range(500):
            if self.server.started:
                return
            await asyncio.sleep(0.01)

    async def down(self) -> None:
        if self.server is not None and self.task is not None:
            self.server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.server = self.task = None


def check_exactly_once(store: Store, cloud: Cloud) -> None:
    conn = store.read()
    edge_active = {r[0] for r in conn.execute("SELECT serial FROM codes WHERE state = ?",
                                              (int(State.ACTIVE),))}
    cloud_active = {s for s, active in cloud.registry().items() if active}
    assert cloud_active == edge_active
    outbox = [r[0] for r in conn.execute("SELECT manifest_id FROM outbox ORDER BY seq")]
    with sqlite_connect(cloud) as cdb:
        applied = [r[0] for r in cdb.execute("SELECT manifest_id FROM applied ORDER BY seq")]
    assert applied == outbox, "every manifest applied exactly once, in order"
    assert conn.execute("SELECT count(*) FROM outbox WHERE acked_at IS NULL").fetchone()[0] == 0


@contextlib.contextmanager
def sqlite_connect(cloud: Cloud):  # type: ignore[no-untyped-def]
    import sqlite3

    conn = sqlite3.connect(cloud.db_path)
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
async def setting(tmp_path: Path, site: SiteConfig) -> AsyncIterator[tuple[Store, Cloud, Path]]:
    store = Store(tmp_path / "edge.db", create=True)
    ship_pallets(store, site, 5)
    key = tmp_path / "keys" / "site.pem"
    keys.generate(key)
    cloud = Cloud(tmp_path / "cloud.db", keys.load_private(key).public_key())
    cloud.issue([r[0] for r in store.read().execute("SELECT serial FROM codes")])
    yield store, cloud, key
    store.close()


async def test_push_survives_a_cloud_that_is_down_then_fails(setting) -> None:  # type: ignore[no-untyped-def]
    store, cloud, key = setting
    port = free_port()
    url = f"http://127.0.0.1:{port}/ingest/manifests"
    signing = keys.load_private(key)
    async with httpx.AsyncClient(timeout=5) as client:
        down = await push.push_round(store.path, "site-1", signing, url, "t", client)
        assert down.delivered == 0 and down.failed and "Connect" in down.failed
        state = push.status(store.read())
        assert state.pending == 6 and state.last_error
        server = CloudServer(cloud, port, fail_pushes=3)
        await server.up()
        try:
            rounds = 0
            while push.status(store.read()).pending and rounds < 20:
                await push.push_round(store.path, "site-1", signing, url, "t", client)
                rounds += 1
        finally:
            await server.down()
    assert rounds == 4, "three rounds refused with 500, the fourth delivers everything"
    check_exactly_once(store, cloud)


async def test_the_push_worker_retries_with_backoff_until_all_is_delivered(setting) -> None:  # type: ignore[no-untyped-def]
    store, cloud, key = setting
    port = free_port()
    server = CloudServer(cloud, port, fail_pushes=3)
    await server.up()
    worker = asyncio.create_task(push.push_forever(
        store.path, "site-1", keys.load_private(key), f"http://127.0.0.1:{port}/ingest/manifests",
        "t", retry_min_s=0.02, retry_max_s=0.1, idle_s=0.02))
    try:
        for _ in range(500):
            if push.status(store.read()).pending == 0:
                break
            await asyncio.sleep(0.02)
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
        await server.down()
    assert push.status(store.read()).pending == 0
    check_exactly_once(store, cloud)


def push_config(tmp_path: Path, port: int, key: Path, more: str = "") -> Path:
    """The small site pushing to the cloud simulator on ``port`` with the token in
    ``$CLOUD_TOKEN``."""
    config = tmp_path / "site.yaml"
    config.write_text(SMALL_SITE + f"""
sync:
  push_url: "http://127.0.0.1:{port}/ingest/manifests"
  push_token_env: CLOUD_TOKEN
  signing_key_file: "{key}"
""" + more)
    return config


async def test_sigkill_during_push_and_during_pull_ack(setting, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store, cloud, key = setting
    port = free_port()
    config = push_config(tmp_path, port, key)
    env = {**os.environ, "CLOUD_TOKEN": "t", "PYTHONPATH": str(ROOT)}
    base = [sys.executable, "-m", "edge.cli.main", "--db", str(store.path), "--config",
            str(config)]
    server = CloudServer(cloud, port, fail_pushes=2)
    await server.up()
    rng = random.Random(5)
    try:
        for _ in range(6):  # pushes killed at random instants while they deliver
            seen = cloud.stats.applied + cloud.stats.duplicates
            child = await asyncio.create_subprocess_exec(
                *base, "sync", "push", env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
            for _ in range(400):  # wait until this process has delivered something
                if cloud.stats.applied + cloud.stats.duplicates > seen or \
                        child.returncode is not None:
                    break
                await asyncio.sleep(0.025)
            await asyncio.sleep(rng.uniform(0.0, 0.05))
            kill(child)
            await child.wait()
        # More shipments after the pushes: the pull below has work whatever they delivered.
        batches.stop(store, 1, operator="t")
        ship_pallets(store, site_config(), 2)
        cloud.issue([r[0] for r in store.read().execute("SELECT serial FROM codes")])
        # Pull and ack for the rest, with the edge API killed while the cloud pulls.
        with store.transaction() as conn:
            token = tokens.create(conn, "cloud", ["manifests:read", "manifests:ack"], now_ms())
        api_port = free_port()
        for attempt in range(8):
            api = await asyncio.create_subprocess_exec(
                *base, "api", "serve", "--port", str(api_port), env=env, cwd=ROOT,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}",
                                             headers={"Authorization": f"Bearer {token}"},
                                             timeout=5) as client:
                    for _ in range(200):
                        with contextlib.suppress(httpx.HTTPError):
                            if (await client.get("/healthz")).status_code == 200:
                                break
                        await asyncio.sleep(0.05)
                    if attempt < 3:
                        killer = asyncio.get_running_loop().call_later(
                            rng.uniform(0.01, 0.2), kill, api)
                    with contextlib.suppress(httpx.HTTPError):
                        await cloud.pull_once(client)
                    if attempt < 3:
                        killer.cancel()
            finally:
                kill(api)
                await api.wait()
            if push.status(store.read()).pending == 0:
                break
    finally:
        await server.down()
    check_exactly_once(store, cloud)
    with sqlite_connect(cloud) as cdb:
        via = dict(cdb.execute("SELECT via, count(*) FROM applied GROUP BY via").fetchall())
    assert via.get("push", 0) >= 1 and via.get("pull", 0) >= 1, via


async def test_push_follow_reports_each_delivery_and_each_failure(  # type: ignore[no-untyped-def]
        setting, tmp_path: Path) -> None:
    store, cloud, key = setting
    port = free_port()
    config = push_config(tmp_path, port, key, "  retry_min_ms: 100\n  retry_max_ms: 200\n")
    pending = store.read().execute("SELECT count(*) FROM outbox WHERE acked_at IS NULL")\
        .fetchone()[0]
    server = CloudServer(cloud, port, fail_pushes=1)
    await server.up()
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edge.cli.main", "--db", str(store.path), "--config", str(config),
        "sync", "push", "--follow", env={**os.environ, "CLOUD_TOKEN": "t"}, cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert child.stderr is not None
    lines: list[dict[str, object]] = []
    try:
        async with asyncio.timeout(15):
            while sum(1 for x in lines if " delivered: " in str(x.get("msg"))) < pending:
                lines.append(json.loads(await child.stderr.readline()))
    finally:
        child.send_signal(signal.SIGINT)
        await child.wait()
        await server.down()
    messages = [str(x["msg"]) for x in lines]
    assert any("failed: HTTP 5" in m for m in messages)  # the failure, reported
    delivered = [m for m in messages if re.match(r"manifest \d+ delivered: (de)?activation, "
                                                 r"\d+ codes of shipment \d+$", m)]
    assert len(delivered) == pending and child.returncode == 0
