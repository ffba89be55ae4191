"""Capture to an EPCIS 2.0 repository: ``POST {url}/capture``, then follow the capture job.

The repository answers 202 with the job's URL in ``Location``; the job document reports
``running`` and ``success`` (and ``errors``), per the GS1 EPCIS REST binding. A batch is sent
as documents of at most ``per_document`` events (repositories cap a capture; the cap is
``GS1-EPCIS-Capture-Limit``), each streamed from the event log as it is read.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import httpx

from sync import epcis
from sync.errors import SyncError


class CaptureFailed(SyncError):
    """The repository refused the document or reported errors in the capture job."""


@dataclass(frozen=True)
class CaptureResult:
    job_url: str
    job: dict[str, Any]


async def _streamed(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def capture(client: httpx.AsyncClient, repository: str,
                  document: dict[str, Any] | Iterable[bytes],
                  poll_s: float = 0.2, timeout_s: float = 120.0) -> CaptureResult:
    """Send one EPCISDocument (whole, or as the pieces of a stream) and wait for its
    capture job to finish successfully."""
    base = repository.rstrip("/") + "/"
    headers = {"Content-Type": "application/ld+json",
               "GS1-Capture-Error-Behaviour": "rollback"}
    if isinstance(document, dict):
        response = await client.post(urljoin(base, "capture"), json=document, headers=headers)
    else:
        response = await client.post(urljoin(base, "capture"), content=_streamed(document),
                                      headers=headers)
    if response.status_code != 202:
        raise CaptureFailed(f"repository answered {response.status_code}: {response.text[:300]}")
    location = response.headers.get("Location")
    if not location:
        raise CaptureFailed("repository accepted the capture but named no capture job")
    job_url = urljoin(base, location)
    async with asyncio.timeout(timeout_s):
        while True:
            job = (await client.get(job_url)).json()
            if not job.get("running", False):
                break
            await asyncio.sleep(poll_s)
    if not job.get("success", False):
        raise CaptureFailed(f"capture job {job.get('captureID')} failed: "
                            f"{str(job.get('errors'))[:300]}")
    return CaptureResult(job_url, job)


@dataclass(frozen=True)
class BatchCapture:
    """What a capture of a batch sent: documents, events, and the last event's sequence
    number (the ``after`` of the next capture)."""

    documents: int
    events: int
    through: int


async def capture_batch(client: httpx.AsyncClient, repository: str, conn: sqlite3.Connection,
                        batch_id: int, *, after: int = 0, per_document: int = 10_000,
                        poll_s: float = 0.2) -> BatchCapture:
    """Capture the batch's events logged after ``after``, ``per_document`` at a time."""
    documents = events = 0
    while True:
        part = epcis.span(conn, batch_id, after, limit=per_document)
        if part.count == 0:
            return BatchCapture(documents, events, after)
        await capture(client, repository,
                      epcis.document_chunks(conn, part, int(time.time() * 1000)), poll_s)
        documents += 1
        events += part.count
        after = part.through
