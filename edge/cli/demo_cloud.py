"""The cloud half of ``codeline demo``: scans before shipment, sync, scans after.

The edge's pull API runs on loopback with a scoped token; the simulated cloud knows the codes
it issued, pulls the activation manifest, verifies its signature, applies it and acks.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from edge.cli.context import console
from edge.store.database import Store, now_ms
from line_config.models import SiteConfig
from simulators.cloud import Cloud
from sync import keys, tokens
from sync.api import create_app
from sync.serving import serve


def prepare(workdir: Path, store: Store) -> Cloud:
    """A signing key for the site, and a cloud that knows every code issued to it."""
    key_path = workdir / "keys" / "manifest-signing.key"
    if not key_path.exists():
        keys.generate(key_path)
    cloud = Cloud(workdir / "cloud.db", keys.load_private(key_path).public_key())
    cloud.issue([r[0] for r in store.read().execute("SELECT serial FROM codes")])
    return cloud


def scan_all(cloud: Cloud, payloads: list[str], region: str, when: str) -> None:
    for payload in payloads:
        answer = cloud.scan(payload, region)
        extra = ""
        if answer["result"] == "activated":
            dest = answer["destination"]
            extra = (f" — {answer['product']} lot {answer['lot']}, shipped to "
                     f"{dest['distributor']} ({dest['region']})")
            if answer.get("diversion"):
                extra += f" [red]DIVERSION: scanned in {region}[/red]"
        console.print(f"  scan {when} in {region}: {payload} → [bold]{answer['result']}[/bold]"
                      f"{extra}", soft_wrap=True)


async def _sync(workdir: Path, db_path: Path, config: SiteConfig, cloud: Cloud) -> int:
    key = keys.load_private(workdir / "keys" / "manifest-signing.key")
    with Store(db_path) as store, store.transaction() as conn:
        secret = tokens.create(conn, "demo-cloud", ["manifests:read", "manifests:ack"], now_ms())
    async with serve(create_app(db_path, config, key)) as base, httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {secret}"}) as client:
        return await cloud.pull_once(client)


def sync(workdir: Path, db_path: Path, config: SiteConfig, cloud: Cloud) -> None:
    applied = asyncio.run(_sync(workdir, db_path, config, cloud))
    console.print(f"  cloud pulled {applied} manifest(s) over the edge API, verified the "
                  "signature, applied and acknowledged")


def reports(cloud: Cloud) -> None:
    for row in cloud.early_scans():
        console.print(f"  early scans: line {row['line']}, batch {row['batch']}, printed "
                      f"{row['print_hour']}: {row['scans']} scan(s) of {row['codes']} code(s) "
                      "before activation")
    for row in cloud.diversion():
        console.print(f"  diversion: {row['serial']} shipped to {row['shipped_to']} "
                      f"({row['distributor']}), scanned in {row['scanned_in']}")
