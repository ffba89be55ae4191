"""Capture of a batch's event log into an EPCIS repository over HTTP, following the jobs:
a resend is idempotent, a capture after rework adds events and contradicts none, and the
repository refuses a document that rewrites history."""

from __future__ import annotations

import json

import httpx
import pytest

from edge.store.database import Store
from line_config.models import SiteConfig
from simulators.epcis_repository import create_app
from sync import epcis
from sync.capture import CaptureFailed, capture, capture_batch
from tests.conftest import serving
from tests.sync.test_epcis import SCHEMA_FILE, full_life, rework


async def test_a_batch_is_captured_once_even_when_sent_twice(store: Store,
                                                            site: SiteConfig) -> None:
    batch, _ = full_life(store, site)
    total = epcis.span(store.read(), batch).count
    async with serving(create_app(SCHEMA_FILE)) as repo, httpx.AsyncClient(
            base_url=repo) as client:
        first = await capture_batch(client, repo, store.read(), batch, per_document=7,
                                    poll_s=0.01)
        assert first.events == total and first.documents == -(-total // 7)
        await capture_batch(client, repo, store.read(), batch, poll_s=0.01)
        stored = (await client.get("/events")).json()
    assert stored["count"] == total, "a resend is idempotent"


async def test_a_capture_after_rework_adds_events_and_conflicts_with_none(
        store: Store, site: SiteConfig) -> None:
    batch, facts = full_life(store, site)
    async with serving(create_app(SCHEMA_FILE)) as repo, httpx.AsyncClient(
            base_url=repo) as client:
        first = await capture_batch(client, repo, store.read(), batch, poll_s=0.01)
        held = (await client.get("/events")).json()["count"]
        rework(store, facts)
        whole = await capture_batch(client, repo, store.read(), batch, poll_s=0.01)
        assert (await client.get("/events")).json()["count"] == held + 6
        assert whole.events == first.events + 6
        nothing_new = await capture_batch(client, repo, store.read(), batch,
                                          after=whole.through, poll_s=0.01)
        assert nothing_new.events == 0


async def test_a_document_that_rewrites_a_packing_is_refused(store: Store,
                                                            site: SiteConfig) -> None:
    """The negative control: a case packed again with other children and no unpacking (as
    an export rebuilt from current state would say it) contradicts the first capture."""
    batch, _ = full_life(store, site)
    doc = epcis.document(store.read(), batch, created_ms=0)
    async with serving(create_app(SCHEMA_FILE)) as repo, httpx.AsyncClient(
            base_url=repo) as client:
        await capture(client, repo, doc, poll_s=0.01)
        packing = next(e for e in doc["epcisBody"]["eventList"] if e["bizStep"] == "packing")
        rewritten = json.loads(json.dumps(packing))
        rewritten["eventTime"] = "2030-01-01T00:00:00.000Z"
        rewritten["eventID"] = "ni:///sha-256;" + "0" * 64 + "?ver=CBV2.0"
        doc["epcisBody"]["eventList"] = [rewritten]
        with pytest.raises(CaptureFailed, match="needs a DELETE first"):
            await capture(client, repo, doc, poll_s=0.01)
        packing["disposition"] = "damaged"
        doc["epcisBody"]["eventList"] = [packing]
        with pytest.raises(CaptureFailed, match="other content"):
            await capture(client, repo, doc, poll_s=0.01)


async def test_a_document_the_repository_refuses_is_a_capture_failure(store: Store,
                                                                     site: SiteConfig) -> None:
    batch, _ = full_life(store, site)
    doc = epcis.document(store.read(), batch, created_ms=0)
    doc["epcisBody"]["eventList"][0]["action"] = "SHIP"
    async with serving(create_app(SCHEMA_FILE)) as repo, httpx.AsyncClient(
            base_url=repo) as client:
        with pytest.raises(CaptureFailed, match="failed"):
            await capture(client, repo, doc, poll_s=0.01)
