"""Schemathesis against the pull API's own /openapi.json, on a real server: no 5xx, ever, and
every answer as the document declares it."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings

from edge.domain import shipments
from edge.store.database import Store, now_ms
from line_config.loading import parse_config
from sync import keys, manifest, tokens
from sync.api import create_app
from tests.conftest import SMALL_SITE, commissioned, packed_pallet
from tests.sync.test_manifest import shipped_pallet


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Known]]:
    """The API over a database with two shipped pallets (one with a business transaction and
    a distributor GLN), served by uvicorn in a thread."""
    site = parse_config(SMALL_SITE)
    workdir: Path = tmp_path_factory.mktemp("fuzz")
    store = Store(workdir / "api.db", create=True)
    _, items, _ = shipped_pallet(store, site)
    _, pallet = packed_pallet(store, 1, commissioned(store, 1, "item", 8))
    second = shipments.create(store, "D-8", "west", operator="t", distributor_gln="6901234000009",
                              reference="DESADV-77", reference_type="desadv")
    shipments.add(store, second.id, pallet, operator="t", allow_mixed_batches=False)
    shipments.confirm(store, second.id, operator="t")
    known = Known(manifest_id=manifest.info(store.read(), 2).manifest_id, serial=items[0])
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
    yield f"http://127.0.0.1:{port}", token, known
    server.should_exit = True
    thread.join(timeout=10)


@schemathesis.deserializer("application/x-ndjson")
def _ndjson_lines(_ctx: Any, response: Any) -> list[Any]:
    """An NDJSON body as the array of its lines, as the OpenAPI document describes it."""
    return [json.loads(line) for line in response.content.splitlines()]


def test_every_answer_conforms_to_the_openapi_document(live_api: tuple[str, str, Known]
                                                       ) -> None:
    """Every operation of /openapi.json, 40 generated requests each, with and without a
    token: never a 5xx, and every answer as the document declares it (status code, media
    type, body schema, headers), by all of schemathesis' checks."""
    base, token, _ = live_api
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 8
    calls = 0
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def probe(case: Any) -> None:
            nonlocal calls
            for headers in ({"Authorization": f"Bearer {token}"}, {},
                            {"Authorization": f"Bearer {token}",
                             "Accept": "application/x-ndjson"}):
                calls += 1
                response = case.call_and_validate(base_url=base, headers=headers)
                if response.status_code >= 400:
                    assert {"code", "message"} <= set(response.json())

        probe()
    assert calls >= 3 * len(operations) * 10, calls


def test_real_answers_conform_to_the_openapi_document(live_api: tuple[str, str, Known]) -> None:
    """Generated paths seldom name a manifest, code or batch that exists: the found ones are
    asked for here, each answer (JSON, NDJSON, JSON-LD) checked against the document."""
    base, token, known = live_api
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    auth = {"Authorization": f"Bearer {token}"}
    asks: list[tuple[str, str, dict[str, Any], dict[str, str]]] = [
        ("GET", "/api", {}, {}), ("GET", "/healthz", {}, {}),
        ("GET", "/api/v2/manifests", {}, {}),
        ("GET", "/api/v2/codes/{serial}", {"serial": known.serial}, {}),
        ("GET", "/api/v2/batches/{batch_id}/manifest", {"batch_id": 1}, {}),
        ("GET", "/api/v2/batches/{batch_id}/epcis", {"batch_id": 1}, {}),
        ("POST", "/api/v2/manifests/{ref}/ack", {"ref": "1"}, {}),
    ]
    for ref in ("1", "2", known.manifest_id):
        for accept in ("application/json", "application/x-ndjson"):
            asks.append(("GET", "/api/v2/manifests/{ref}", {"ref": ref}, {"Accept": accept}))
    seen: set[str] = set()
    for method, path, params, headers in asks:
        case = schema[path][method].Case(path_parameters=params)
        response = case.call_and_validate(base_url=base, headers={**auth, **headers})
        assert response.status_code == 200, (path, response.text[:200])
        seen.add(response.headers["content-type"][0].split(";")[0])
    assert seen == {"application/json", "application/x-ndjson", "application/ld+json"}


@dataclass(frozen=True)
class Known:
    """What exists in the served database."""

    manifest_id: str
    serial: str
