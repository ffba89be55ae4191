"""ZPL subset (PROTOCOLS.md section 4): label templates, and parsing what the printer answers.

Templates render case and pallet labels with ``^BX`` (GS1 DataMatrix, ``_1`` as the FNC1
escape), ``^BQ`` (QR) or ``^BC`` (Code 128 with FNC1 for GS1-128) plus human-readable text.
Status parsing covers ``~HS`` (three STX..ETX strings), ``~HQES`` and the SGD odometer reply.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

GS = "\x1d"
ODOMETER_QUERY = b'! U1 getvar "odometer.total_label_count"\r\n'
HS_QUERY = b"~HS"
HQES_QUERY = b"~HQES"

ERROR_BITS = {0x01: "media out", 0x02: "ribbon out", 0x04: "head open", 0x08: "cutter fault",
              0x10: "head over temperature"}
WARNING_BITS = {0x02: "clean print head", 0x08: "paper near end"}


def _field_text(text: str) -> str:
    """Field data safe inside ^FD..^FS (ZPL control characters dropped)."""
    return "".join(ch for ch in text if ch not in "^~" and ch.isprintable())


def gs1_field(element_string: str) -> str:
    """A GS1 element string as ^BX field data: leading FNC1, GS separators as ``_1``."""
    return "_1" + element_string.replace(GS, "_1")


@dataclass(frozen=True)
class LabelText:
    """Human-readable lines printed beside the symbol."""

    lines: tuple[str, ...]


# Layouts are drawn for 203 dpi (8 dots/mm); a 300 or 600 dpi printer gets every size in
# dots scaled, so that the label and its symbols keep their size in millimetres.
BASE_DPI = 203


def _dots(n: int, dpi: int) -> int:
    return max(1, round(n * dpi / BASE_DPI))


def datamatrix_label(element_string: str, text: LabelText, module: int = 8,
                     dpi: int = BASE_DPI) -> str:
    """A case label carrying a GS1 DataMatrix."""
    d = functools.partial(_dots, dpi=dpi)
    body = [f"^FO{d(40)},{d(40)}^BXN,{d(module)},200,0,0,6,_^FD{gs1_field(element_string)}^FS"]
    body += _text_lines(text, x=260, dpi=dpi)
    return "^XA" + "".join(body) + "^PQ1^XZ"


def qr_label(data: str, text: LabelText, magnification: int = 6, dpi: int = BASE_DPI) -> str:
    """A label carrying a QR code (URL payloads); ^BQ's magnification is at most 10."""
    d = functools.partial(_dots, dpi=dpi)
    body = [f"^FO{d(40)},{d(40)}^BQN,2,{min(10, d(magnification))}^FDQA,"
            f"{_field_text(data)}^FS"]
    body += _text_lines(text, x=300, dpi=dpi)
    return "^XA" + "".join(body) + "^PQ1^XZ"


def sscc_label(sscc: str, text: LabelText, dpi: int = BASE_DPI) -> str:
    """A pallet label: GS1-128 of AI 00 + SSCC, and the SSCC in clear text."""
    if len(sscc) != 18 or not (sscc.isascii() and sscc.isdigit()):
        raise ValueError("an SSCC has 18 digits")
    d = functools.partial(_dots, dpi=dpi)
    body = [f"^FO{d(60)},{d(300)}^BY{min(10, d(3))}^BCN,{d(200)},N,N,N,D^FD(00){sscc}^FS",
            f"^FO{d(60)},{d(520)}^A0N,{d(40)},{d(40)}^FD(00) {sscc}^FS"]
    body += _text_lines(text, x=60, y=40, dpi=dpi)
    return "^XA" + "".join(body) + "^PQ1^XZ"


def _text_lines(text: LabelText, x: int, y: int = 40, dpi: int = BASE_DPI) -> list[str]:
    d = functools.partial(_dots, dpi=dpi)
    return [f"^FO{d(x)},{d(y + 40 * i)}^A0N,{d(30)},{d(30)}^FD{_field_text(line)}^FS"
            for i, line in enumerate(text.lines[:8])]


@dataclass(frozen=True)
class HostStatus:
    """The fields of ``~HS`` a host acts on."""

    paper_out: bool
    paused: bool
    buffer_full: bool
    head_up: bool
    ribbon_out: bool
    labels_remaining: int


