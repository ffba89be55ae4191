"""Every scan parses to a code or to InvalidPayload, never to another exception.

A mutation fuzzer starts from what readers really return (the line's own payloads, GS1
Digital Links, GS1 strings with symbology identifiers and GS separators, SSCCs) and breaks
them the way optics and cables do: bytes dropped, repeated, swapped, replaced by control
characters, brackets and percent signs. CI runs ``CODELINE_FUZZ_INPUTS`` inputs (default
1,000,000, about 30 s); set it higher for a longer run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.domain.errors import InvalidPayload
from edge.domain.payloads import GS, BatchLabel, PayloadCodec
from line_config.loading import example_path, load_config

CONFIG = load_config(example_path("simulated"))
CODEC = PayloadCodec(CONFIG.lines[0], CONFIG.products)
PRODUCT = CONFIG.products[0]
LABEL = BatchLabel("L2611", dt.date(2027, 11, 30))
FUZZ_INPUTS = int(os.environ.get("CODELINE_FUZZ_INPUTS", "1000000"))

TRICKY = ["[", "]", "%", "%zz", "\x1d", "]d2", "]C1", "]Q3", "]e0", "://", "//", "@", ":",
          "?", "#", "[::1]", "01", "21", "00", "(01)", "\x00", "\x7f", "\r", "\n", "é", "²",
          "\ufffd", " "]


def seeds() -> list[str]:
    """What readers return on a good day, at every level and in every form."""
    out: list[str] = []
    for level in ("item", "case", "pallet"):
        fmt = CONFIG.lines[0].codes.for_level(level)
        serial = ("0" * 17 + "5") if fmt.symbology == "sscc" else "7" * 14
        with contextlib.suppress(InvalidPayload):
            out.append(CODEC.render(level, serial, PRODUCT, LABEL))
    gtin = PRODUCT.gtin_item or "06901234567892"
    out += [f"https://id.gs1.org/01/{gtin}/21/ABC123",
            f"https://example.com/01/{gtin}/21/X?17=271130",
            f"]d201{gtin}21ABC{GS}10LOT", f"]C100{'0' * 17}5", f"01{gtin}17271130{GS}10L1{GS}21S",
            "https://[x", "]\x1d", "HTTP://C.EXAMPLE.COM/Q/ABC", "23456789ABCDEF"]
    return out


def mutate(rng: random.Random, text: str) -> str:
    chars = list(text)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        at = rng.randint(0, len(chars))
        if op == 0 and chars:
            del chars[min(at, len(chars) - 1)]
        elif op == 1:
            chars[at:at] = list(rng.choice(TRICKY))
        elif op == 2 and chars:
            chars[min(at, len(chars) - 1)] = chr(rng.randrange(0, 0x250))
        elif op == 3 and chars:
            end = min(len(chars), at + rng.randint(1, 8))
            chars[at:at] = chars[at:end]
        elif op == 4:
            chars = chars[:at]
        else:
            chars = chars[at:] + chars[:at]
    return "".join(chars)


def parses_or_refuses(text: str) -> None:
    with contextlib.suppress(InvalidPayload):
        CODEC.parse(text)


def test_mutated_scans_parse_to_a_code_or_invalid_payload() -> None:
    rng = random.Random(20261124)
    pool = seeds()
    for _ in range(FUZZ_INPUTS):
        parses_or_refuses(mutate(rng, rng.choice(pool)))


@settings(max_examples=3000, deadline=None)
@given(st.sampled_from(["", "http://", "https://", "]d2", "]C1", "01", "00", "\x1d"]),
       st.text(max_size=80))
def test_any_text_parses_to_a_code_or_invalid_payload(prefix: str, text: str) -> None:
    parses_or_refuses(prefix + text)


def test_the_inputs_that_escaped_before_are_invalid_payloads() -> None:
    for text in ("https://[x", "]\x1d", "https://[::1", "]C1\x1d\x1d"):
        with pytest.raises(InvalidPayload):
            CODEC.parse(text)
