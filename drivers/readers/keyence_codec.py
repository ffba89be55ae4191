"""Keyence SR subset (PROTOCOLS.md section 5): CR-terminated lines, no I/O.

Host → reader: ``LON``, ``LOFF`` (and other commands) ending in CR. Reader → host: ``OK,LON``
/ ``OK,LOFF`` or ``ER,<cmd>,<code>`` for commands, and one line per read: the data, the
configured error string (default ``ERROR``) for a failed read, or ``OVER`` when its buffer
overflowed. Lines that are not printable are counted as garbage and skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.framing import LineSplitter

CR = b"\r"
MAX_LINE = 4096


@dataclass(frozen=True)
class Reply:
    """``OK,<cmd>`` (code None) or ``ER,<cmd>,<code>``."""

    command: str
    code: str | None = None

    @property
    def ok(self) -> bool:
        return self.code is None


@dataclass(frozen=True)
class ReadLine:
    """A read result line: data, the error string, or OVER."""

    text: str


def encode_command(command: str) -> bytes:
    if not command or not command.isascii() or not command.isprintable():
        raise ValueError("a Keyence command is printable ASCII")
    return command.encode("ascii") + CR


def encode_reply(reply: Reply) -> bytes:
    text = f"OK,{reply.command}" if reply.ok else f"ER,{reply.command},{reply.code}"
    return text.encode("ascii") + CR


def encode_read(line: ReadLine) -> bytes:
    return line.text.encode("latin-1") + CR


class Framer(LineSplitter):
    """Splits CR lines; ``role='host'`` yields replies and reads, ``'reader'`` commands."""

    def __init__(self, role: str) -> None:
        if role not in ("host", "reader"):
            raise ValueError(role)
        super().__init__(CR, MAX_LINE)
        self.role = role

    def feed(self, data: bytes) -> list[Reply | ReadLine | str]:
        out: list[Reply | ReadLine | str] = []
        for raw in self.lines(data):
            line = raw.lstrip(b"\n").decode("latin-1")
            if not line or any(ord(c) < 0x1D for c in line):
                self.garbage += 1
                continue
            if self.role == "reader":
                out.append(line)
                continue
            parts = line.split(",")
            if parts[0] == "OK" and len(parts) == 2:
                out.append(Reply(parts[1]))
            elif parts[0] == "ER" and len(parts) == 3:
                out.append(Reply(parts[1], parts[2]))
            else:
                out.append(ReadLine(line))
        return out
