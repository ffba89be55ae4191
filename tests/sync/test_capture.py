"""Capture of an exported batch into an EPCIS repository over HTTP, following the job."""

from __future__ import annotations

import httpx
import pytest

from edge.store.database import Store
from line_config.models import SiteConfig
from simulators.epcis_repository import create_app
from sync import epcis
from sync.capture import CaptureFailed, capture
from tests.conftest import serving
from tests.sync.test_epcis import SCHEMA_FILE, full_life


async def test_a_batch_is_captured_once_even_when_sent_twice(store: Store,
                                                            site: SiteConfig) -> None:
    batch = full_life(store, site)
    doc = epcis.document(store.read(), site, batch, created_ms=1_790_000_000_000)
    async with serving(create_app(SCHEMA_FILE)) as repo, httpx.AsyncClient(
            base_url=repo) as client:
        first = await capture(client, repo, doc, poll_s=0.01)
        assert first.job["success"] and not first.job["running"]
        await capture(client, repo, doc, poll_s=0.01)
        stored = (await client.get("/events")).json()
    assert stored["count"] == len(doc["epcisBody"]["eventList"]), "a resend is idempotent"


async def test_a_document_the_repository_refuses_is_a_capture_failure(store: Store,
                                                                     site: SiteConfig) -> None:
    batch = full_life(store, site)
    doc = epcis.document(store.read(), site, batch, created_ms=0)
    doc["epcisBody"]["eventList"][0]["action"] = "SHIP"
    async with serving(create_app(SCHEMA_FILE)) as repo, httpx.AsyncClient(
            base_url=repo) as client:
        with pytest.raises(CaptureFailed, match="failed"):
            await capture(client, repo, doc, poll_s=0.01)
