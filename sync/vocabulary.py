"""The site's words to the outside: one name for one thing, one way to write a time.

CLI ``--json`` output, the pull API and manifests say the same thing the same way: a manifest
is ``seq, id, kind, shipment, codes, issued_at, acked_at, digest, signature`` wherever it
appears; a shipment's codes are ``codes`` and its business transaction ``reference: {type,
id}``, as in the manifest header. Inside the site a time is epoch milliseconds in a field
named ``at`` or ``…_at``; outside it is RFC 3339 UTC text (``2026-11-24T06:00:00.125Z``), and
a duration is named for its unit (``…_s``). ``public`` applies the time rule to any record
on its way out.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING, Any

from edge.store.database import rfc3339

if TYPE_CHECKING:  # the CLI imports this module on every command: no HTTP or crypto libraries
    from edge.domain.batches import Batch
    from edge.domain.shipments import Shipment
    from sync.manifest import ManifestInfo
    from sync.push import PushStatus
    from sync.tokens import Token

API_VERSION = "v2"
"""The pull API's current version: its routes live under ``/api/v2``."""
API_VERSIONS = {"v2": "current", "v1": "gone"}


def is_time_field(name: str) -> bool:
    return name == "at" or name.endswith("_at")


def public(value: Any) -> Any:
    """A record as it leaves the site: dataclasses as objects, dates as ISO text, and every
    time field (``at``, ``…_at``) holding epoch milliseconds as RFC 3339 UTC."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): (rfc3339(v) if is_time_field(str(k)) and type(v) is int
                         else public(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [public(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _record(fields: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = public(fields)
    return out


def manifest(m: ManifestInfo) -> dict[str, Any]:
    """A manifest's identity and delivery state (its header's names)."""
    return _record({"seq": m.seq, "id": m.manifest_id, "kind": m.kind, "shipment": m.shipment_id,
                   "codes": m.code_count, "issued_at": m.created_at, "acked_at": m.acked_at,
                   "digest": m.digest, "signature": m.signature})


def batch(b: Batch) -> dict[str, Any]:
    """A batch, with the names a manifest header gives its batches."""
    return _record({"id": b.id, "line": b.line_id, "product": b.product_id, "lot": b.lot,
                   "expiry": b.expiry, "planned": b.planned_qty,
                   "items_per_case": b.items_per_case, "cases_per_pallet": b.cases_per_pallet,
                   "state": b.state, "created_at": b.created_at, "started_at": b.started_at,
                   "stopped_at": b.stopped_at, "closed_at": b.closed_at,
                   "close_reason": b.close_reason, "forced": b.forced})


def shipment(s: Shipment) -> dict[str, Any]:
    """A shipment, with the names a manifest header gives its destination and reference."""
    return _record({"id": s.id, "distributor": s.distributor,
                   "distributor_gln": s.distributor_gln, "region": s.region,
                   "status": s.status, "containers": s.containers, "codes": s.code_count,
                   "reference": ({"type": s.reference_type, "id": s.reference}
                                 if s.reference else None),
                   "created_at": s.created_at, "confirmed_at": s.confirmed_at,
                   "cancel_reason": s.cancel_reason})


def token(t: Token) -> dict[str, Any]:
    """An API token (never its secret)."""
    return _record({"id": t.id, "name": t.name, "scopes": list(t.scopes),
                   "created_at": t.created_at, "last_used_at": t.last_used_at,
                   "revoked_at": t.revoked_at})


def push_status(s: PushStatus, now_ms: int) -> dict[str, Any]:
    """What waits for the cloud; the oldest pending manifest's issue time and its age."""
    return _record({
        "pending": s.pending, "acknowledged": s.acked,
        "oldest_pending_at": s.oldest_pending_at,
        "oldest_pending_age_s": (None if s.oldest_pending_at is None
                                 else round((now_ms - s.oldest_pending_at) / 1000, 3)),
        "last_attempt_at": s.last_attempt_at, "last_error": s.last_error,
        "refused": [{"seq": r.seq, "id": r.manifest_id, "refused_at": r.refused_at,
                     "reason": r.reason} for r in s.refused]})
