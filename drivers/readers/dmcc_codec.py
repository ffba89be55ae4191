"""Cognex DMCC subset (PROTOCOLS.md section 5): bytes <-> commands and responses, no I/O.

Commands: ``||[<id>]>COMMAND args\\r\\n`` (the id is optional). In extended response mode
(``SET COM.DMCC-RESPONSE 1``) the reader answers ``||<id>[<status>]<payload>\\r\\n``; a read
it starts itself arrives with status 1; ours carries the id of the trigger that caused it
(``||7[1]data``). In silent mode a result is a bare line. A result is
the decoded data, optionally followed by our grade block
``;GRADE=B;SC=3;MOD=4;ANU=4;GNU=4;UEC=4;FPD=3``, or the configured no-read string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from drivers.framing import LineSplitter

CRLF = b"\r\n"
MAX_LINE = 4096

OK, READ, UNIDENTIFIED, INVALID_COMMAND, INVALID_PARAMETER, BAD_CHECKSUM, REJECTED, \
    UNAVAILABLE = 0, 1, 100, 101, 102, 103, 104, 105

_COMMAND = re.compile(r"^\|\|(?:(\d{1,6}))?>(.+)$")
_RESPONSE = re.compile(r"^\|\|(\d{0,6})\[(\d{1,3})\](.*)$", re.DOTALL)
GRADE_KEYS = ("SC", "MOD", "ANU", "GNU", "UEC", "FPD")


@dataclass(frozen=True)
class Command:
    """A host command, with an optional id echoed by extended responses."""

    text: str
    id: int | None = None


@dataclass(frozen=True)
class Response:
    """An extended response (``id`` may be None) or, with ``status`` None, a bare line."""

    payload: str
    status: int | None = None
    id: int | None = None


def encode_command(cmd: Command) -> bytes:
    if "\r" in cmd.text or "\n" in cmd.text or not cmd.text:
        raise ValueError("a DMCC command is one non-empty line")
    ident = "" if cmd.id is None else str(cmd.id)
    return f"||{ident}>{cmd.text}".encode("latin-1") + CRLF


def encode_response(resp: Response) -> bytes:
    if "\r\n" in resp.payload:
        raise ValueError("a response payload cannot hold CR LF")
    if resp.status is None:
        return resp.payload.encode("latin-1") + CRLF
    ident = "" if resp.id is None else str(resp.id)
    return f"||{ident}[{resp.status}]{resp.payload}".encode("latin-1") + CRLF


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
            message = self._parse(raw.decode("latin-1"))
            if message is None:
                self.garbage += 1
            else:
                out.append(message)
        return out

    def _parse(self, line: str) -> Command | Response | None:
        if self.role == "reader":
            m = _COMMAND.match(line)
            if m is None:
                return None
            return Command(m.group(2), int(m.group(1)) if m.group(1) else None)
        m = _RESPONSE.match(line)
        if m is not None:
            return Response(m.group(3), int(m.group(2)), int(m.group(1)) if m.group(1) else None)
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