_FRAME = re.compile(rb"\x02([^\x02\x03]*)\x03\r\n")


def parse_hs(data: bytes) -> HostStatus | None:
    """Parse the three ``~HS`` strings; None until all three are there."""
    frames = _FRAME.findall(data)
    if len(frames) < 3:
        return None
    one = frames[0].decode("ascii").split(",")
    two = frames[1].decode("ascii").split(",")
    if len(one) < 12 or len(two) < 11:
        raise ValueError("~HS answer too short")
    return HostStatus(paper_out=one[1] == "1", paused=one[2] == "1", buffer_full=one[5] == "1",
                      head_up=two[2] == "1", ribbon_out=two[3] == "1",
                      labels_remaining=int(two[8]))


_HQES = re.compile(rb"ERRORS:\s+(\d)\s+([0-9A-Fa-f]{8})\s+([0-9A-Fa-f]{8}).*?"
                   rb"WARNINGS:\s+(\d)\s+([0-9A-Fa-f]{8})\s+([0-9A-Fa-f]{8})", re.DOTALL)


def parse_hqes(data: bytes) -> tuple[list[str], list[str]] | None:
    """Errors and warnings named from the ``~HQES`` bit fields; None if incomplete."""
    m = _HQES.search(data)
    if m is None:
        return None
    errors = int(m.group(3), 16)
    warnings = int(m.group(6), 16)
    return ([name for bit, name in ERROR_BITS.items() if errors & bit],
            [name for bit, name in WARNING_BITS.items() if warnings & bit])


_QUOTED = re.compile(rb'"(\d+)"')


def parse_odometer(data: bytes) -> int | None:
    m = _QUOTED.search(data)
    return int(m.group(1)) if m else None


def encode_hs(status: HostStatus) -> bytes:
    one = (f"030,{int(status.paper_out)},{int(status.paused)},1245,000,"
           f"{int(status.buffer_full)},0,0,000,0,0,0")
    two = (f"001,0,{int(status.head_up)},{int(status.ribbon_out)},1,2,6,0,"
           f"{status.labels_remaining:08d},0,000")
    three = "1234,0"
    return b"".join(b"\x02" + s.encode() + b"\x03\r\n" for s in (one, two, three))


def encode_hqes(errors: int, warnings: int) -> bytes:
    return (f"\x02\r\n  PRINTER STATUS\r\n   ERRORS:         {int(errors > 0)} 00000000 "
            f"{errors:08X}\r\n   WARNINGS:       {int(warnings > 0)} 00000000 {warnings:08X}"
            "\r\n\x03\r\n").encode()


@dataclass(frozen=True)
class Symbol:
    """A barcode in a label format: kind (datamatrix, qr, code128) and its data."""

    kind: str
    data: str


_CMD = re.compile(r"\^([A-Z][A-Z0-9@])([^\^~]*)")


def parse_format(fmt: str) -> tuple[list[Symbol], list[str], int]:
    """Symbols (FNC1 escapes resolved), text fields and quantity of one ^XA..^XZ format."""
    symbols: list[Symbol] = []
    texts: list[str] = []
    quantity = 1
    pending: str | None = None
    escape = None
    for name, args in _CMD.findall(fmt):
        if name == "BX":
            parts = args.split(",")
            pending, escape = "datamatrix", (parts[6] if len(parts) > 6 and parts[6] else None)
        elif name == "BQ":
            pending, escape = "qr", None
        elif name == "BC":
            pending, escape = "code128", None
        elif name == "PQ":
            head = args.split(",")[0]
            quantity = int(head) if head.isascii() and head.isdigit() else 1
        elif name == "FD":
            if pending is None:
                texts.append(args)
                continue
            data = args
            if pending == "datamatrix" and escape:
                fnc1 = escape + "1"
                if data.startswith(fnc1):
                    data = data[len(fnc1):]
                data = data.replace(fnc1, GS)
            elif pending == "qr" and len(data) > 3 and data[1:3] in ("A,", "M,"):
                data = data[3:]
            elif pending == "code128" and data.startswith("(00)"):
                data = "00" + data[4:]
            symbols.append(Symbol(pending, data))
            pending = None
    return symbols, texts, quantity
