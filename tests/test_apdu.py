"""Command/response APDU encodings (ISO 7816-3 cases 1-4, short and extended) and redaction."""

from __future__ import annotations

import contextlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jpki.apdu import (
    MAX_EXTENDED_LC,
    MAX_EXTENDED_LE,
    MAX_SHORT_LC,
    MAX_SHORT_LE,
    SECRET_INS,
    SW,
    CommandApdu,
    ResponseApdu,
    redact_command,
)
from jpki.errors import ApduFormatError, JpkiError

byte = st.integers(0, 0xFF)
short_data = st.binary(min_size=0, max_size=MAX_SHORT_LC)
short_le = st.none() | st.integers(1, MAX_SHORT_LE)
ext_le = st.none() | st.integers(1, MAX_EXTENDED_LE)


@st.composite
def short_commands(draw: st.DrawFn) -> CommandApdu:
    return CommandApdu(
        draw(byte), draw(byte), draw(byte), draw(byte), draw(short_data), draw(short_le)
    )


@st.composite
def any_commands(draw: st.DrawFn) -> CommandApdu:
    # Big data built cheaply: hypothesis is slow at drawing 64 KiB of random bytes.
    big = st.integers(256, MAX_EXTENDED_LC).map(lambda n: bytes([n & 0xFF]) * n)
    data = draw(st.binary(max_size=300) | big)
    return CommandApdu(draw(byte), draw(byte), draw(byte), draw(byte), data, draw(ext_le))


# --- fixed vectors from the spec -----------------------------------------------------------


JPKI_AID = bytes.fromhex("D392F000260100000001")


@pytest.mark.parametrize(
    ("apdu", "hex_"),
    [
        (CommandApdu(0x00, 0xA4, 0x04, 0x0C, JPKI_AID), "00A4040C0AD392F000260100000001"),
        (CommandApdu(0x00, 0x20, 0x00, 0x80), "00200080"),  # case 1: empty VERIFY
        (CommandApdu(0x00, 0xB0, 0x00, 0x00, le=256), "00B0000000"),  # case 2, Le=256 as 00
        (CommandApdu(0x00, 0xB0, 0x00, 0x00, le=4), "00B0000004"),
        (CommandApdu(0x80, 0x2A, 0x00, 0x80, b"\x01\x02", 256), "802A0080020102" + "00"),
        (CommandApdu(0x00, 0xB0, 0x00, 0x00, le=65536), "00B00000000000"),  # extended case 2
        (CommandApdu(0x00, 0xB0, 0x00, 0x00, le=257), "00B00000000101"),
        (
            CommandApdu(0x80, 0x2A, 0x00, 0x80, b"\xab" * 256, 65536),
            "802A0080000100" + "AB" * 256 + "0000",
        ),
    ],
)
def test_known_encodings(apdu: CommandApdu, hex_: str) -> None:
    raw = bytes.fromhex(hex_)
    assert apdu.encode() == raw
    assert bytes(apdu) == raw
    assert CommandApdu.decode(raw) == apdu


def test_needs_extended_thresholds() -> None:
    assert not CommandApdu(0, 0, 0, 0, b"x" * 255, 256).needs_extended
    assert CommandApdu(0, 0, 0, 0, b"x" * 256).needs_extended
    assert CommandApdu(0, 0, 0, 0, le=257).needs_extended


def test_short_encoding_refused_when_lengths_need_extended() -> None:
    with pytest.raises(ApduFormatError):
        CommandApdu(0, 0, 0, 0, b"x" * 256).encode(extended=False)
    with pytest.raises(ApduFormatError):
        CommandApdu(0, 0, 0, 0, le=300).encode(extended=False)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cla": 256},
        {"ins": -1},
        {"p1": 0x100},
        {"p2": -5},
        {"le": 0},
        {"le": MAX_EXTENDED_LE + 1},
        {"data": b"x" * (MAX_EXTENDED_LC + 1)},
    ],
)
def test_constructor_validates(kwargs: dict[str, object]) -> None:
    base: dict[str, object] = {"cla": 0, "ins": 0xB0, "p1": 0, "p2": 0}
    base.update(kwargs)
    with pytest.raises(ApduFormatError):
        CommandApdu(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "hex_",
    [
        "",
        "00",
        "00A404",
        "00A4040C05D392",  # Lc=5 but 2 data bytes
        "00A4040C01D39200FF",  # Lc=1, then 3 bytes
        "00B0000000FF",  # extended marker followed by 1 byte
        "00B000000000000102",  # extended Lc=0 with data
        "00B0000000000201",  # extended Lc=2 with 1 byte
        "00B00000000002010203",  # extended Lc=2, 1 trailing byte (neither case 3 nor 4)
    ],
)
def test_decode_rejects_malformed(hex_: str) -> None:
    with pytest.raises(ApduFormatError):
        CommandApdu.decode(bytes.fromhex(hex_))


# --- properties ----------------------------------------------------------------------------


@settings(max_examples=300)
@given(short_commands())
def test_short_round_trip(apdu: CommandApdu) -> None:
    raw = apdu.encode()
    assert not apdu.needs_extended
    # Case 1: 4 bytes; case 2: 5; case 3: 5 + Lc; case 4: 6 + Lc.
    expected_len = 4 + (1 + len(apdu.data) if apdu.data else 0) + (1 if apdu.le else 0)
    assert len(raw) == expected_len
    assert CommandApdu.decode(raw) == apdu


