"""A group of code ids as one compact value: sorted deltas, compressed (the ids of one
group lie close together, so most deltas are 1)."""

from __future__ import annotations

import zlib
from array import array
from collections.abc import Sequence


def pack(code_ids: Sequence[int]) -> bytes:
    ordered = sorted(code_ids)
    deltas = array("q", (b - a for a, b in zip([0, *ordered[:-1]], ordered, strict=True)))
    return zlib.compress(deltas.tobytes(), 1)


def unpack(blob: bytes) -> list[int]:
    deltas = array("q")
    deltas.frombytes(zlib.decompress(blob))
    total = 0
    out = []
    for delta in deltas:
        total += delta
        out.append(total)
    return out
