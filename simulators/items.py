"""The physical items on a simulated line: what was printed on each, what a reader sees.

Printers mark the item that arrives under their head; readers read items in the order they
pass. The line simulator's conveyor drives arrivals; a test can drive them by hand.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Item:
    """One product: its sequence number and what was printed on it (None = nothing)."""

    seq: int
    code: str | None = None


@dataclass
class ItemStream:
    """Items in the order they passed the printer; each reader keeps its own position."""

    items: list[Item] = field(default_factory=list)
    cursors: dict[str, int] = field(default_factory=dict)

    def arrive(self, code: str | None) -> Item:
        """A product passed the printer and got ``code`` (None: no print)."""
        item = Item(len(self.items) + 1, code)
        self.items.append(item)
        return item

    def next_for(self, reader: str) -> Item | None:
        """The next item in front of ``reader``, or None if none is waiting."""
        index = self.cursors.get(reader, 0)
        if index >= len(self.items):
            return None
        self.cursors[reader] = index + 1
        return self.items[index]

    def printed(self) -> list[str | None]:
        return [item.code for item in self.items]


def what_is_read(items: ItemStream, reader: str, rng: random.Random, noread_rate: float,
                 misread_rate: float) -> str | None:
    """What a reader at ``reader`` decodes from the next item: its code, another item's
    code (a misread), or None (a no-read, or nothing printed, or no item in front)."""
    item = items.next_for(reader)
    if item is None or item.code is None or rng.random() < noread_rate:
        return None
    if rng.random() < misread_rate:
        others = [i.code for i in items.items if i.code and i.code != item.code]
        return rng.choice(others) if others else None
    return item.code
