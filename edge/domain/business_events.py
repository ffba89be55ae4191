"""The business event log: what happened to the codes, as GS1 EPCIS 2.0 events in the CBV
2.0 vocabulary, appended in the same transaction as the change it records and never changed
or deleted (triggers refuse it). Exports, pushes and captures read it; none rebuilds history
from the current state, so rework appends (an unpacking, a new packing) instead of rewriting.

What is recorded, and what is not:

* commissioning (ObjectEvent ADD, ``commissioning`` / ``active``) when a verdict or a seal
  commissions codes; ``ilmd`` (lot, expiry) only on trade items (item level or GTIN-based),
  never on an SSCC, which identifies a logistic unit, not a product;
* packing (AggregationEvent ADD, ``packing``) when children go into a container; unpacking
  (AggregationEvent DELETE, ``unpacking``) when rework takes them out; a replace is both;
* shipping (ObjectEvent OBSERVE, ``shipping`` / ``in_transit``) on the shipped containers
  of each batch when a shipment is confirmed, with the site as source, the distributor as
  destination and the despatch reference as business transaction; ``void_shipping`` when a
  confirmed shipment is cancelled;
* decommissioning (ObjectEvent DELETE, ``decommissioning`` / ``inactive``) with the reason.

Codes rejected at the camera or voided before a verdict get no event at all: they were
never commissioned, so no EPCIS repository ever knew them; a ``destroying`` event would
assert that an object it has no record of existed and was destroyed. (A code's internal
history, ``edge.domain.history``, keeps their fate.)

Every event's identity (EPC URIs, read point, business location, time zone, lot) comes from
the batch's identity, frozen when the batch is created; editing the config later does not
change an event already written, nor one still to be written for that batch.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import sqlite3
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from edge.domain.codes import code_by_id
from edge.domain.event_hash import event_id
from edge.store.database import rfc3339
from line_config.levels import LEVELS

if TYPE_CHECKING:
    from line_config.models import SiteConfig

NAMESPACES = {"codeline": "urn:codeline:epcis:"}
"""Prefixes of the extension fields this log writes, as the exported ``@context`` declares."""
EPC_BLOCK = 1000
"""At most this many EPCs in one event; a bigger change is written as several."""


@dataclass(frozen=True)
class LevelIdentity:
    """How the codes of one packaging level are named to the outside."""

    gtin: str | None
    sscc: bool
    url_base: str | None


@dataclass(frozen=True)
class Identity:
    """A batch's names and places, frozen at batch creation."""

    site: str
    site_gln: str | None
    read_point: str
    biz_location: str
    timezone: str
    lot: str | None
    expiry: str | None
    levels: dict[str, LevelIdentity]

    @classmethod
    def from_config(cls, config: SiteConfig, line_id: str, product_id: str, lot: str | None,
                    expiry: str | None) -> Identity:
        from line_config.models import SsccFormat

        line = config.line(line_id)
        product = config.product(product_id)
        gtins = {"item": product.gtin_item, "case": product.gtin_case}
        levels: dict[str, LevelIdentity] = {}
        for level in LEVELS:
            fmt = line.codes.for_level(level)
            if isinstance(fmt, SsccFormat):
                levels[level] = LevelIdentity(None, True, None)
            else:
                levels[level] = LevelIdentity(gtins.get(level), False, fmt.url_base)
        site = config.site
        extension = line.sgln_extension or line.id
        if site.gln:
            read_point = f"https://id.gs1.org/414/{site.gln}/254/{_dl(extension)}"
            biz_location = f"https://id.gs1.org/414/{site.gln}"
        else:
            read_point = f"urn:codeline:{_q(site.id)}:line:{_q(line.id)}"
            biz_location = f"urn:codeline:{_q(site.id)}"
        return cls(site.id, site.gln, read_point, biz_location, site.timezone, lot, expiry,
                   levels)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Identity:
        data = json.loads(text)
        data["levels"] = {k: LevelIdentity(**v) for k, v in data["levels"].items()}
        return cls(**data)

    def epc(self, serial: str, level: int) -> str:
        """The URI of a code: GS1 Digital Link where a GTIN or SSCC names it, else the code's
        own URL, else a URN of this site."""
        how = self.levels[LEVELS[level]]
        if how.sscc:
            return f"https://id.gs1.org/00/{serial}"
        if how.gtin:
            return f"https://id.gs1.org/01/{how.gtin}/21/{_dl(serial)}"
        if how.url_base:
            return how.url_base + serial
        return f"urn:codeline:{_q(self.site)}:{_q(serial)}"

    def party(self) -> str:
        """The site as the owning party."""
        return party_uri(self.site_gln, "site", self.site)

    def transaction(self, reference: str) -> str:
        """A business transaction of this site (CBV 2.0 section 8.5: GLN of the issuer and
        the document's number)."""
        if self.site_gln:
            return f"urn:epcglobal:cbv:bt:{self.site_gln}:{reference}"
        return f"urn:codeline:bt:{_q(self.site)}:{_q(reference)}"

    def trade_item(self, level: int) -> bool:
        return level == 0 or self.levels[LEVELS[level]].gtin is not None


