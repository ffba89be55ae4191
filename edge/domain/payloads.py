"""Payloads: what is printed for a code at each level, and reading a scan back to its serial.

Printed: a URL for QR (a GS1 Digital Link when the product has a GTIN for that level), a GS1
element string for DataMatrix (AIs 01, 17, 10, 21), ``00`` + SSCC for pallets. Read back: a
URL, a GS1 string with GS separators (with or without a symbology identifier), GS1 text as
people write it, with the AIs in parentheses (``(01)…(21)…``, ``(00)…``), or a bare serial
(typed in lower case where the alphabet has only capitals). GS1 parsing is biip's, not ours.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from edge.domain.errors import InvalidPayload
from edge.domain.serials import Scheme, SerialScheme, SsccScheme, scheme_for
from line_config.models import LEVELS, Level, Line, Product, RandomCodeFormat, SsccFormat

GS = "\x1d"
MAX_PAYLOAD = 512


@dataclass(frozen=True)
class BatchLabel:
    """What a payload may carry of its batch: lot and expiry."""

    lot: str | None = None
    expiry: dt.date | None = None


@dataclass(frozen=True)
class ParsedCode:
    """A scan reduced to what identifies it: the serial, and the level when it can be told."""

    serial: str
    level: Level | None
    gtin: str | None = None


class PayloadCodec:
    """Renders and parses the payloads of one line, for the products of its site."""

    def __init__(self, line: Line, products: list[Product]) -> None:
        self.formats = {level: line.codes.for_level(level) for level in LEVELS}
        self.schemes: dict[Level, Scheme] = {
            level: scheme_for(fmt) for level, fmt in self.formats.items()
        }
        self._gtin_level: dict[str, Level] = {}
        for product in products:
            if product.gtin_item:
                self._gtin_level[product.gtin_item] = "item"
            if product.gtin_case:
                self._gtin_level[product.gtin_case] = "case"

    def render(
        self, level: Level, serial: str, product: Product | None, label: BatchLabel
    ) -> str:
        """The payload printed for ``serial`` at ``level``."""
        fmt = self.formats[level]
        if isinstance(fmt, SsccFormat):
            return "00" + serial
        gtin = _gtin(product, level)
        if fmt.symbology == "datamatrix":
            if gtin is None:
                raise InvalidPayload("GS1 DataMatrix at {level} level needs a GTIN",
                                     level=level)
            out = "01" + gtin
            if label.expiry is not None:
                out += "17" + label.expiry.strftime("%y%m%d")
            if label.lot:
                out += "10" + label.lot + GS
            return out + "21" + serial
        return _qr_url(fmt, gtin, serial)

    def parse(self, text: str) -> ParsedCode:
        """The serial (and level, where it can be told) of what a reader or scanner returned.

        Total over every string: a value, or :class:`InvalidPayload`. The URL and GS1 parsers
        underneath (urllib, ipaddress, biip) raise their own errors on some malformed input
        (``https://[x``, ``]\x1d``); a scan is outside input, so those become InvalidPayload
        too, never an exception that ends the task that asked.
        """
        try:
            return self._parse(text)
        except InvalidPayload:
            raise
        except (ValueError, IndexError, KeyError, TypeError, AttributeError,
                ArithmeticError, _biip().ParseError) as exc:
            raise InvalidPayload("not a code of this line: {show} ({kind}: {exc})",
                                 show=_show(text), kind=type(exc).__name__,
                                 exc=exc) from None

    def _parse(self, text: str) -> ParsedCode:
        raw = text.strip("\r\n").lstrip("\ufeff")  # a UTF-8 BOM from Notepad or Excel
        if not raw or len(raw) > MAX_PAYLOAD:
            raise InvalidPayload("a payload has 1 to {most} characters, got {length}",
                                 most=MAX_PAYLOAD, length=len(raw))
        if raw.startswith(("http://", "https://", "HTTP://", "HTTPS://")):
            return self._parse_url(raw)
        if raw.startswith(("]d2", "]C1", "]Q3", "]e0")) or GS in raw:
            return self._parse_gs1(raw)
        if raw.startswith("(") and raw[1:3].isdigit():
            return self._parse_hri(raw)
        if raw.isascii() and raw.isdigit() and len(raw) > 18 and raw[:2] in ("00", "01"):
            return self._parse_gs1(raw)
        return self._parse_bare(raw)

    def _parse_url(self, raw: str) -> ParsedCode:
        for level, fmt in self.formats.items():
            if isinstance(fmt, RandomCodeFormat) and fmt.url_base and raw.startswith(fmt.url_base):
                serial = raw[len(fmt.url_base) :].split("?", 1)[0].split("#", 1)[0]
                return ParsedCode(self._checked(level, serial), level)
        biip = _biip()
        try:
            result = biip.parse(raw)
        except biip.ParseError as exc:
            raise InvalidPayload("not a code of this line: {show} ({exc})",
                                 show=_show(raw), exc=exc) from None
        if result.gs1_digital_link_uri is None:
            raise InvalidPayload(
                "URL is neither a configured base nor a GS1 Digital Link: {show}",
                show=_show(raw)
            )
        return self._from_message(result.gs1_digital_link_uri.as_gs1_message(), raw)

    def _parse_gs1(self, raw: str) -> ParsedCode:
        biip = _biip()
        try:
            result = biip.parse(raw)
        except biip.ParseError as exc:
            raise InvalidPayload("not a GS1 element string: {show} ({exc})",
                                 show=_show(raw), exc=exc) from None
        if result.gs1_message is None:
            raise InvalidPayload(
                "not a GS1 element string: {show} ({error})",
                show=_show(raw), error=result.gs1_message_error
            )
        return self._from_message(result.gs1_message, raw)

    def _parse_hri(self, raw: str) -> ParsedCode:
        """GS1 human-readable text: ``(01)06901234567892(21)ABC``."""
        biip = _biip()
        try:
            message = biip.gs1_messages.GS1Message.parse_hri(raw)
        except biip.ParseError as exc:
            raise InvalidPayload("not GS1 text with (AI)s: {show} ({exc})",
                                 show=_show(raw), exc=exc) from None
        return self._from_message(message, raw)

    def _from_message(self, message: Any, raw: str) -> ParsedCode:
        """``message``: biip's GS1Message."""
        elements = message.element_strings
        sscc = elements.get(ai="00")
        if sscc is not None:
            return ParsedCode(self._checked("pallet", sscc.value), "pallet")
        gtin_es = elements.get(ai="01")
        serial_es = elements.get(ai="21")
        if gtin_es is None or serial_es is None:
            raise InvalidPayload("GS1 data without SSCC or GTIN + serial: {show}",
                                 show=_show(raw))
        gtin = gtin_es.value
        level = self._gtin_level.get(gtin)
        if level is None:
            raise InvalidPayload("GTIN {gtin} is not a product of this site", gtin=gtin)
        return ParsedCode(self._checked(level, serial_es.value), level, gtin)

    def _parse_bare(self, raw: str) -> ParsedCode:
        fitting = [
            level for level, scheme in self.schemes.items() if scheme.problem(raw) is None
        ]
        if not fitting and raw != raw.upper():
            folded = [level for level, scheme in self.schemes.items()
                      if _capitals_only(scheme) and scheme.problem(raw.upper()) is None]
            if folded:
                return ParsedCode(raw.upper(), folded[0] if len(folded) == 1 else None)
        if not fitting:
            reasons = {scheme.problem(raw) for scheme in self.schemes.values()}
            why = "; ".join(sorted(r for r in reasons if r))
            raise InvalidPayload("not a serial of this line: {show} ({why})",
                                 show=_show(raw), why=why)
        return ParsedCode(raw, fitting[0] if len(fitting) == 1 else None)

    def _checked(self, level: Level, serial: str) -> str:
        scheme = self.schemes[level]
        problem = scheme.problem(serial)
        if problem is not None and serial != serial.upper() and _capitals_only(scheme) \
                and scheme.problem(serial.upper()) is None:
            return serial.upper()
        if problem is not None:
            raise InvalidPayload("{level} serial {show}: {problem}", level=level,
                                 show=_show(serial), problem=problem)
        return serial


def _gtin(product: Product | None, level: Level) -> str | None:
    if product is None:
        return None
    if level == "item":
        return product.gtin_item
    if level == "case":
        return product.gtin_case
    return None


def _qr_url(fmt: RandomCodeFormat, gtin: str | None, serial: str) -> str:
    if gtin is not None and fmt.resolver is not None:
        return f"{fmt.resolver.rstrip('/')}/01/{gtin}/21/{serial}"
    if fmt.url_base is None:
        raise InvalidPayload("QR without a GTIN needs url_base in the line's code format")
    return fmt.url_base + serial


def _capitals_only(scheme: Scheme) -> bool:
    """Whether a serial typed in lower case can only mean its capitals."""
    return isinstance(scheme, SerialScheme) and not any(ch.islower() for ch in scheme.alphabet)


def _show(text: str) -> str:
    """A scan quoted safely for a message: control characters escaped, long ones cut."""
    shown = text if len(text) <= 60 else text[:57] + "..."
    return repr(shown)


__all__ = [
    "GS",
    "BatchLabel",
    "ParsedCode",
    "PayloadCodec",
    "SerialScheme",
    "SsccScheme",
]


def _biip() -> ModuleType:
    """biip, imported at the first GS1 parse: it costs a command that never parses one 70 ms
    of start-up."""
    import biip

    return biip
