"""Every codec: decode(encode(m)) == m, and random bytes never crash it (they are counted)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.labels import zpl_codec
from drivers.printers import clarity_codec, wsi_codec
from drivers.readers import dmcc_codec

printable = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)


@given(st.sampled_from(["M", "U", "D", "Q", "H", "E", "GA", "GB", "RA", "RB", "O1", "O0", "K"]),
       st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=50))
def test_wsi_command_round_trip(kind: str, data: str) -> None:
    cmd = wsi_codec.Command(kind, data.encode())
    framer = wsi_codec.Framer("printer")
    assert framer.feed(wsi_codec.encode_command(cmd)) == [cmd]


@given(st.booleans(), st.integers(0, 255), st.lists(st.integers(0x20, 0x7E), min_size=1,
                                                   max_size=40).map(bytes))
def test_wsi_answers_round_trip(accepted: bool, checksum: int, reply: bytes) -> None:
    framer = wsi_codec.Framer("host")
    data = wsi_codec.encode_ack(wsi_codec.Ack(accepted, checksum)) + \
        wsi_codec.encode_reply(wsi_codec.Reply(reply))
    # Split anywhere: a frame torn across reads is reassembled.
    out = framer.feed(data[:2]) + framer.feed(data[2:])
    assert out == [wsi_codec.Ack(accepted, checksum), wsi_codec.Reply(reply)]


@given(st.from_regex(r"[A-Z]{3}", fullmatch=True),
       st.lists(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E,
                                               exclude_characters="|"), max_size=20),
                max_size=6))
def test_clarity_round_trip(word: str, fields: list[str]) -> None:
    message = clarity_codec.Message(word, tuple(fields))
    assert clarity_codec.Framer().feed(clarity_codec.encode(message)) == [message]


@given(printable.filter(lambda t: t.strip() != ""), st.none() | st.integers(0, 999_999),
       st.booleans())
def test_dmcc_command_round_trip(text: str, ident: int | None, checksum: bool) -> None:
    cmd = dmcc_codec.Command(text, ident, checksum)
    assert dmcc_codec.Framer("reader").feed(dmcc_codec.encode_command(cmd)) == [cmd]


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60),
       st.integers(0, 105), st.none() | st.integers(0, 999_999), st.booleans())
def test_dmcc_response_round_trip(payload: str, status: int, ident: int | None,
                                  checksum: bool) -> None:
    resp = dmcc_codec.Response(payload, status, ident, checksum)
    assert dmcc_codec.Framer("host").feed(dmcc_codec.encode_response(resp)) == [resp]


# Cognex's own examples (DataMan Communications and Programming, "DMCC Overview"): the first
# number of the option block is the checksum option, the second the command id.
COGNEX_COMMANDS = [
    (b"||>trigger on\r\n", dmcc_codec.Command("trigger on")),
    (b"||>TRIGGER ON\r\n", dmcc_codec.Command("TRIGGER ON")),
    (b"||0:123>TRIGGER ON\r\n", dmcc_codec.Command("TRIGGER ON", 123)),
    (b"||>GET SYMBOL.DATAMATRIX\r\n", dmcc_codec.Command("GET SYMBOL.DATAMATRIX")),
    (b"||>SET SYMBOL.DATAMATRIX ON\r\n", dmcc_codec.Command("SET SYMBOL.DATAMATRIX ON")),
]
COGNEX_RESPONSES = [
    (b"||0:123[0]\r\n", dmcc_codec.Response("", 0, 123)),
    (b"||[0]ON\r\n", dmcc_codec.Response("ON", 0)),
    (b"||[0]\r\n", dmcc_codec.Response("", 0)),
    (b"||0:7[101]\r\n", dmcc_codec.Response("", 101, 7)),
    (b"ON\r\n", dmcc_codec.Response("ON")),  # silent mode: no header, no footer block
]


@pytest.mark.parametrize(("wire", "command"), COGNEX_COMMANDS)
def test_dmcc_commands_as_cognex_writes_them(wire: bytes, command: dmcc_codec.Command) -> None:
    assert dmcc_codec.Framer("reader").feed(wire) == [command]
    if command.text.isupper():
        assert dmcc_codec.encode_command(command) == wire


@pytest.mark.parametrize(("wire", "response"), COGNEX_RESPONSES)
def test_dmcc_responses_as_cognex_writes_them(wire: bytes,
                                               response: dmcc_codec.Response) -> None:
    assert dmcc_codec.Framer("host").feed(wire) == [response]
    assert dmcc_codec.encode_response(response) == wire


def test_the_dmcc_checksum_is_the_xor_of_the_bytes_before_it() -> None:
    wire = dmcc_codec.encode_command(dmcc_codec.Command("TRIGGER ON", checksum=True))
    assert wire.startswith(b"||1>TRIGGER ON") and wire.endswith(b"\r\n")
    body, check = wire[:-3], wire[-3]
    assert check == dmcc_codec.xor(body)
    tampered = wire.replace(b"ON", b"OF")
    assert dmcc_codec.Framer("reader").feed(tampered)[0].checksum_ok is False  # type: ignore[union-attr]


@given(st.text(alphabet="0123456789", min_size=14, max_size=14),
       st.text(alphabet="ABCDEFGHJK0123456789", min_size=1, max_size=20))
def test_zpl_templates_round_trip_their_payload(gtin: str, serial: str) -> None:
    element = "01" + gtin + "10LOT" + zpl_codec.GS + "21" + serial
    symbols, _, quantity = zpl_codec.parse_format(
        zpl_codec.datamatrix_label(element, zpl_codec.LabelText(("x",))))
    assert symbols == [zpl_codec.Symbol("datamatrix", element)] and quantity == 1
    url = "https://c.example.com/q/" + serial
    symbols, _, _ = zpl_codec.parse_format(zpl_codec.qr_label(url, zpl_codec.LabelText(())))
    assert symbols == [zpl_codec.Symbol("qr", url)]


@given(st.integers(0, 10**18 - 1))
def test_zpl_sscc_label_round_trip(n: int) -> None:
    sscc = f"{n:018d}"
    symbols, texts, _ = zpl_codec.parse_format(zpl_codec.sscc_label(sscc, zpl_codec.LabelText(())))
    assert symbols == [zpl_codec.Symbol("code128", "00" + sscc)]


@given(st.binary(max_size=2000))
def test_random_bytes_never_crash_a_codec(noise: bytes) -> None:
    for framer in (wsi_codec.Framer("host"), wsi_codec.Framer("printer"),
                   clarity_codec.Framer(), dmcc_codec.Framer("host"), dmcc_codec.Framer("reader")):
        framer.feed(noise)
        assert framer.garbage >= 0
    zpl_codec.parse_hs(noise)
    zpl_codec.parse_odometer(noise)
    zpl_codec.parse_hqes(noise)


def test_garbage_is_counted_and_the_next_frame_still_decodes() -> None:
    framer = wsi_codec.Framer("host")
    assert framer.feed(b"\xff\x00zz$93") == [wsi_codec.Ack(True, 0x93)]
    assert framer.garbage == 4
    clarity = clarity_codec.Framer()
    assert clarity.feed(b"\x07bad line\rACK\r") == [clarity_codec.Message("ACK")]
    assert clarity.garbage == 1
    dmcc = dmcc_codec.Framer("host")
    assert dmcc.feed(b"||x[zz]\r\n||0:5[0]ok\r\n") == [dmcc_codec.Response("ok", 0, 5)]
    assert dmcc.garbage == 1


def test_wsi_checksums_match_the_manual_examples() -> None:
    assert wsi_codec.encode_ack(wsi_codec.Ack(True, wsi_codec.checksum(b"RA"))) == b"$93"
    assert wsi_codec.encode_ack(wsi_codec.Ack(True, wsi_codec.checksum(b"O1"))) == b"$80"
    assert wsi_codec.encode_ack(wsi_codec.Ack(True, wsi_codec.checksum(b"O0"))) == b"$7F"
