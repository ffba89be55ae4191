"""CLARiTY text framing (PROTOCOLS.md section 2): bytes <-> lines of fields, no I/O.

A message is a three-letter command or reply followed by ``|``-separated fields, each field
list ending with a trailing ``|``, and the line ending in CR: ``SEL|JOB1|\\r``, ``ACK\\r``.
Lines that are not of that shape are counted as garbage and skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from drivers.framing import LineSplitter

CR = b"\r"
MAX_LINE = 1 << 16
_WORD = re.compile(r"^[A-Z]{3}$")

ASYNC_CODES = frozenset({"PRS", "PRC", "OUT", "ERS"})


@dataclass(frozen=True)
class Message:
    """One line: a command or reply word and its fields."""

    word: str
    fields: tuple[str, ...] = ()

    @property
    def is_async(self) -> bool:
        """An unsolicited notification (state change ``STS|n|`` has exactly one field)."""
        return self.word in ASYNC_CODES or (self.word == "STS" and len(self.fields) == 1)


def encode(message: Message) -> bytes:
    if not _WORD.match(message.word):
        raise ValueError(f"not a CLARiTY word: {message.word!r}")
    for f in message.fields:
        if "|" in f or "\r" in f or not f.isascii():
            raise ValueError(f"a CLARiTY field holds ASCII without '|' or CR: {f!r}")
    text = message.word + "".join("|" + f for f in message.fields)
    if message.fields:
        text += "|"
    return text.encode("ascii") + CR


def _decode_line(line: bytes) -> Message | None:
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        return None
    if not text.isprintable():
        return None
    parts = text.split("|")
    if not _WORD.match(parts[0]):
        return None
    if len(parts) == 1:
        return Message(parts[0])
    if parts[-1] != "":
        return None  # a field list must end with '|'
    return Message(parts[0], tuple(parts[1:-1]))


class Framer(LineSplitter):
    """Incremental decoder of CR-terminated lines."""

    def __init__(self) -> None:
        super().__init__(CR, MAX_LINE)

    def feed(self, data: bytes) -> list[Message]:
        out: list[Message] = []
        for raw in self.lines(data):
            line = raw.lstrip(b"\n")
            if not line:
                continue
            message = _decode_line(line)
            if message is None:
                self.garbage += 1
            else:
                out.append(message)
        return out
