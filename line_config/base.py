"""Shared building blocks of the configuration models."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, StringConstraints

Identifier = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
]
"""Ids of lines, stations, devices, products: letters, digits, ``_ . -``; at most 64."""


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, values are frozen once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True,
                              defer_build=True)


def check_http_base(value: str | None) -> str | None:
    """An http(s) base URL: scheme and host, no query or fragment."""
    if value is None:
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("expected an http(s) URL such as https://c.example.com/q/")
    if parts.query or parts.fragment:
        raise ValueError("the base URL must not carry a query or fragment")
    return value
