"""Shared building blocks of the configuration models."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

Identifier = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
]
"""Ids of lines, stations, devices, products: letters, digits, ``_ . -``; at most 64."""


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, values are frozen once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True,
                              defer_build=True)
