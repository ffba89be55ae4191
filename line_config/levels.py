"""The packaging levels by name: light enough for code that needs the names, not the models."""

from __future__ import annotations

from typing import Literal

Level = Literal["item", "case", "pallet"]
LEVELS: tuple[Level, ...] = ("item", "case", "pallet")
