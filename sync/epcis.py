"""EPCIS 2.0 JSON-LD export of a batch, mapped as in DESIGN.md section 3.

* commissioned codes → ObjectEvent ADD ``commissioning`` / ``active`` with lot and expiry
  in ``ilmd`` (one event per verdict commit and level);
* packed containers → AggregationEvent ADD ``packing`` / ``in_progress``;
* confirmed shipments → ObjectEvent OBSERVE ``shipping`` / ``in_transit`` on the shipped
  parents with the destination; a cancelled one adds ``void_shipping``;
* rejected and void codes → ObjectEvent DELETE ``destroying`` / ``destroyed``;
* decommissioned codes → ObjectEvent DELETE ``decommissioning`` / ``inactive``.

Identifiers are GS1 Digital Link URIs where a GTIN or SSCC exists, else the code's own URL
payload, else ``urn:codeline:<site>:<serial>``. ``eventID`` is ``ni:///sha-256;<hash>`` of the
event's canonical JSON, so exporting the same data twice gives the same ids (a resend is
idempotent at any EPCIS repository); it is not the CBV canonical-hash algorithm.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from edge.domain.lifecycle import State
from line_config.models import Level, SiteConfig, SsccFormat

CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
NAMESPACE = "urn:codeline:epcis:"
LEVELS: tuple[Level, ...] = ("item", "case", "pallet")
EPC_BLOCK = 1000


def _time(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


class Identifiers:
    """Turns (serial, level) into the URI an EPCIS repository expects."""

    def __init__(self, config: SiteConfig, line_id: str, product_id: str) -> None:
        self.site = config.site.id
        line = config.line(line_id)
        product = config.product(product_id)
        self.gtin = {"item": product.gtin_item, "case": product.gtin_case}
        self.formats = {level: line.codes.for_level(level) for level in LEVELS}

    def uri(self, serial: str, level: Level) -> str:
        fmt = self.formats[level]
        if isinstance(fmt, SsccFormat):
            return f"https://id.gs1.org/00/{serial}"
        gtin = self.gtin.get(level)
        if gtin:
            return f"https://id.gs1.org/01/{gtin}/21/{quote(serial, safe='')}"
        if fmt.url_base:
            return fmt.url_base + serial
        return f"urn:codeline:{quote(self.site, safe='')}:{quote(serial, safe='')}"


def _with_id(event: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(body.encode()).hexdigest()
    return {"eventID": f"ni:///sha-256;{digest}?ver=CBV2.0", **event}


def _base(kind: str, at: int, read_point: str) -> dict[str, Any]:
    return {"type": kind, "eventTime": _time(at), "eventTimeZoneOffset": "+00:00",
            "readPoint": {"id": read_point}}


def batch_events(conn: sqlite3.Connection, config: SiteConfig,
                 batch_id: int) -> Iterator[dict[str, Any]]:
    """Every event of a batch, in a stable order."""
    row = conn.execute("SELECT line_id, product_id, lot, expiry FROM batches WHERE id = ?",
                       (batch_id,)).fetchone()
    if row is None:
        raise KeyError(batch_id)
    line_id, product_id, lot, expiry = row
    ids = Identifiers(config, line_id, product_id)
    read_point = f"urn:codeline:{quote(config.site.id, safe='')}:line:{quote(line_id, safe='')}"
    ilmd: dict[str, Any] = {"cbvmda:lotNumber": lot}
    if expiry:
        ilmd["cbvmda:itemExpirationDate"] = expiry

    commissioned = (int(State.COMMISSIONED), int(State.ACTIVE), int(State.DECOMMISSIONED))
    yield from _grouped(
        conn, "SELECT verified_at, level, serial FROM codes WHERE batch_id = ? AND state IN "
        "(?, ?, ?) ORDER BY verified_at, level, id", (batch_id, *commissioned), ids,
        lambda at, epcs: {**_base("ObjectEvent", at, read_point), "epcList": epcs,
                          "action": "ADD", "bizStep": "commissioning", "disposition": "active",
                          "ilmd": ilmd})
    for code_id, serial, level, closed_at, opened_at in conn.execute(
        "SELECT c.id, c.serial, c.level, k.closed_at, k.opened_at FROM containers k "
        "JOIN codes c ON c.id = k.code_id WHERE c.batch_id = ? AND k.child_count > 0 "
        "ORDER BY c.id", (batch_id,)).fetchall():
        children = [ids.uri(s, LEVELS[lv]) for s, lv in conn.execute(
            "SELECT serial, level FROM codes WHERE parent_id = ? ORDER BY id", (code_id,))]
        yield _with_id({**_base("AggregationEvent", closed_at or opened_at, read_point),
                        "parentID": ids.uri(serial, LEVELS[level]), "childEPCs": children,
                        "action": "ADD", "bizStep": "packing", "disposition": "in_progress"})
    for shipment_id, distributor, region, status, confirmed_at, cancelled_at in conn.execute(
        "SELECT DISTINCT s.id, s.distributor, s.region, s.status, s.confirmed_at, s.cancelled_at "
        "FROM shipments s JOIN shipment_containers sc ON sc.shipment_id = s.id "
        "JOIN codes c ON c.id = sc.code_id WHERE c.batch_id = ? AND s.confirmed_at IS NOT NULL "
        "ORDER BY s.id", (batch_id,)).fetchall():
        parents = [ids.uri(s, LEVELS[lv]) for s, lv in conn.execute(
            "SELECT c.serial, c.level FROM shipment_containers sc JOIN codes c ON c.id = sc.code_id"
            " WHERE sc.shipment_id = ? AND c.batch_id = ? ORDER BY c.id", (shipment_id, batch_id))]
        destination = [{"type": "owning_party",
                        "destination": f"urn:codeline:distributor:{quote(distributor, safe='')}"}]
        shipping = {**_base("ObjectEvent", confirmed_at, read_point), "epcList": parents,
                    "action": "OBSERVE", "bizStep": "shipping", "disposition": "in_transit",
                    "destinationList": destination, "codeline:region": region,
                    "codeline:shipment": shipment_id}
        yield _with_id(shipping)
        if status == "cancelled" and cancelled_at:
            yield _with_id({**shipping, **_base("ObjectEvent", cancelled_at, read_point),
                            "bizStep": "void_shipping", "disposition": "in_progress"})
    yield from _grouped(
        conn, "SELECT COALESCE(verified_at, r.at), c.level, c.serial FROM codes c "
        "LEFT JOIN reservations r ON r.id = c.reservation_id WHERE c.batch_id = ? AND c.state "
        "IN (?, ?) ORDER BY 1, c.level, c.id", (batch_id, int(State.REJECTED), int(State.VOID)),
        ids, lambda at, epcs: {**_base("ObjectEvent", at, read_point), "epcList": epcs,
                               "action": "DELETE", "bizStep": "destroying",
                               "disposition": "destroyed"})
    yield from _grouped(
        conn, "SELECT e.at, c.level, c.serial FROM events e JOIN codes c ON c.id = e.code_id "
        "WHERE e.kind = 'code.decommission' AND c.batch_id = ? ORDER BY e.at, c.level, c.id",
        (batch_id,), ids,
        lambda at, epcs: {**_base("ObjectEvent", at, read_point), "epcList": epcs,
                          "action": "DELETE", "bizStep": "decommissioning",
                          "disposition": "inactive"})


def _grouped(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...], ids: Identifiers,
             make: Any) -> Iterator[dict[str, Any]]:
    """One event per (time, level) run of rows, at most EPC_BLOCK identifiers each."""
    key: tuple[int, int] | None = None
    epcs: list[str] = []
    for at, level, serial in conn.execute(sql, params):
        if (at, level) != key or len(epcs) >= EPC_BLOCK:
            if epcs and key is not None:
                yield _with_id(make(key[0], epcs))
            key, epcs = (at, level), []
        epcs.append(ids.uri(serial, LEVELS[level]))
    if epcs and key is not None:
        yield _with_id(make(key[0], epcs))


def document(conn: sqlite3.Connection, config: SiteConfig, batch_id: int,
             created_ms: int) -> dict[str, Any]:
    """An EPCISDocument holding every event of the batch."""
    return {
        "@context": [CONTEXT, {"codeline": NAMESPACE}],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": _time(created_ms),
        "epcisBody": {"eventList": list(batch_events(conn, config, batch_id))},
    }
