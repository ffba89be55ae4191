"""Videojet WSI framing (PROTOCOLS.md section 1): bytes <-> messages, no I/O.

Host → printer: ``STX TYPE DATA ETX``. Printer → host: a three-byte acknowledgement, ``$XX``
(accepted) or ``!XX`` (refused), where ``XX`` is the mod-256 sum of the bytes between STX and
ETX of the command, in upper-case hex; a query's answer follows as ``STX data ETX``.
Garbage between frames is counted and skipped, never fatal.
"""

from __future__ import annotations

from dataclasses import dataclass

STX, ETX = 0x02, 0x03
LF = b"\n"
MAX_FRAME = 512


def checksum(body: bytes) -> int:
    """Mod-256 sum of a frame's body (type + data)."""
    return sum(body) & 0xFF


@dataclass(frozen=True)
class Command:
    """A host command: ``type`` is one or two letters, ``data`` the rest of the body."""

    type: str
    data: bytes = b""

    @property
    def body(self) -> bytes:
        return self.type.encode("ascii") + self.data


@dataclass(frozen=True)
class Ack:
    """The printer's answer to a command, echoing the checksum of what it heard."""

    accepted: bool
    checksum: int


@dataclass(frozen=True)
class Reply:
    """A query's answer: the bytes between STX and ETX."""

    data: bytes


def encode_command(cmd: Command) -> bytes:
    body = cmd.body
    if any(b < 0x20 and b != 0x0A or b > 0x7F for b in body):
        raise ValueError("WSI data is printable ASCII and LF only")
    return bytes([STX]) + body + bytes([ETX])


def encode_ack(ack: Ack) -> bytes:
    return (b"$" if ack.accepted else b"!") + f"{ack.checksum:02X}".encode()


def encode_reply(reply: Reply) -> bytes:
    return bytes([STX]) + reply.data + bytes([ETX])


def _parse_command(body: bytes) -> Command:
    two = body[:2]
    if two in (b"GA", b"GB", b"RA", b"RB", b"O1", b"O0"):
        return Command(two.decode(), body[2:])
    return Command(body[:1].decode("ascii", "replace"), body[1:])


class Framer:
    """Incremental decoder; ``role='host'`` reads printer output, ``'printer'`` host commands."""

    def __init__(self, role: str) -> None:
        if role not in ("host", "printer"):
            raise ValueError(role)
        self.role = role
        self.buffer = bytearray()
        self.garbage = 0

    def feed(self, data: bytes) -> list[Command | Ack | Reply]:
        self.buffer += data
        out: list[Command | Ack | Reply] = []
        buf = self.buffer
        while buf:
            head = buf[0]
            if head == STX:
                end = buf.find(ETX, 1)
                if end < 0:
                    if len(buf) > MAX_FRAME:
                        self._skip(1)
                        continue
                    break
                body = bytes(buf[1:end])
                if STX in body or any(b > 0x7F for b in body) or \
                        (not body and self.role == "host"):
                    self._skip(1)  # a torn frame: resynchronise on the next STX
                    continue
                del buf[: end + 1]
                if self.role == "printer":
                    # An empty frame is a command too (of no type): a printer answers it.
                    out.append(_parse_command(body))
                else:
                    out.append(Reply(body))
            elif self.role == "host" and head in b"$!":
                if len(buf) < 3:
                    break
                digits = bytes(buf[1:3])
                try:
                    value = int(digits.decode("ascii"), 16)
                except (UnicodeDecodeError, ValueError):
                    self._skip(1)
                    continue
                if digits.upper() != digits:
                    self._skip(1)
                    continue
                del buf[:3]
                out.append(Ack(head == ord("$"), value))
            else:
                self._skip(1)
        return out

    def _skip(self, n: int) -> None:
        del self.buffer[:n]
        self.garbage += n
