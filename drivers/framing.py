"""Splitting a byte stream into terminated lines (the text protocols' common first step)."""

from __future__ import annotations


class LineSplitter:
    """Incremental splitter: complete lines out, partial ones kept, oversized ones counted."""

    def __init__(self, terminator: bytes, max_line: int) -> None:
        self.terminator = terminator
        self.max_line = max_line
        self.buffer = bytearray()
        self.garbage = 0

    def lines(self, data: bytes) -> list[bytes]:
        """Every complete line now in the buffer, without its terminator."""
        self.buffer += data
        out: list[bytes] = []
        while True:
            end = self.buffer.find(self.terminator)
            if end < 0:
                if len(self.buffer) > self.max_line:
                    self.garbage += len(self.buffer)
                    self.buffer.clear()
                return out
            out.append(bytes(self.buffer[:end]))
            del self.buffer[: end + len(self.terminator)]
