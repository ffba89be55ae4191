"""Capture to an EPCIS 2.0 repository: ``POST {url}/capture``, then follow the capture job.

The repository answers 202 with the job's URL in ``Location``; the job document reports
``running`` and ``success`` (and ``errors``), per the GS1 EPCIS REST binding.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import httpx

from sync.errors import SyncError


class CaptureFailed(SyncError):
    """The repository refused the document or reported errors in the capture job."""


@dataclass(frozen=True)
class CaptureResult:
    job_url: str
    job: dict[str, Any]


async def capture(client: httpx.AsyncClient, repository: str, document: dict[str, Any],
                  poll_s: float = 0.2, timeout_s: float = 120.0) -> CaptureResult:
    """Send one EPCISDocument and wait for its capture job to finish successfully."""
    base = repository.rstrip("/") + "/"
    response = await client.post(urljoin(base, "capture"), json=document,
                                  headers={"Content-Type": "application/ld+json",
                                           "GS1-Capture-Error-Behaviour": "rollback"})
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
