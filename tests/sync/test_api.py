"""The pull API over a real HTTP server on loopback: auth, manifests, acks, codes, EPCIS."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from openapi_spec_validator import validate

from edge.store.database import Store, now_ms
from line_config.models import SiteConfig
from sync import keys, manifest, tokens
from sync.api import create_app
from sync.serving import free_port, serve
from tests.conftest import SMALL_SITE
from tests.sync.test_manifest import shipped_pallet

RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


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
    ("GET", "/api/v2/manifests", "manifests:read"),
    ("GET", "/api/v2/manifests/1", "manifests:read"),
    ("POST", "/api/v2/manifests/1/ack", "manifests:ack"),
    ("GET", "/api/v2/batches/1/manifest", "manifests:read"),
    ("GET", "/api/v2/batches/1/epcis", "manifests:read"),
    ("GET", "/api/v2/codes/X", "codes:read"),
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
        page = (await client.get("/api/v2/manifests", params={"after": 0})).json()
        assert [m["seq"] for m in page["manifests"]] == [1] and page["next_after"] == 1
        first = page["manifests"][0]
        assert first["digest"] and first["signature"] and first["acked_at"] is None
        assert (await client.get("/api/v2/manifests", params={"after": 1})).json()[
            "manifests"] == []
        r = await client.get(f"/api/v2/manifests/{first['id']}",
                             headers={"Accept": "application/x-ndjson"})
        assert r.headers["content-type"].startswith("application/x-ndjson")
        manifest.verify(iter([r.content]), r.headers["x-manifest-digest"],
                        r.headers["x-manifest-signature"], keys.load_public(public))
        doc = (await client.get("/api/v2/manifests/1")).json()
        assert doc["header"]["codes"] == len(doc["codes"]) == 11
        ack = (await client.post(f"/api/v2/manifests/{first['id']}/ack")).json()
        again = (await client.post("/api/v2/manifests/1/ack")).json()
        assert ack == again, "an ack is idempotent"
        code = (await client.get(f"/api/v2/codes/{doc['codes'][0]['serial']}")).json()
        assert code["activated"] is True and code["state"] == "ACTIVE"
        lines = (await client.get("/api/v2/batches/1/manifest")).text.splitlines()
        assert json.loads(lines[0])["batch"] == 1 and len(lines) == 1 + 11
        epcis_doc = (await client.get("/api/v2/batches/1/epcis")).json()
        assert epcis_doc["type"] == "EPCISDocument"


async def test_bad_input_is_a_json_4xx_never_a_500(api) -> None:  # type: ignore[no-untyped-def]
    base, secrets, _ = api
    async with httpx.AsyncClient(base_url=base, headers=bearer(secrets["cloud"])) as client:
        for method, path, params in [
            ("GET", "/api/v2/manifests", {"after": "-1"}),
            ("GET", "/api/v2/manifests", {"limit": "0"}),
            ("GET", "/api/v2/manifests", {"after": "x'; DROP TABLE outbox"}),
            ("GET", "/api/v2/manifests/999", {}),
            ("GET", "/api/v2/manifests/" + "x" * 65, {}),
            ("POST", "/api/v2/manifests/nope/ack", {}),
            ("POST", "/api/v2/manifests/%C2%B2/ack", {}),  # '²': a digit, but not 0-9
            ("GET", "/api/v2/manifests/%C2%B2", {}),
            ("GET", "/api/v2/manifests/" + "9" * 30, {}),  # beyond SQLite's integers
            ("POST", "/api/v2/manifests/" + "9" * 30 + "/ack", {}),
            ("GET", "/api/v2/codes/%F0%9F%8D%B6", {}),
            ("GET", "/api/v2/batches/0/manifest", {}),
            ("GET", "/api/v2/batches/77/epcis", {}),
            ("GET", "/api/v2/nothing", {}),
        ]:
            r = await client.request(method, path, params=params)
            assert 400 <= r.status_code < 500, (path, params, r.status_code)
            assert {"code", "message"} <= set(r.json())


async def test_the_openapi_document_is_valid_and_declares_every_answer(api) -> None:  # type: ignore[no-untyped-def]
    """GS1-style outside check: the document validates as OpenAPI 3.1 (openapi-spec-validator),
    every operation under /api/v2 needs the bearer scheme, and every 200 declares its body."""
    base, _, _ = api
    async with httpx.AsyncClient(base_url=base) as client:
        spec = (await client.get("/openapi.json")).json()
    validate(spec)
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": ANY_TEXT}
    for path, operations in spec["paths"].items():
        assert path.startswith(("/api/v2/", "/api", "/healthz")), path
        for method, op in operations.items():
            ok = op["responses"]["200"]
            assert ok.get("content"), f"{method} {path}: an empty 200"
            for media in ok["content"].values():
                assert media["schema"], (method, path)
            if path.startswith("/api/v2/"):
                assert op["security"] == [{"bearer": []}], (method, path)
                assert {"401", "403", "404", "422"} <= set(op["responses"]), (method, path)
    manifest_ok = spec["paths"]["/api/v2/manifests/{ref}"]["get"]["responses"]["200"]
    assert set(manifest_ok["content"]) == {"application/json", "application/x-ndjson"}
    assert {"X-Manifest-Digest", "X-Manifest-Signature", "X-Manifest-Format"} <= set(
        manifest_ok["headers"])
    epcis_ok = spec["paths"]["/api/v2/batches/{batch_id}/epcis"]["get"]["responses"]["200"]
    assert set(epcis_ok["content"]) == {"application/ld+json"}


class _AnyText(str):
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(other)

    __hash__ = str.__hash__


ANY_TEXT = _AnyText()


async def test_the_scheme_name_is_case_insensitive(api) -> None:  # type: ignore[no-untyped-def]
    base, secrets, _ = api
    async with httpx.AsyncClient(base_url=base) as client:
        for scheme in ("Bearer", "bearer", "BEARER"):
            r = await client.get("/api/v2/manifests",
                                 headers={"Authorization": f"{scheme} {secrets['cloud']}"})
            assert r.status_code == 200, (scheme, r.text)


async def test_a_cloud_can_tell_the_versions_and_v1_is_gone(api) -> None:  # type: ignore[no-untyped-def]
    base, secrets, _ = api
    async with httpx.AsyncClient(base_url=base, headers=bearer(secrets["cloud"])) as client:
        versions = (await client.get("/api")).json()
        assert versions["current"] == "v2" and versions["versions"]["v1"] == "gone"
        assert versions["manifest_format"] == manifest.FORMAT == "codeline-manifest/2"
        for method, path in (("GET", "/api/v1/manifests"), ("POST", "/api/v1/manifests/1/ack")):
            r = await client.request(method, path)
            assert r.status_code == 410 and r.json()["code"] == "gone", (path, r.text)
            assert "/api/v2/" in r.json()["message"]
        r = await client.get("/api/v2/manifests/1")
        assert r.headers["x-manifest-format"] == manifest.FORMAT
        header = r.json()["header"]
        assert header["format"] == manifest.FORMAT


async def test_a_wrong_method_is_405_with_allow(api) -> None:  # type: ignore[no-untyped-def]
    base, secrets, _ = api
    async with httpx.AsyncClient(base_url=base, headers=bearer(secrets["cloud"])) as client:
        r = await client.delete("/api/v2/manifests/1")
        assert r.status_code == 405 and r.headers["allow"] == "GET", r.headers
        assert r.json()["code"] == "method_not_allowed"
        r = await client.get("/api/v2/manifests/1/ack")
        assert r.status_code == 405 and r.headers["allow"] == "POST"


async def test_every_time_the_api_answers_is_rfc3339_utc(api) -> None:  # type: ignore[no-untyped-def]
    base, secrets, _ = api
    async with httpx.AsyncClient(base_url=base, headers=bearer(secrets["cloud"])) as client:
        page = (await client.get("/api/v2/manifests")).json()
        ack = (await client.post("/api/v2/manifests/1/ack")).json()
        doc = (await client.get("/api/v2/manifests/1")).json()
        listed = (await client.get("/api/v2/manifests")).json()["manifests"][0]
    times = [page["manifests"][0]["issued_at"], ack["acked_at"], doc["header"]["issued_at"],
             listed["acked_at"], *(c["printed_at"] for c in doc["codes"])]
    assert all(RFC3339_UTC.fullmatch(t) for t in times), times
    assert listed["acked_at"] == ack["acked_at"]


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
                    await client.get("/api/v2/manifests")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            leaked = await client.get(f"/api/v2/manifests?access_token={secret}")
            assert leaked.status_code == 400 and leaked.json()["code"] == "token_in_url"
            ok = await client.get("/api/v2/manifests", headers=bearer(secret))
            assert ok.status_code == 200
    finally:
        server.terminate()
        server.wait(30)
    logged = log_path.read_text()
    assert secret not in logged
    assert '"msg": "GET /api/v2/manifests 400"' in logged  # the request is logged, bare
    assert all(line.startswith("{") for line in logged.splitlines() if line.strip())
