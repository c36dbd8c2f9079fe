"""CardProtocol against scripted and file-serving fake connections (unit level)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jpki.apdu import CommandApdu
from jpki.card.protocol import CHUNK, CardProtocol, sw_error
from jpki.errors import (
    ApduError,
    CardError,
    FileNotFoundOnCardError,
    LastTryWrongPin,
    PinBlocked,
    SecurityStatusError,
    UsageError,
    WrongPin,
)
from jpki.transport.base import Connection


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


class Scripted(Connection):
    """Answers a fixed script; ``expected=None`` accepts any command. Records what was sent."""

    def __init__(self, *pairs: tuple[bytes | None, bytes]) -> None:
        self.pairs = list(pairs)
        self.sent: list[bytes] = []

    @property
    def atr(self) -> bytes:
        return h("3BE000FF8131FE4514")

    def _transmit(self, command: bytes) -> bytes:
        self.sent.append(command)
        assert self.pairs, f"unexpected command {command.hex()}"
        expected, response = self.pairs.pop(0)
        if expected is not None:
            assert command.hex() == expected.hex()
        return response

    def close(self) -> None:
        pass


class FileCard(Connection):
    """Serves EFs by SELECT / READ BINARY like the spec says; optional quirks.

    ``limit``: most bytes a READ returns (a stingy card/NFC stack). ``chain``: answer READ with
    61xx and hand the data out through GET RESPONSE in ``chain``-byte pieces. ``exact_le``:
    answer 6Cxx when Le exceeds what is left (instead of a short tail).
    """

    def __init__(
        self,
        files: dict[int, bytes],
        *,
        limit: int = 256,
        chain: int = 0,
        exact_le: bool = False,
    ) -> None:
        self.files = files
        self.limit = limit
        self.chain = chain
        self.exact_le = exact_le
        self.current: bytes | None = None
        self.pending = b""
        self.sent: list[bytes] = []

    @property
    def atr(self) -> bytes:
        return b"\x3b\x00"

    def close(self) -> None:
        pass

    def _transmit(self, command: bytes) -> bytes:
        self.sent.append(command)
        apdu = CommandApdu.decode(command)
        if apdu.ins == 0xA4 and apdu.p1 == 0x04:
            return h("9000")
        if apdu.ins == 0xA4 and apdu.p1 == 0x02:
            fid = int.from_bytes(apdu.data, "big")
            if fid not in self.files:
                return h("6A82")
            self.current = self.files[fid]
            return h("9000")
        if apdu.ins == 0xC0:
            le = apdu.le or 256
            out, self.pending = self.pending[:le], self.pending[le:]
            rest = len(self.pending)
            return out + (bytes([0x61, min(rest, self.chain) & 0xFF]) if rest else h("9000"))
        if apdu.ins == 0xB0:
            assert self.current is not None
            assert not apdu.p1 & 0x80, "offset must never set P1's high bit"
            offset = (apdu.p1 << 8) | apdu.p2
            if offset >= len(self.current):
                return h("6B00")
            le = apdu.le or 256
            left = len(self.current) - offset
            if self.exact_le and le > left:
                return bytes([0x6C, left & 0xFF])
            data = self.current[offset : offset + min(le, self.limit)]
            if self.chain:
                self.pending = data[self.chain :]
                first = data[: self.chain]
                return first + bytes([0x61, min(len(self.pending), self.chain) & 0xFF])
            return data + h("9000")
        return h("6D00")


def der(length: int, form: int | None = None) -> bytes:
    """A SEQUENCE with ``length`` value bytes, its length in long form ``form`` (1-4 bytes)."""
    value = bytes(i % 251 for i in range(length))
    if form is None:
        assert length < 128
        return b"\x30" + bytes([length]) + value
    return b"\x30" + bytes([0x80 | form]) + length.to_bytes(form, "big") + value


# --- chaining and Le ----------------------------------------------------------------------


def test_61xx_chain_is_followed_and_concatenated() -> None:
    conn = Scripted(
        (h("80 2A 00 80 01 AA 00"), h("0102 6110")),
        (h("00 C0 00 00 10"), bytes(range(16)) + h("6105")),
        (h("00 C0 00 00 05"), b"\xee" * 5 + h("9000")),
    )
    resp = CardProtocol(conn).transmit(CommandApdu(0x80, 0x2A, 0, 0x80, b"\xaa", le=256))
    assert resp.sw == 0x9000
    assert resp.data == h("0102") + bytes(range(16)) + b"\xee" * 5


def test_61_00_means_256_more_bytes() -> None:
    conn = Scripted((None, h("6100")), (h("00C0000000"), b"\x01" * 256 + h("9000")))
    assert len(CardProtocol(conn).send(CommandApdu(0, 0xCA, 0, 0, le=256))) == 256


def test_61xx_forever_is_a_card_error_and_bounded() -> None:
    class Forever(Scripted):
        def _transmit(self, command: bytes) -> bytes:
            self.sent.append(command)
            return h("6110")

    conn = Forever()
    with pytest.raises(CardError, match="61xx"):
        CardProtocol(conn, max_chain=10).send(CommandApdu(0, 0xB0, 0, 0, le=16))
    assert len(conn.sent) == 11


def test_6cxx_resends_with_exact_le() -> None:
    conn = Scripted((h("00 B0 00 00 00"), h("6C11")), (h("00 B0 00 00 11"), b"x" * 17 + h("9000")))
    assert CardProtocol(conn).read_binary(0, 256) == b"x" * 17


def test_6cxx_then_61xx() -> None:
    conn = Scripted(
        (h("00 B0 00 00 00"), h("6C20")),
        (h("00 B0 00 00 20"), b"a" * 16 + h("6110")),
        (h("00 C0 00 00 10"), b"b" * 16 + h("9000")),
    )
    assert CardProtocol(conn).read_binary(0, 256) == b"a" * 16 + b"b" * 16


def test_6cxx_forever_is_bounded() -> None:
    conn = Scripted(*[(None, h("6C10"))] * 3)
    with pytest.raises(ApduError) as err:
        CardProtocol(conn, max_resend=2).read_binary(0, 256)
    assert err.value.sw == 0x6C10
    assert len(conn.sent) == 3


def test_verify_is_never_resent_on_6cxx() -> None:
    conn = Scripted((h("00 20 00 80 04 31323334"), h("6C04")))
    with pytest.raises(ApduError):
        CardProtocol(conn).send(CommandApdu(0, 0x20, 0, 0x80, b"1234"))
    assert len(conn.sent) == 1


# --- status words -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sw", "exc"),
    [
        (0x6982, SecurityStatusError),
        (0x6A82, FileNotFoundOnCardError),
        (0x63C2, WrongPin),
        (0x63C0, LastTryWrongPin),
        (0x6984, PinBlocked),
        (0x6983, PinBlocked),
        (0x6A86, ApduError),
        (0x6700, ApduError),
        (0x6D00, ApduError),
    ],
)
def test_status_word_mapping(sw: int, exc: type[ApduError]) -> None:
    conn = Scripted((None, sw.to_bytes(2, "big")))
    with pytest.raises(exc) as err:
        CardProtocol(conn).send(CommandApdu(0, 0xB0, 0, 0, le=1))
    assert err.value.sw == sw
    assert type(err.value) is exc


def test_wrong_pin_carries_tries() -> None:
    err = sw_error(0x63C2)
    assert isinstance(err, WrongPin) and err.retries_left == 2
    last = sw_error(0x63C0)
    assert isinstance(last, WrongPin) and isinstance(last, PinBlocked) and last.retries_left == 0


@pytest.mark.parametrize("raw", [b"", b"\x90"])
def test_response_without_status_word_is_card_error(raw: bytes) -> None:
    with pytest.raises(CardError, match="status word"):
        CardProtocol(Scripted((None, raw))).send(CommandApdu(0, 0xB0, 0, 0, le=1))


def test_check_false_returns_status() -> None:
    resp = CardProtocol(Scripted((None, h("6A82")))).transmit(
        CommandApdu(0, 0xA4, 2, 0x0C, b"\0\1"), check=False
    )
    assert resp.sw == 0x6A82


# --- SELECT and READ BINARY ---------------------------------------------------------------


def test_select_encodings() -> None:
    conn = Scripted(
        (h("00 A4 04 0C 0A D392F000260100000001"), h("9000")),
        (h("00 A4 02 0C 02 000A"), h("9000")),
    )
    proto = CardProtocol(conn)
    proto.select_df(h("D392F000260100000001"))
    assert proto.selected_df == h("D392F000260100000001")
    proto.select_ef(0x000A)


def test_select_unknown_df_raises_and_forgets_df() -> None:
    proto = CardProtocol(Scripted((None, h("6A82"))))
    with pytest.raises(FileNotFoundOnCardError):
        proto.select_df(b"\xd3\x92")
    assert proto.selected_df is None


@pytest.mark.parametrize(
    ("offset", "length", "apdu"),
    [(0, 256, "00B0000000"), (0x1234, 4, "00B0123404"), (0x7FFF, 1, "00B07FFF01")],
)
def test_read_binary_encoding(offset: int, length: int, apdu: str) -> None:
    conn = Scripted((h(apdu), b"\x00" + h("9000")))
    CardProtocol(conn).read_binary(offset, length)


@pytest.mark.parametrize(("offset", "length"), [(0x8000, 1), (-1, 1), (0, 0), (0, 257)])
def test_read_binary_rejects_bad_arguments_without_sending(offset: int, length: int) -> None:
    conn = Scripted()
    with pytest.raises(UsageError):
        CardProtocol(conn).read_binary(offset, length)
    assert conn.sent == []


def test_read_binary_accepts_6282_warning_with_data() -> None:
    assert CardProtocol(Scripted((None, b"ab" + h("6282")))).read_binary(0, 10) == b"ab"


def test_read_binary_more_than_asked_is_card_error() -> None:
    with pytest.raises(CardError):
        CardProtocol(Scripted((None, b"abc" + h("9000")))).read_binary(0, 2)


@pytest.mark.parametrize(
    ("length", "form"),
    [(5, None), (127, None), (200, 1), (0x5DC, 2), (4096, 3), (8192, 4), (0, None), (255, 1)],
)
@pytest.mark.parametrize("quirk", [{}, {"limit": 100}, {"chain": 64}, {"exact_le": True}])
def test_read_der_file_every_length_form(
    length: int, form: int | None, quirk: dict[str, int]
) -> None:
    obj = der(length, form)
    card = FileCard({0x000A: obj + b"\xff" * 300}, **quirk)  # type: ignore[arg-type]
    proto = CardProtocol(card)
    proto.select_ef(0x000A)
    assert proto.read_der_file() == obj


def test_read_der_file_reads_only_what_it_needs() -> None:
    obj = der(0x5DC, 2)  # 1504 bytes: 6 reads of 256 = 1536
    card = FileCard({1: obj + b"\xff" * 2000})
    proto = CardProtocol(card)
    proto.select_ef(1)
    proto.read_der_file()
    reads = [c for c in card.sent if c[1] == 0xB0]
    assert len(reads) == -(-len(obj) // CHUNK)
    assert reads[-1][-1] == len(obj) % CHUNK  # the tail asks for exactly what is left


def test_read_der_file_truncated_is_card_error() -> None:
    obj = der(1000, 2)
    card = FileCard({1: obj[:700]})
    proto = CardProtocol(card)
    proto.select_ef(1)
    with pytest.raises(CardError, match="DER header says"):
        proto.read_der_file()


@pytest.mark.parametrize("content", [b"\xff" * 40, b"\x30\x85\x01\x02\x03\x04\x05", b"\x30"])
def test_read_der_file_not_der_is_card_error(content: bytes) -> None:
    card = FileCard({1: content})
    proto = CardProtocol(card)
    proto.select_ef(1)
    with pytest.raises(CardError):
        proto.read_der_file()


def test_read_der_file_refuses_objects_beyond_15_bit_offsets() -> None:
    card = FileCard({1: b"\x30\x83\x01\x00\x00" + b"\x00" * 300})
    proto = CardProtocol(card)
    proto.select_ef(1)
    with pytest.raises(CardError):
        proto.read_der_file()


@pytest.mark.parametrize("size", [1, 17, 255, 256, 257, 512, 1000])
@pytest.mark.parametrize("quirk", [{}, {"exact_le": True}, {"chain": 100}])
def test_read_file_until_short_tail_or_6b00(size: int, quirk: dict[str, int]) -> None:
    content = bytes(i % 256 for i in range(size))
    card = FileCard({1: content}, **quirk)  # type: ignore[arg-type]
    proto = CardProtocol(card)
    proto.select_ef(1)
    assert proto.read_file() == content


def test_read_file_respects_max_size() -> None:
    card = FileCard({1: b"z" * 1000})
    proto = CardProtocol(card)
    proto.select_ef(1)
    assert proto.read_file(300) == b"z" * 300
    assert [c[-1] for c in card.sent if c[1] == 0xB0] == [0x00, 44]


@settings(max_examples=150, deadline=None)
@given(
    length=st.integers(0, 9000),
    form=st.sampled_from([None, 1, 2, 3, 4]),
    pad=st.binary(max_size=300),
    limit=st.integers(1, 256),
)
def test_read_der_file_property(length: int, form: int | None, pad: bytes, limit: int) -> None:
    if (form is None and length >= 128) or (form == 1 and length > 255):
        form = 2
    obj = der(length, form)
    card = FileCard({1: obj + pad}, limit=limit)
    proto = CardProtocol(card)
    proto.select_ef(1)
    assert proto.read_der_file() == obj