def _q(text: str) -> str:
    return quote(text, safe="")


_DL_ENCODE = str.maketrans({c: f"%{ord(c):02X}" for c in "!\"%&'()*+,/:;<=>?"})


def _dl(text: str) -> str:
    """A GS1 Digital Link path value with the characters the standard escapes escaped."""
    return text.translate(_DL_ENCODE)


def party_uri(gln: str | None, fallback_kind: str, fallback_id: str) -> str:
    """A party: its GLN as a GS1 Digital Link PGLN, else a URN of this site's naming."""
    return f"https://id.gs1.org/417/{gln}" if gln else f"urn:codeline:{fallback_kind}:" \
        f"{_q(fallback_id)}"


def _offset(ms: int, zone: str) -> str:
    moment = dt.datetime.fromtimestamp(ms / 1000, zoneinfo.ZoneInfo(zone))
    delta = moment.utcoffset() or dt.timedelta(0)
    minutes = int(delta.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def identity(conn: sqlite3.Connection, batch_id: int) -> Identity | None:
    """The batch's frozen identity; None for a batch made before the event log existed."""
    row = conn.execute("SELECT identity FROM batches WHERE id = ?", (batch_id,)).fetchone()
    return _parsed(row[0]) if row and row[0] else None


@functools.lru_cache(maxsize=64)
def _parsed(text: str) -> Identity:
    """A frozen identity is parsed once, not at every group commit of its line."""
    return Identity.from_json(text)


def _base(kind: str, at: int, who: Identity) -> dict[str, Any]:
    return {"type": kind, "eventTime": rfc3339(at),
            "eventTimeZoneOffset": _offset(at, who.timezone)}


def _where(who: Identity) -> dict[str, Any]:
    return {"readPoint": {"id": who.read_point}, "bizLocation": {"id": who.biz_location}}


def _write(conn: sqlite3.Connection, batch_id: int, at: int, kind: str,
           event: dict[str, Any]) -> None:
    conn.execute(
        "INSERT INTO business_events (batch_id, at, kind, event_id, body) VALUES (?, ?, ?, ?, ?)",
        (batch_id, at, kind, event_id(event, NAMESPACES),
         json.dumps(event, separators=(",", ":"), ensure_ascii=False)))


def _codes(conn: sqlite3.Connection, code_ids: Sequence[int]) -> list[tuple[int, str, int]]:
    rows: list[tuple[int, str, int]] = []
    for first in range(0, len(code_ids), 900):
        part = code_ids[first:first + 900]
        rows += conn.execute(
            f"SELECT id, serial, level FROM codes WHERE id IN ({','.join('?' * len(part))})",
            part).fetchall()
    rows.sort()
    return rows


def _blocks(rows: list[tuple[int, str, int]]) -> Iterable[list[tuple[int, str, int]]]:
    for level in sorted({r[2] for r in rows}):
        same = [r for r in rows if r[2] == level]
        for first in range(0, len(same), EPC_BLOCK):
            yield same[first:first + EPC_BLOCK]


def _object_events(conn: sqlite3.Connection, batch_id: int, code_ids: Sequence[int],
                   at: int) -> Iterable[tuple[Identity, int, dict[str, Any]]]:
    """(identity, level, event so far) for each block of ``code_ids`` of one level."""
    who = identity(conn, batch_id)
    if who is None or not code_ids:
        return
    for block in _blocks(_codes(conn, code_ids)):
        yield who, block[0][2], {**_base("ObjectEvent", at, who),
                                 "epcList": [who.epc(serial, level) for _, serial, level in block]}


def commissioned(conn: sqlite3.Connection, batch_id: int, code_ids: Sequence[int],
                 at: int) -> None:
    """Codes that passed verification (or a sealed container's label) were commissioned."""
    for who, level, event in _object_events(conn, batch_id, code_ids, at):
        event.update(action="ADD", bizStep="commissioning", disposition="active", **_where(who))
        if who.trade_item(level) and who.lot:
            ilmd = {"cbvmda:lotNumber": who.lot}
            if who.expiry:
                ilmd["cbvmda:itemExpirationDate"] = who.expiry
            event["ilmd"] = ilmd
        _write(conn, batch_id, at, "commission", event)


def aggregated(conn: sqlite3.Connection, parent_id: int, child_ids: Sequence[int], at: int, *,
               packed: bool, reason: str | None = None) -> None:
    """Children went into (``packed``) or came out of a container."""
    parent = code_by_id(conn, parent_id)
    batch_id = parent.batch_id
    who = identity(conn, batch_id) if batch_id is not None else None
    if batch_id is None or who is None or not child_ids:
        return
    children = _codes(conn, child_ids)
    for first in range(0, len(children), EPC_BLOCK):
        block = children[first:first + EPC_BLOCK]
        event = {**_base("AggregationEvent", at, who),
                 "parentID": who.epc(parent.serial, parent.level),
                 "childEPCs": [who.epc(s, lv) for _, s, lv in block],
                 "action": "ADD" if packed else "DELETE",
                 "bizStep": "packing" if packed else "unpacking",
                 "disposition": "in_progress", **_where(who)}
        if reason:
            event["codeline:reason"] = reason
        _write(conn, batch_id, at, "pack" if packed else "unpack", event)


def decommissioned(conn: sqlite3.Connection, batch_id: int, code_ids: Sequence[int], at: int,
                   reason: str) -> None:
    """Commissioned codes taken out of circulation."""
    for who, _, event in _object_events(conn, batch_id, code_ids, at):
        event.update(action="DELETE", bizStep="decommissioning", disposition="inactive",
                     **_where(who))
        event["codeline:reason"] = reason
        _write(conn, batch_id, at, "decommission", event)


def shipped(conn: sqlite3.Connection, shipment_id: int, at: int, *, void: bool) -> None:
    """A shipment was confirmed (or, ``void``, a confirmed one cancelled): one event per
    batch on the shipment's containers of that batch, from the site (owning party and
    location) to the distributor, under the despatch reference when one was given."""
    row = conn.execute("SELECT distributor, distributor_gln, region, reference, "
                       "reference_type FROM shipments WHERE id = ?", (shipment_id,)).fetchone()
    if row is None:
        return
    distributor, distributor_gln, region, reference, reference_type = row
    by_batch: dict[int, list[int]] = {}
    for code_id, batch_id in conn.execute(
            "SELECT c.id, c.batch_id FROM shipment_containers sc JOIN codes c ON "
            "c.id = sc.code_id WHERE sc.shipment_id = ? ORDER BY c.id", (shipment_id,)):
        by_batch.setdefault(batch_id, []).append(code_id)
    for batch_id, ids in sorted(by_batch.items()):
        who = identity(conn, batch_id)
        if who is None:
            continue
        for block in _blocks(_codes(conn, ids)):
            event: dict[str, Any] = {
                **_base("ObjectEvent", at, who),
                "epcList": [who.epc(serial, level) for _, serial, level in block],
                "action": "OBSERVE", "bizStep": "void_shipping" if void else "shipping",
                "disposition": "in_progress" if void else "in_transit", **_where(who)}
            if reference:
                event["bizTransactionList"] = [{"type": reference_type or "desadv",
                                                "bizTransaction": who.transaction(reference)}]
            event["sourceList"] = [
                {"type": "owning_party", "source": who.party()},
                {"type": "location", "source": who.biz_location}]
            event["destinationList"] = [
                {"type": "owning_party",
                 "destination": party_uri(distributor_gln, "distributor", distributor)}]
            event["codeline:region"] = region
            event["codeline:shipment"] = f"shipment-{shipment_id}"
            _write(conn, batch_id, at, "void_ship" if void else "ship", event)
