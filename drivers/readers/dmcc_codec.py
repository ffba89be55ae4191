"""Cognex DMCC subset (PROTOCOLS.md section 5): bytes <-> commands and responses, no I/O.

The format is Cognex's (DataMan Communications and Programming manual, "DMCC Overview"):

* A command is ``||`` + an optional option block ``checksum:command-id`` (colon separated,
  both parts optional) + ``>`` + the command + CR LF: ``||>TRIGGER ON``, ``||0:123>TRIGGER
  ON`` (no checksum, id 123), ``||1>…`` (checksum). The first number is the checksum option
  (0 none, 1: the last byte before the footer is the XOR of the bytes before it, here every
  byte from the header's first ``|``), never a sequence number. Command words are case
  insensitive.
* In extended response mode (``SET COM.DMCC-RESPONSE 1``) the reader answers
  ``||`` + the command's own option block + ``[status]`` + payload (+ the checksum byte when
  the command asked for one) + CR LF: ``||0:123[0]``, ``||[0]ON``. Status 0 OK, 1 a read the
  reader sends on its own, 100-105 errors. In silent mode (0) a response is a bare line.
* Read data in extended mode is plain text by default, as current firmware sends it; older
  firmware references encode it in base64 (RFC 2045): the reader's ``extended_data`` setting
  says which. A result is the decoded data, optionally followed by our grade block
  ``;GRADE=B;SC=3;MOD=4;ANU=4;GNU=4;UEC=4;FPD=3``, or the configured no-read string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import reduce

from drivers.framing import LineSplitter

CRLF = b"\r\n"
MAX_LINE = 4096

OK, READ, UNIDENTIFIED, INVALID_COMMAND, INVALID_PARAMETER, BAD_CHECKSUM, REJECTED, \
    UNAVAILABLE = 0, 1, 100, 101, 102, 103, 104, 105

# the option block: checksum option and command id, both optional, colon separated
_OPTIONS = r"(?:(?P<sum>[01])?(?::(?P<id>\d{1,9}))?)"
_COMMAND = re.compile(r"^\|\|" + _OPTIONS + r">(?P<text>.+)$", re.DOTALL)
_RESPONSE = re.compile(r"^\|\|" + _OPTIONS + r"\[(?P<status>\d{1,3})\](?P<payload>.*)$",
                       re.DOTALL)
GRADE_KEYS = ("SC", "MOD", "ANU", "GNU", "UEC", "FPD")


@dataclass(frozen=True)
class Command:
    """A host command: its text, the optional command id echoed by extended responses, and
    whether it carries a checksum (``checksum_ok`` is False when the one it carried did not
    match)."""

    text: str
    id: int | None = None
    checksum: bool = False
    checksum_ok: bool = True


@dataclass(frozen=True)
class Response:
    """An extended response (``id`` and ``checksum`` echo the command's option block) or,
    with ``status`` None, a bare line."""

    payload: str
    status: int | None = None
    id: int | None = None
    checksum: bool = False


def xor(data: bytes) -> int:
    return reduce(lambda a, b: a ^ b, data, 0)


def _options(checksum: bool, ident: int | None) -> str:
    if ident is not None:
        return f"{int(checksum)}:{ident}"
    return "1" if checksum else ""


def _with_checksum(body: bytes, checksum: bool) -> bytes:
    return body + bytes([xor(body)]) + CRLF if checksum else body + CRLF


def encode_command(cmd: Command) -> bytes:
    if "\r" in cmd.text or "\n" in cmd.text or not cmd.text:
        raise ValueError("a DMCC command is one non-empty line")
    body = f"||{_options(cmd.checksum, cmd.id)}>{cmd.text}".encode("latin-1")
    return _with_checksum(body, cmd.checksum)


def encode_response(resp: Response) -> bytes:
    if "\r\n" in resp.payload:
        raise ValueError("a response payload cannot hold CR LF")
    if resp.status is None:
        return resp.payload.encode("latin-1") + CRLF
    body = f"||{_options(resp.checksum, resp.id)}[{resp.status}]{resp.payload}".encode(
        "latin-1")
    return _with_checksum(body, resp.checksum)


def _checked(raw: bytes, has_sum: bool) -> tuple[bytes, bool]:
    """The line without its checksum byte, and whether the byte matched."""
    if not has_sum:
        return raw, True
    if len(raw) < 2:
        return raw, False
    return raw[:-1], xor(raw[:-1]) == raw[-1]


class Framer(LineSplitter):
    """Splits CR LF lines; ``role='host'`` yields responses, ``'reader'`` commands."""

    def __init__(self, role: str) -> None:
        if role not in ("host", "reader"):
            raise ValueError(role)
        super().__init__(CRLF, MAX_LINE)
        self.role = role

    def feed(self, data: bytes) -> list[Command | Response]:
        out: list[Command | Response] = []
        for raw in self.lines(data):
            message = self._parse(raw)
            if message is None:
                self.garbage += 1
            else:
                out.append(message)
        return out

    def _parse(self, raw: bytes) -> Command | Response | None:
        line = raw.decode("latin-1")
        if self.role == "reader":
            m = _COMMAND.match(line)
            if m is None:
                return None
            has_sum = m.group("sum") == "1"
            body, ok = _checked(raw, has_sum)
            text = body.decode("latin-1")[m.start("text"):]
            if not text:
                return None
            ident = int(m.group("id")) if m.group("id") else None
            return Command(text, ident, has_sum, ok)
        m = _RESPONSE.match(line)
        if m is not None:
            has_sum = m.group("sum") == "1"
            body, ok = _checked(raw, has_sum)
            if not ok:
                return None  # a response the line garbled: counted, skipped
            payload = body.decode("latin-1")[m.start("payload"):]
            return Response(payload, int(m.group("status")),
                            int(m.group("id")) if m.group("id") else None, has_sum)
        if line.startswith("||") or not line or any(ord(c) < 0x1D for c in line):
            return None
        return Response(line)


def split_grade(payload: str) -> tuple[str, str | None, tuple[tuple[str, int], ...]]:
    """Data, overall grade letter and parameter grades (0-4) of a result payload."""
    head, sep, tail = payload.partition(";GRADE=")
    if not sep:
        return payload, None, ()
    parts = tail.split(";")
    grade = parts[0] if parts and parts[0] in ("A", "B", "C", "D", "F") else None
    params: list[tuple[str, int]] = []
    for part in parts[1:]:
        key, _, value = part.partition("=")
        if key in GRADE_KEYS and value.isascii() and value.isdigit() and int(value) <= 4:
            params.append((key, int(value)))
    return head, grade, tuple(params)


def grade_block(grade: str, params: dict[str, int]) -> str:
    return f";GRADE={grade}" + "".join(f";{k}={params.get(k, 4)}" for k in GRADE_KEYS)
