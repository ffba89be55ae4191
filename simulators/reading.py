"""What every simulated code reader shares: its fault settings and what it decodes."""

from __future__ import annotations

import random

from pydantic import BaseModel, ConfigDict, Field

from simulators.items import ItemStream

Rate = float


class ReaderFaults(BaseModel):
    """Settings every reader simulator takes; each protocol adds its own."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    name: str = Field(default="reader", description="its position on the line (item cursor)")
    noread_rate: Rate = Field(default=0.0, ge=0, le=1)
    misread_rate: Rate = Field(default=0.0, ge=0, le=1, description="a valid but other code")
    duplicate_rate: Rate = Field(default=0.0, ge=0, le=1, description="result sent twice")
    repeat_rate: Rate = Field(default=0.0, ge=0, le=1,
                              description="the previous item's code read again (a duplicate)")
    garbage_rate: Rate = Field(default=0.0, ge=0, le=1, description="a garbage line first")
    disconnect_after: int = Field(default=0, ge=0, description="drop the link after N reads")
    split_writes: bool = Field(default=False, description="send every answer in two parts")


def what_is_read(items: ItemStream, reader: str, rng: random.Random, noread_rate: float,
                 misread_rate: float, repeat_rate: float = 0.0) -> str | None:
    """What a reader at ``reader`` decodes from the next item: its code, another item's
    code (a misread), or None (a no-read, or nothing printed, or no item in front)."""
    item = items.next_for(reader)
    if item is None or item.code is None or rng.random() < noread_rate:
        return None
    if repeat_rate and item.seq > 1 and rng.random() < repeat_rate:
        previous = items.items[item.seq - 2].code
        if previous is not None:
            return previous
    if rng.random() < misread_rate:
        others = [i.code for i in items.items if i.code and i.code != item.code]
        return rng.choice(others) if others else None
    return item.code
