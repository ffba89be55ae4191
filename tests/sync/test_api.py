"""The pull API over a real HTTP server on loopback: auth, manifests, acks, codes, EPCIS."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from edge.store.database import Store, now_ms
from line_config.models import SiteConfig
from sync import keys, manifest, tokens
from sync.api import create_app
from sync.serving import free_port, serve
from tests.conftest import SMALL_SITE
from tests.sync.test_manifest import shipped_pallet


@pytest.fixture
async def api(tmp_path: Path, site: SiteConfig) -> AsyncIterator[tuple[str, dict[str, str], Store]]:
    store = Store(tmp_path / "api.db", create=True)
    shipped_pallet(store, site)
    keys.generate(tmp_path / "k.pem")
    secrets: dict[str, str] = {}
    with store.transaction() as conn:
        for name, scopes in {"reader": ["manifests:read"], "acker": ["manifests:ack"],
                             "codes": ["codes:read"],
                             "cloud": ["manifests:read", "manifests:ack", "codes:read"],
                             "revoked": ["manifests:read"]}.items():
            secrets[name] = tokens.create(conn, name, scopes, now_ms())
        tokens.revoke(conn, 5, now_ms())
    app = create_app(store.path, site, keys.load_private(tmp_path / "k.pem"))
    try:
        async with serve(app) as base:
            yield base, secrets, store
    finally:
        store.close()


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


ROUTES = [
    ("GET", "/api/v1/manifests", "manifests:read"),
    ("GET", "/api/v1/manifests/1", "manifests:read"),
    ("POST", "/api/v1/manifests/1/ack", "manifests:ack"),
    ("GET", "/api/v1/batches/1/manifest", "manifests:read"),
    ("GET", "/api/v1/batches/1/epcis", "manifests:read"),
    ("GET", "/api/v1/codes/X", "codes:read"),
]


async def test_every_route_refuses_missing_wrong_and_underscoped_tokens(api) -> None:  # type: ignore[no-untyped-def]
    base, secrets, _ = api
    async with httpx.AsyncClient(base_url=base) as client:
        for method, path, scope in ROUTES:
            for headers in ({}, bearer("cl_wrong"), {"Authorization": "Basic abc"},
                            bearer(secrets["revoked"])):
                r = await client.request(method, path, headers=headers)
                assert r.status_code == 401, (path, headers, r.text)
                assert r.json()["code"] == "unauthorized"
            other = next(n for n, s in (("acker", "manifests:ack"), ("reader", "manifests:read"),
                                        ("codes", "codes:read")) if s != scope)
            r = await client.request(method, path, headers=bearer(secrets[other]))
            assert r.status_code == 403 and r.json()["code"] == "forbidden", (path, other)
        assert (await client.get("/healthz")).json()["status"] == "ok"


async def test_manifests_by_cursor_signed_and_acknowledged(api) -> None:  # type: ignore[no-untyped-def]
    base, secrets, store = api
    public = keys.public_pem(keys.load_private(store.path.parent / "k.pem"))
    async with httpx.AsyncClient(base_url=base, headers=bearer(secrets["cloud"])) as client:
        page = (await client.get("/api/v1/manifests", params={"after": 0})).json()
        assert [m["seq"] for m in page["manifests"]] == [1] and page["next_after"] == 1
        first = page["manifests"][0]
        assert first["digest"] and first["signature"] and first["acked_at"] is None
        assert (await client.get("/api/v1/manifests", params={"after": 1})).json()[
            "manifests"] == []
        r = await client.get(f"/api/v1/manifests/{first['id']}",
                             headers={"Accept": "application/x-ndjson"})
        assert r.headers["content-type"].startswith("application/x-ndjson")
        manifest.verify(iter([r.content]), r.headers["x-manifest-digest"],
                        r.headers["x-manifest-signature"], keys.load_public(public))
        doc = (await client.get("/api/v1/manifests/1")).json()
        assert doc["header"]["codes"] == len(doc["codes"]) == 11
        ack = (await client.post(f"/api/v1/manifests/{first['id']}/ack")).json()
        again = (await client.post("/api/v1/manifests/1/ack")).json()
        assert ack == again, "an ack is idempotent"
        code = (await client.get(f"/api/v1/codes/{doc['codes'][0]['serial']}")).json()
        assert code["activated"] is True and code["state"] == "ACTIVE"
        lines = (await client.get("/api/v1/batches/1/manifest")).text.splitlines()
        assert json.loads(lines[0])["batch"] == 1 and len(lines) == 1 + 11
        epcis_doc = (await client.get("/api/v1/batches/1/epcis")).json()
        assert epcis_doc["type"] == "EPCISDocument"


async def test_bad_input_is_a_json_4xx_never_a_500(api) -> None:  # type: ignore[no-untyped-def]
    base, secrets, _ = api
    async with httpx.AsyncClient(base_url=base, headers=bearer(secrets["cloud"])) as client:
        for method, path, params in [
            ("GET", "/api/v1/manifests", {"after": "-1"}),
            ("GET", "/api/v1/manifests", {"limit": "0"}),
            ("GET", "/api/v1/manifests", {"after": "x'; DROP TABLE outbox"}),
            ("GET", "/api/v1/manifests/999", {}),
            ("GET", "/api/v1/manifests/" + "x" * 65, {}),
            ("POST", "/api/v1/manifests/nope/ack", {}),
            ("POST", "/api/v1/manifests/%C2%B2/ack", {}),  # '²': a digit, but not 0-9
            ("GET", "/api/v1/manifests/%C2%B2", {}),
            ("GET", "/api/v1/codes/%F0%9F%8D%B6", {}),
            ("GET", "/api/v1/batches/0/manifest", {}),
            ("GET", "/api/v1/batches/77/epcis", {}),
            ("GET", "/api/v1/nothing", {}),
        ]:
            r = await client.request(method, path, params=params)
            assert 400 <= r.status_code < 500, (path, params, r.status_code)
            assert {"code", "message"} <= set(r.json())


async def test_openapi_document_is_served(api) -> None:  # type: ignore[no-untyped-def]
    base, _, _ = api
    async with httpx.AsyncClient(base_url=base) as client:
        spec = (await client.get("/openapi.json")).json()
    assert "/api/v1/manifests/{ref}/ack" in spec["paths"]


def start_api(config: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """``codeline api serve`` as its own process, its output to ``log_path``."""
    with log_path.open("wb") as log:
        return subprocess.Popen([sys.executable, "-m", "edge.cli.main", "--config",
                                 str(config), "api", "serve"], stdout=log, stderr=log)


async def test_a_token_in_the_url_is_refused_and_never_logged(tmp_path: Path) -> None:
    config = tmp_path / "site.yaml"
    port = free_port()
    config.write_text(SMALL_SITE + f"sync: {{api: {{host: 127.0.0.1, port: {port}}}}}\n")

    def codeline(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "edge.cli.main", "--config", str(config),
                               *args], capture_output=True, text=True, timeout=60)

    assert codeline("init").returncode == 0
    assert codeline("keys", "generate").returncode == 0
    created = codeline("tokens", "create", "--name", "cloud", "--scope", "manifests:read")
    secret = next(w for w in created.stdout.split() if w.startswith("cl_"))
    log_path = tmp_path / "api.log"
    server = start_api(config, log_path)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(300):
                try:
                    await client.get("/api/v1/manifests")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            leaked = await client.get(f"/api/v1/manifests?access_token={secret}")
            assert leaked.status_code == 400 and leaked.json()["code"] == "token_in_url"
            ok = await client.get("/api/v1/manifests", headers=bearer(secret))
            assert ok.status_code == 200
    finally:
        server.terminate()
        server.wait(30)
    logged = log_path.read_text()
    assert secret not in logged
    assert '"msg": "GET /api/v1/manifests 400"' in logged  # the request is logged, bare
    assert all(line.startswith("{") for line in logged.splitlines() if line.strip())
