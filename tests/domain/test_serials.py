"""Serials, check characters, SSCCs and payloads."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum import ean

from edge.domain.errors import InvalidPayload
from edge.domain.payloads import GS, BatchLabel, PayloadCodec
from edge.domain.serials import CheckCharacter, SerialScheme, SsccScheme
from line_config.models import DEFAULT_ALPHABET, Line, SerialFormat, SiteConfig

ALPHABETS = [
    DEFAULT_ALPHABET,  # 32: GF(2^5)
    "0123456789ABCDEFGHJKLMNPQRSTUVWXY",  # 33: odd
    "0123456789ABCDEFGHIJKLMNPQRSTUVWXYZ",  # 35: odd
    "0123456789ABCDEF",  # 16: GF(2^4)
    "01234567",  # 8
    "0123456789A",  # 11
    "ABC",  # 3
]


@st.composite
def word_and_position(draw: st.DrawFn, alphabet: str) -> tuple[str, int]:
    data = draw(st.text(alphabet=alphabet, min_size=2, max_size=24))
    word = data + CheckCharacter(alphabet).compute(data)
    return word, draw(st.integers(0, len(word) - 1))


@pytest.mark.parametrize("alphabet", ALPHABETS, ids=lambda a: f"n{len(a)}")
def test_check_character_catches_every_single_substitution(alphabet: str) -> None:
    check = CheckCharacter(alphabet)

    @settings(max_examples=300, deadline=None)
    @given(word_and_position(alphabet), st.integers(1, len(alphabet) - 1))
    def prop(wp: tuple[str, int], shift: int) -> None:
        word, pos = wp
        assert check.is_valid(word)
        wrong = alphabet[(alphabet.index(word[pos]) + shift) % len(alphabet)]
        assert not check.is_valid(word[:pos] + wrong + word[pos + 1 :])

    prop()


@pytest.mark.parametrize("alphabet", ALPHABETS, ids=lambda a: f"n{len(a)}")
def test_check_character_catches_every_adjacent_transposition(alphabet: str) -> None:
    check = CheckCharacter(alphabet)

    @settings(max_examples=300, deadline=None)
    @given(word_and_position(alphabet))
    def prop(wp: tuple[str, int]) -> None:
        word, pos = wp
        pos = min(pos, len(word) - 2)
        a, b = word[pos], word[pos + 1]
        swapped = word[:pos] + b + a + word[pos + 2 :]
        assert check.is_valid(swapped) == (a == b)

    prop()


@pytest.mark.parametrize("alphabet", ["0123456", "01234567"])
def test_every_adjacent_swap_is_caught_exhaustively_for_small_alphabets(alphabet: str) -> None:
    """Every (x, y) pair at every position of short words, check character included."""
    check = CheckCharacter(alphabet)
    for x in alphabet:
        for y in alphabet:
            for prefix in ("", "3", "45"):
                word = prefix + x + y
                word += check.compute(word)
                for i in range(len(word) - 1):
                    if word[i] != word[i + 1]:
                        swapped = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
                        assert not check.is_valid(swapped)


def test_default_serials_carry_at_least_sixty_bits() -> None:
    fmt = SerialFormat()
    assert fmt.length * math.log2(len(fmt.alphabet)) >= 60
    scheme = SerialScheme.from_config(fmt)
    drawn = scheme.draw(2000)
    assert len(set(drawn)) == 2000
    assert all(scheme.problem(s) is None for s in drawn)
    assert {len(s) for s in drawn} == {fmt.length + 1}


def test_serial_draws_use_every_character_of_the_alphabet() -> None:
    scheme = SerialScheme.from_config(SerialFormat())
    seen = set("".join(s[:-1] for s in scheme.draw(500)))
    assert seen == set(scheme.alphabet)


@given(st.integers(0, 10**9 - 1))
def test_sscc_check_digit_matches_python_stdnum(reference: int) -> None:
    sscc = SsccScheme(extension_digit=3, company_prefix="6901234").make(reference)
    assert len(sscc) == 18
    assert sscc[-1] == ean.calc_check_digit(sscc[:17])
    assert SsccScheme(3, "6901234").problem(sscc) is None


def test_gtins_of_the_examples_check_with_python_stdnum(site: SiteConfig) -> None:
    for product in site.products:
        assert product.gtin_item and ean.is_valid(product.gtin_item)
        assert product.gtin_case and ean.is_valid(product.gtin_case)


@settings(max_examples=60, deadline=None)
@given(
    lot=st.text(alphabet="ABCDEFGHJK0123456789-", min_size=1, max_size=20),
    expiry=st.dates(dt.date(2000, 1, 1), dt.date(2099, 12, 31)) | st.none(),
    level=st.sampled_from(["item", "case", "pallet"]),
)
def test_every_rendered_payload_parses_back_to_its_serial(
    line: Line, site: SiteConfig, lot: str, expiry: dt.date | None, level: str
) -> None:
    codec = PayloadCodec(line, site.products)
    scheme = codec.schemes[level]  # type: ignore[index]
    serial = scheme.make(42) if isinstance(scheme, SsccScheme) else scheme.draw(1)[0]
    payload = codec.render(level, serial, site.products[0], BatchLabel(lot, expiry))  # type: ignore[arg-type]
    parsed = codec.parse(payload)
    assert parsed.serial == serial
    assert parsed.level == level
    if level != "item":  # symbology identifier prefix, as a reader may send it
        assert codec.parse("]d2" + payload).serial == serial


def test_gs1_datamatrix_payload_has_the_ais_in_order(line: Line, site: SiteConfig) -> None:
    codec = PayloadCodec(line, site.products)
    payload = codec.render("case", "ABCDEFGHJKLMN2", site.products[0],
                           BatchLabel("L7", dt.date(2027, 5, 1)))
    assert payload == "0116901234567899" + "17270501" + "10L7" + GS + "21ABCDEFGHJKLMN2"


def test_digital_link_is_used_when_a_resolver_and_gtin_are_configured(site: SiteConfig) -> None:
    line = site.lines[0].model_copy(update={"codes": site.lines[0].codes.model_copy(update={
        "item": site.lines[0].codes.item.model_copy(update={"resolver": "https://id.example.com",
                                                             "url_base": None})})})
    codec = PayloadCodec(line, site.products)
    serial = codec.schemes["item"].draw(1)[0]  # type: ignore[union-attr]
    url = codec.render("item", serial, site.products[0], BatchLabel())
    assert url == f"https://id.example.com/01/06901234567892/21/{serial}"
    assert codec.parse(url).serial == serial


@pytest.mark.parametrize("scan", [
    "", "x" * 10_000, "'; DROP TABLE codes; --", "ＡＢＣ", "\x00\x01", "https://evil.example/q/X",
    "0106901234567892" + "21" + "TOOLONGSERIAL1234567890",
])
def test_hostile_scans_are_refused_with_a_clear_error(line: Line, site: SiteConfig,
                                                      scan: str) -> None:
    with pytest.raises(InvalidPayload):
        PayloadCodec(line, site.products).parse(scan)


def test_a_one_character_misread_of_a_bare_serial_is_refused(line: Line, site: SiteConfig) -> None:
    codec = PayloadCodec(line, site.products)
    serial = codec.schemes["item"].draw(1)[0]  # type: ignore[union-attr]
    wrong = ("3" if serial[4] != "3" else "4")
    with pytest.raises(InvalidPayload, match="check character"):
        codec.parse(serial[:4] + wrong + serial[5:])
