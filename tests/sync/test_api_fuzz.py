"""Schemathesis against the pull API's own /openapi.json, on a real server: no 5xx, ever."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings

from edge.store.database import Store, now_ms
from line_config.loading import parse_config
from sync import keys, tokens
from sync.api import create_app
from tests.conftest import SMALL_SITE
from tests.sync.test_manifest import shipped_pallet


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The API over a database with a shipped pallet, served by uvicorn in a thread."""
    site = parse_config(SMALL_SITE)
    workdir: Path = tmp_path_factory.mktemp("fuzz")
    store = Store(workdir / "api.db", create=True)
    shipped_pallet(store, site)
    keys.generate(workdir / "k.pem")
    with store.transaction() as conn:
        token = tokens.create(conn, "fuzz", ["manifests:read", "manifests:ack", "codes:read"],
                              now_ms())
    store.close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(
        create_app(workdir / "api.db", site, keys.load_private(workdir / "k.pem")),
        host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}", token
    server.should_exit = True
    thread.join(timeout=10)


def test_no_input_makes_the_api_fail(live_api: tuple[str, str]) -> None:
    """Every operation of /openapi.json, 40 generated requests each, with and without a
    token: always a JSON answer below 500."""
    base, token = live_api
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 6
    calls = 0
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def probe(case: Any) -> None:
            nonlocal calls
            for headers in ({"Authorization": f"Bearer {token}"}, {}):
                calls += 1
                response = case.call(base_url=base, headers=headers)
                assert response.status_code < 500, (case.path, response.text[:200])
                if response.status_code >= 400:
                    assert {"code", "message"} <= set(response.json())

        probe()
    assert calls >= 2 * len(operations) * 10, calls
