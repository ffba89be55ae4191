"""Shared fixtures: a small site config, a fresh database file, a running batch; and the
rule that no test leaves a task running behind it."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from edge.domain import aggregation, batches, flow, pool
from edge.store.database import Store
from line_config.loading import parse_config
from line_config.models import Line, SiteConfig
from sync.serving import serve

SMALL_SITE = """
site: {id: test-site, gln: "6901234000009", timezone: Asia/Shanghai}
products:
  - id: p1
    name: Test product
    gtin_item: "06901234567892"
    gtin_case: "16901234567899"
lines:
  - id: L1
    codes:
      item: {symbology: qr, url_base: "https://c.example.com/q/"}
      case: {symbology: datamatrix}
      pallet: {symbology: sscc, extension_digit: 3, company_prefix: "6901234"}
    packaging: {items_per_case: 4, cases_per_pallet: 2}
"""


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist each worker chooses loopback ports from its own slice, so two
    tests running at once never pick the same one (sync.serving.free_port)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and worker[2:].isdigit():
        n = int(worker[2:])
        os.environ["CODELINE_PORT_RANGE"] = f"{10_000 + n * 5_000}-{14_999 + n * 5_000}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every coroutine test is checked for leaked tasks (a sync test has no loop to leak
    into)."""
    for item in items:
        if isinstance(item, pytest.Function) and inspect.iscoroutinefunction(item.obj):
            item.fixturenames.insert(0, "no_leaked_tasks")


@pytest.fixture
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fails a test that leaves a task running (a driver's reader, a server's session):
    in production that is a connection or a loop nobody stops."""
    before = set(asyncio.all_tasks())
    yield
    leaked: list[asyncio.Task[object]] = []
    for _ in range(50):  # tasks being cancelled (a server's sessions) get a moment to end
        await asyncio.sleep(0.01)
        leaked = [t for t in asyncio.all_tasks() - before
                  if t is not asyncio.current_task() and not t.done()]
        if not leaked:
            break
    for task in leaked:
        task.cancel()
    assert not leaked, f"tasks left running: {[t.get_name() for t in leaked]}"


@pytest.fixture(scope="session")
def site() -> SiteConfig:
    return parse_config(SMALL_SITE)


@pytest.fixture(scope="session")
def line(site: SiteConfig) -> Line:
    return site.lines[0]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "codeline.db", create=True) as s:
        yield s


def fingerprint(store: Store) -> str:
    """A digest of every row of every table: equal before and after means nothing changed."""
    digest = hashlib.sha256()
    conn = store.read()
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY name")]
    for table in tables:
        digest.update(table.encode())
        for row in conn.execute(f"SELECT * FROM {table}"):
            digest.update(repr(row).encode())
    return digest.hexdigest()


def running_batch(store: Store, site: SiteConfig, items: int = 100) -> int:
    """A pool for every level and a started batch on line L1; returns the batch id."""
    line = site.lines[0]
    pool.generate(store, line, "item", items, operator="test")
    pool.generate(store, line, "case", max(4, items // 4), operator="test")
    pool.generate(store, line, "pallet", max(2, items // 8), operator="test")
    batch = batches.create(store, site, "L1", "p1", "LOT1", operator="test")
    batches.start(store, batch.id, operator="test")
    return batch.id


def commissioned(store: Store, batch_id: int, level: str, count: int) -> list[str]:
    """Reserve, print and verify ``count`` codes of ``level``; their serials."""
    block = flow.reserve(store, batch_id, "st", level, count)  # type: ignore[arg-type]
    ids = [c.id for c in block.codes]
    flow.mark_printed(store, batch_id, level, ids)  # type: ignore[arg-type]
    flow.record_verdicts(store, batch_id, level, [flow.Verdict(i) for i in ids])  # type: ignore[arg-type]
    return [c.serial for c in block.codes]


def packed_pallet(store: Store, batch_id: int, items: list[str], per_case: int = 4,
                  cases_on_pallet: int = 2) -> tuple[list[str], str]:
    """Closed cases (two of four ``items`` each, by default) on one closed pallet:
    (cases, pallet)."""
    cases = commissioned(store, batch_id, "case", cases_on_pallet)
    pallet = commissioned(store, batch_id, "pallet", 1)[0]
    for k, case in enumerate(cases):
        aggregation.pack(store, case, items[k * per_case:(k + 1) * per_case], operator="t",
                         close=True)
    aggregation.pack(store, pallet, cases, operator="t", close=True)
    return cases, pallet


@contextlib.asynccontextmanager
async def serving(app: object) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port; yields its base URL."""
    async with serve(app) as base:
        yield base
