"""The EPCIS event hash of CBV 2.0 (section 8.9): an event's ``eventID`` derived from what
it says, not how it is written, so that two systems that saw the same event give it the
same id and a repository can tell a resend from a new event.

The pre-hash string is built as GS1's reference implementation (``epcis-event-hash-generator``)
builds it: ``eventType``, then the standard fields in a fixed order with the values of each
list sorted, then every other field (lists of business transactions, sources, destinations,
``ilmd``, extensions) as sorted ``key=value`` strings, all joined without separator; times in
UTC at millisecond precision, CBV words as their web URIs, numbers without padding, EPC URNs
as canonical GS1 Digital Link URIs. The tests hold it against that implementation.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from typing import Any

_LISTS = ("epcList", "inputEPCList", "childEPCs", "outputEPCList")
_QUANTITIES = ("quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList")
_QUANTITY_FIELDS = ("epcClass", "quantity", "uom")
_ORDER: tuple[str, ...] = (
    "eventTime", "eventTimeZoneOffset", "certificationInfo", "parentID", "epcList",
    "inputEPCList", "childEPCs", "quantityList", "childQuantityList", "inputQuantityList",
    "outputEPCList", "outputQuantityList", "action", "transformationID", "bizStep",
    "disposition", "persistentDisposition", "readPoint", "bizLocation")
_IGNORED = frozenset({"eventID", "recordTime", "type", "errorDeclaration", "@context"})
_PAIRS = {"bizTransactionList": "bizTransaction", "sourceList": "source",
          "destinationList": "destination"}

_CBV = "https://ref.gs1.org/cbv/"
_BARE_PREFIX = {"bizStep": "BizStep-", "disposition": "Disp-", "set": "Disp-",
                "unset": "Disp-", "bizTransactionList": "BTT-", "sourceList": "SDT-",
                "destinationList": "SDT-"}
_URN_VOCABULARY = (("urn:epcglobal:cbv:bizstep:", "BizStep-"), ("urn:epcglobal:cbv:disp:", "Disp-"),
                   ("urn:epcglobal:cbv:btt:", "BTT-"), ("urn:epcglobal:cbv:sdt:", "SDT-"),
                   ("urn:epcglobal:cbv:er:", "ER-"))


def event_id(event: dict[str, Any], namespaces: dict[str, str] | None = None) -> str:
    """``ni:///sha-256;<hex>?ver=CBV2.0`` of ``event``; ``namespaces`` maps the prefixes of
    extension fields (``codeline:region``) to their namespace URIs, as the document's
    ``@context`` declares them."""
    digest = hashlib.sha256(prehash(event, namespaces or {}).encode()).hexdigest()
    return f"ni:///sha-256;{digest}?ver=CBV2.0"


def prehash(event: dict[str, Any], namespaces: dict[str, str]) -> str:
    """The canonical string the hash is taken of."""
    parts = [f"eventType={event['type']}"]
    for key in _ORDER:
        if key in event:
            parts.append(_ordered(key, event[key]))
    rest = [part for key, value in event.items() if key not in _ORDER and key not in _IGNORED
            for part in _generic(key, value, namespaces)]
    parts.extend(sorted(rest))
    return "".join(parts)


def _ordered(key: str, value: Any) -> str:
    if key in _LISTS:
        values = sorted(f"epc={canonical(v)}" for v in value)
        return key + "".join(values) if values else ""
    if key in _QUANTITIES:
        elements = sorted("quantityElement" + "".join(
            f"{f}={canonical(str(q[f]))}" for f in _QUANTITY_FIELDS if f in q) for q in value)
        return key + "".join(elements) if elements else ""
    if key == "persistentDisposition":
        inner = "".join("".join(sorted(f"{part}={canonical(_vocabulary(part, v))}"
                                       for v in value.get(part, ())))
                        for part in ("set", "unset"))
        return key + inner if inner else ""
    if key in ("readPoint", "bizLocation"):
        return f"{key}id={canonical(value['id'])}" if value.get("id") else ""
    if key == "eventTime":
        return f"{key}={utc_ms(value)}"
    text = str(value).strip()
    if not text:
        return ""
    return f"{key}={canonical(_vocabulary(key, text))}"


def _generic(key: str, value: Any, namespaces: dict[str, str]) -> list[str]:
    """The strings of a field outside the fixed order; a list gives one per element."""
    name = _name(key, namespaces)
    if key in _PAIRS:
        entries = sorted("".join(f"{_name(k, namespaces)}={_pair_value(key, k, v)}"
                                 for k, v in entry.items()) for entry in value)
        return [name + "".join(entries)]
    if isinstance(value, list):
        return [part for v in value for part in _generic(key, v, namespaces)]
    if isinstance(value, dict):
        children = [part for k, v in value.items() for part in _generic(k, v, namespaces)]
        return [name + "".join(sorted(children))]
    text = _text(value).strip()
    return [f"{name}={canonical(text)}" if text else name]


def _pair_value(list_key: str, key: str, value: Any) -> str:
    text = _text(value).strip()
    return canonical(_vocabulary(list_key, text) if key == "type" else text)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _name(key: str, namespaces: dict[str, str]) -> str:
    prefix, sep, local = key.partition(":")
    if sep and prefix in namespaces:
        return "{" + namespaces[prefix] + "}" + local
    return key


def _vocabulary(key: str, value: str) -> str:
    """A bare CBV word of a field whose values are CBV words, as its web URI."""
    for urn, word in _URN_VOCABULARY:
        if value.startswith(urn):
            return _CBV + word + value[len(urn):]
    prefix = _BARE_PREFIX.get(key)
    if prefix and _WORD.fullmatch(value):
        return _CBV + prefix + value
    return value


def utc_ms(text: str) -> str:
    """An RFC 3339 time as UTC with milliseconds and ``Z``."""
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC)
    moment = moment.replace(microsecond=round(moment.microsecond, -3) % 1_000_000)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def canonical(text: str) -> str:
    """A value as the hash sees it: numbers without padding, EPC URNs as Digital Link."""
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        text = str(int(number)) if number.is_integer() else str(number)
    return digital_link(text) or text


_DL_UNSAFE = str.maketrans({"!": "%21", "(": "%28", ")": "%29", "*": "%2A", "+": "%2B",
                            ",": "%2C", ":": "%3A"})


_SGTIN = re.compile(r"urn:epc:id:sgtin:(\d{6,12})\.(\d{1,7})\.(.+)")
_LGTIN = re.compile(r"urn:epc:(?:class:lgtin|idpat:sgtin):(\d{6,12})\.(\d{1,7})\.(.+)")
_SSCC = re.compile(r"urn:epc:id:sscc:(\d{6,12})\.(\d{5,11})")
_SGLN = re.compile(r"urn:epc:id:sgln:(\d{6,12})\.(\d{0,6})\.(.*)")
_PGLN = re.compile(r"urn:epc:id:pgln:(\d{6,12})\.(\d{0,6})")
_OTHER_DOMAIN = re.compile(
    r"https?://[^/]+(?:/[^/]+)*?(/(?:00|01|414|417)/\d{13,18}(?:/(?:21|254)/[^/?#]+)?)")
_WORD = re.compile(r"[a-z_]+")


def digital_link(uri: str) -> str | None:
    """The canonical GS1 Digital Link of an EPC URN (SGTIN, LGTIN, SSCC, SGLN, PGLN) or of a GS1
    Digital Link URI under another domain; None for anything else."""
    if uri.startswith("urn:epc:"):
        return _from_urn(uri)
    if uri.startswith("http"):
        m = _OTHER_DOMAIN.fullmatch(uri)
        if m and not uri.startswith("https://id.gs1.org/"):
            return "https://id.gs1.org" + m[1]
    return None


def _from_urn(uri: str) -> str | None:
    m = _SGTIN.fullmatch(uri)
    if m and len(m[1] + m[2]) == 13:
        return f"https://id.gs1.org/01/{_key(m)}/21/{m[3].translate(_DL_UNSAFE)}"
    m = _LGTIN.fullmatch(uri)
    if m and len(m[1] + m[2]) == 13:
        gtin = f"https://id.gs1.org/01/{_key(m)}"
        return gtin if m[3] == "*" else f"{gtin}/10/{m[3].translate(_DL_UNSAFE)}"
    m = _SSCC.fullmatch(uri)
    if m and len(m[1] + m[2]) == 17:
        return f"https://id.gs1.org/00/{_key(m)}"
    m = _SGLN.fullmatch(uri)
    if m and len(m[1] + m[2]) == 12:
        raw = m[1] + m[2]
        gln = f"https://id.gs1.org/414/{raw}{check_digit(raw)}"
        return gln if m[3] in ("", "0") else f"{gln}/254/{m[3].translate(_DL_UNSAFE)}"
    m = _PGLN.fullmatch(uri)
    if m and len(m[1] + m[2]) == 12:
        raw = m[1] + m[2]
        return f"https://id.gs1.org/417/{raw}{check_digit(raw)}"
    return None


def _key(m: re.Match[str]) -> str:
    """A GTIN or SSCC from its EPC URN parts: the indicator / extension digit first, then the
    company prefix and the rest, then the check digit."""
    raw = m[2][0] + m[1] + m[2][1:]
    return f"{raw}{check_digit(raw)}"


def check_digit(digits: str) -> int:
    """The GS1 mod-10 check digit of a key without it."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return (10 - total % 10) % 10


def namespaces_of(document: dict[str, Any]) -> dict[str, str]:
    """The extension prefixes a document's ``@context`` declares."""
    context = document.get("@context", [])
    found: dict[str, str] = {}
    for entry in context if isinstance(context, list) else [context]:
        if isinstance(entry, dict):
            found.update({k: v for k, v in entry.items() if isinstance(v, str)})
    return found