@settings(max_examples=200)
@given(any_commands())
def test_extended_round_trip(apdu: CommandApdu) -> None:
    raw = apdu.encode(extended=True)
    assert CommandApdu.decode(raw) == apdu
    # The automatic choice also round-trips, and is short whenever that is possible.
    auto = apdu.encode()
    assert CommandApdu.decode(auto) == apdu
    if not apdu.needs_extended:
        assert len(auto) <= len(raw)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_decode_random_bytes_only_raises_apdu_format_error(raw: bytes) -> None:
    try:
        apdu = CommandApdu.decode(raw)
    except ApduFormatError:
        return
    # Whatever decodes re-encodes to the same bytes in one of the two forms.
    forms = [apdu.encode(extended=True)]
    if not apdu.needs_extended:
        forms.append(apdu.encode(extended=False))
    assert raw in forms


@settings(max_examples=200)
@given(st.binary(min_size=4, max_size=4), st.binary(min_size=1, max_size=12))
def test_decode_extended_prefix_random_body(header: bytes, tail: bytes) -> None:
    with contextlib.suppress(ApduFormatError):
        CommandApdu.decode(header + b"\x00" + tail)


# --- responses -----------------------------------------------------------------------------


@settings(max_examples=200)
@given(st.binary(max_size=600), st.integers(0, 0xFFFF))
def test_response_round_trip(data: bytes, sw: int) -> None:
    r = ResponseApdu(data, sw)
    raw = r.encode()
    assert raw == data + sw.to_bytes(2, "big")
    back = ResponseApdu.decode(raw)
    assert back == r
    assert (back.sw1, back.sw2) == (sw >> 8, sw & 0xFF)
    assert back.ok == (sw == 0x9000)


@settings(max_examples=200)
@given(st.binary(max_size=40))
def test_response_decode_random(raw: bytes) -> None:
    try:
        r = ResponseApdu.decode(raw)
    except ApduFormatError:
        assert len(raw) < 2
    else:
        assert bytes(r) == raw


@pytest.mark.parametrize("sw", [-1, 0x10000])
def test_response_sw_range(sw: int) -> None:
    with pytest.raises(ApduFormatError):
        ResponseApdu(b"", sw)


def test_response_repr_shows_sw() -> None:
    assert "6982" in repr(ResponseApdu(b"", 0x6982))


# --- status words --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sw", "text"),
    [
        (0x9000, "ok"),
        (0x6A82, "file not found"),
        (0x63C2, "2 tries left"),
        (0x63C0, "0 tries left"),
        (0x6110, "16 more bytes"),
        (0x6100, "256 more bytes"),
        (0x6C20, "exact length is 32"),
        (0x1234, "status word 1234"),
    ],
)
def test_describe(sw: int, text: str) -> None:
    assert text in SW.describe(sw)


@given(st.integers(0, 0xFFFF))
def test_describe_any(sw: int) -> None:
    assert SW.describe(sw)


def test_sw_values_from_spec() -> None:
    assert SW.SECURITY_STATUS_NOT_SATISFIED == 0x6982
    assert SW.REFERENCE_DATA_BLOCKED == 0x6984
    assert SW.WRONG_P1P2 == 0x6B00
    assert SW.INS_NOT_SUPPORTED == 0x6D00
    assert SW.CLA_NOT_SUPPORTED == 0x6E00


# --- redaction -----------------------------------------------------------------------------

_REDACTED = re.compile(
    r"[0-9A-F]{2} ?[0-9A-F]{2} ?[0-9A-F]{2} ?[0-9A-F]{2}"
    r"( \[secret\])?( Le=\d+)?"
)
pins = st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=4, max_size=16)


@settings(max_examples=200)
@given(st.sampled_from(sorted(SECRET_INS)), byte, byte, byte, pins, pins)
def test_redact_never_shows_pin(ins: int, cla: int, p1: int, p2: int, old: str, new: str) -> None:
    secret = (old + new).encode()
    for raw in (
        CommandApdu(cla, ins, p1, p2, secret).encode(),
        CommandApdu(cla, ins, p1, p2, secret, 256).encode(),
        CommandApdu(cla, ins, p1, p2, secret).encode(extended=True),
        # malformed: Lc does not match, so the decoder fails and the fallback must still hide it
        bytes([cla, ins, p1, p2, len(secret) + 3]) + secret,
        bytes([cla, ins, p1, p2]) + secret,
    ):
        text = redact_command(raw)
        # Only the 4 header bytes, a byte count and Le may appear: nothing derived from the data.
        assert _REDACTED.fullmatch(text), text
        assert old not in text.split("[", 1)[-1]


def test_redact_shows_other_commands() -> None:
    raw = CommandApdu(0x00, 0xA4, 0x04, 0x0C, JPKI_AID).encode()
    assert JPKI_AID.hex().upper() in redact_command(raw)
    assert redact_command(bytes.fromhex("00200080")) == "00 20 00 80"
    assert "secret" in redact_command(bytes.fromhex("0020008004") + b"1234")
    assert "1234" not in redact_command(bytes.fromhex("0020008004") + b"1234")


@settings(max_examples=200)
@given(st.binary(max_size=64))
def test_redact_any_bytes(raw: bytes) -> None:
    out = redact_command(raw)
    assert isinstance(out, str)
    if len(raw) > 5 and raw[1] in SECRET_INS:
        assert _REDACTED.fullmatch(out), out


def test_apdu_format_error_is_jpki_error() -> None:
    assert issubclass(ApduFormatError, JpkiError)
