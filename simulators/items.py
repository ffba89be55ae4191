"""The physical items on a simulated line: what was printed on each, what a reader sees.

Printers mark the item that arrives under their head; readers read items in the order they
pass. The line simulator's conveyor drives arrivals; a test can drive them by hand.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol


class MarkingDevice(Protocol):
    """A simulated printer a product can pass: ready or not, and the product itself."""

    def ready(self) -> bool: ...

    def product_detect(self) -> None: ...


async def product_flow(device: MarkingDevice, rate: float) -> None:
    """Products pass ``device`` at ``rate`` per second while it is ready to print."""
    while True:
        await asyncio.sleep(1.0 / rate)
        if device.ready():
            device.product_detect()


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

    def show_only_latest(self, reader: str) -> None:
        """What ``reader`` has not read yet is covered by the newest item (a fresh label
        applied over, or instead of, one nobody read): its next read is the newest."""
        if self.items:
            self.cursors[reader] = len(self.items) - 1

    def printed(self) -> list[str | None]:
        return [item.code for item in self.items]

