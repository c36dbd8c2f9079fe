"""BER-TLV and DER length decoding: round trips, multi-byte tags, long lengths, hostile input."""

from __future__ import annotations

import contextlib
import itertools

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from jpki.errors import JpkiError, TlvError
from jpki.tlv import (
    Tlv,
    decode_all,
    decode_one,
    der_total_length,
    encode_length,
    encode_tlv,
    find,
    iter_tlv,
    iter_tlv_spans,
    parse_length,
    parse_tag,
    tag_bytes,
)


@st.composite
def tags(draw: st.DrawFn) -> int:
    """Valid BER tag numbers of 1 to 4 bytes, as ``Tlv.tag`` stores them."""
    n = draw(st.integers(1, 4))
    cls_cons = draw(st.integers(0, 7)) << 5
    if n == 1:
        raw = [cls_cons | draw(st.integers(0, 0x1E))]
    else:
        raw = [cls_cons | 0x1F]
        raw += [0x80 | draw(st.integers(0, 0x7F)) for _ in range(n - 2)]
        raw.append(draw(st.integers(0, 0x7F)))
    return int.from_bytes(bytes(raw), "big")


# Big values are built cheaply: hypothesis is slow at drawing 64 KiB of random bytes.
big = st.integers(0x80, 0x20000).map(lambda n: bytes([n & 0xFF]) * n)
values = st.binary(max_size=300) | big
tlvs = st.builds(Tlv, tags(), st.binary(max_size=200))


# --- fixed vectors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "hex_"),
    [
        (0, "00"),
        (0x7F, "7F"),
        (0x80, "8180"),
        (0xFF, "81FF"),
        (0x100, "820100"),
        (0xFFFF, "82FFFF"),
        (0x10000, "83010000"),
        (0xFFFFFFFF, "84FFFFFFFF"),
    ],
)
def test_encode_length(n: int, hex_: str) -> None:
    assert encode_length(n) == bytes.fromhex(hex_)
    assert parse_length(bytes.fromhex(hex_)) == (n, len(hex_) // 2)


def test_encode_length_rejects() -> None:
    with pytest.raises(TlvError):
        encode_length(-1)
    with pytest.raises(TlvError):
        encode_length(1 << 32)


def test_text_ap_layout() -> None:
    # EF 0001 of the text AP: FF 10 0C + 12 digits + FF FF padding (card-protocol.md §5).
    raw = bytes.fromhex("FF100C") + b"123456789018" + b"\xff\xff"
    assert find(raw, 0xFF10) == b"123456789018"
    assert decode_all(raw, skip_padding=True) == [Tlv(0xFF10, b"123456789018")]
    # Without skip_padding the FF FF tail is a truncated multi-byte tag.
    with pytest.raises(TlvError):
        decode_all(raw)


def test_nested_with_long_form() -> None:
    inner = encode_tlv(0xDF22, "山田　太郎".encode()) + encode_tlv(0xDF24, b"19800101")
    outer = encode_tlv(0xFF20, inner + b"\x00" * 200)
    assert outer[:3] == bytes.fromhex("FF2081")
    tlv, end = decode_one(outer)
    assert end == len(outer)
    assert tlv.tag == 0xFF20 and tlv.constructed
    assert find(tlv.value, 0xDF22) == "山田　太郎".encode()
    assert find(tlv.value, 0xDF24) == b"19800101"
    assert find(tlv.value, 0xDF25) is None


def test_non_minimal_ber_length_accepted() -> None:
    assert decode_one(bytes.fromhex("04810141")) == (Tlv(0x04, b"A"), 4)


@pytest.mark.parametrize(
    "hex_",
    [
        "",  # no tag
        "04",  # no length
        "1F",  # truncated multi-byte tag
        "1F81",  # truncated multi-byte tag
        "1F81818101" + "00",  # 5-byte tag
        "0480",  # indefinite length
        "0485FFFFFFFFFF",  # 5 length bytes
        "048201",  # truncated long length
        "040541",  # value runs past the end
    ],
)
def test_decode_one_rejects(hex_: str) -> None:
    with pytest.raises(TlvError):
        decode_one(bytes.fromhex(hex_))


@pytest.mark.parametrize("tag", [0x1F, 0x3F, 0xDF81, 0x5F, 0x9F8181, 0x9F01_02, 0x1F81818101])
def test_encode_tlv_rejects_tags_that_do_not_round_trip(tag: int) -> None:
    with pytest.raises(TlvError):
        encode_tlv(tag, b"x")


def test_tag_bytes() -> None:
    assert tag_bytes(0) == b"\x00"
    assert tag_bytes(0xDF21) == b"\xdf\x21"
    with pytest.raises(TlvError):
        tag_bytes(-1)


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("", None),
        ("30", None),
        ("3082", None),
        ("308204", None),
        ("30820400", 0x400 + 4),
        ("3003", 5),
        ("3081", None),
        ("308180", 0x80 + 3),
        ("3084000000", None),
        ("308400000010", 0x10 + 6),
        ("7F21", None),
        ("7F2182", None),
        ("7F21820123", 0x123 + 5),
        ("1F", None),
        ("1F81", None),
    ],
)
def test_der_total_length_vectors(prefix: str, expected: int | None) -> None:
    assert der_total_length(bytes.fromhex(prefix)) == expected


@pytest.mark.parametrize("prefix", ["3080", "3085", "1F818181", "1F81818181"])
def test_der_total_length_rejects(prefix: str) -> None:
    with pytest.raises(TlvError):
        der_total_length(bytes.fromhex(prefix))


# --- properties ----------------------------------------------------------------------------


@settings(max_examples=300)
@given(tags(), values)
def test_tlv_round_trip(tag: int, value: bytes) -> None:
    raw = encode_tlv(tag, value)
    assert Tlv(tag, value).encode() == raw
    assert parse_tag(raw) == (tag, len(tag_bytes(tag)))
    tlv, end = decode_one(raw)
    assert tlv == Tlv(tag, value)
    assert end == len(raw)
    assert tlv.constructed == bool(tag_bytes(tag)[0] & 0x20)


@settings(max_examples=300)
@given(st.integers(0, 0xFFFFFFFF))
def test_length_round_trip(n: int) -> None:
    enc = encode_length(n)
    assert parse_length(enc + b"junk") == (n, len(enc))
    # DER: minimal form
    assert (len(enc) == 1) == (n < 0x80)
    if len(enc) > 1:
        assert enc[1] != 0


@settings(max_examples=200)
@given(st.lists(tlvs, max_size=8))
def test_sequence_round_trip(items: list[Tlv]) -> None:
    raw = b"".join(t.encode() for t in items)
    assert decode_all(raw) == items
    assert list(iter_tlv(raw)) == items
    # A constructed wrapper's children are the items again.
    wrapped = Tlv(0xFF20, raw)
    assert decode_one(wrapped.encode())[0].children() == items


@settings(max_examples=200)
@given(st.lists(tlvs, max_size=5), st.sampled_from([b"", b"\x00" * 3, b"\xff"]))
def test_spans_cover_each_encoding(items: list[Tlv], pad: bytes) -> None:
    assume(all(t.tag != 0 for t in items))  # 00 00 is padding (see test_padding_skipped)
    raw = b"".join(t.encode() for t in items) + pad
    spans = list(iter_tlv_spans(raw, skip_padding=True))
    assert [t for t, _, _ in spans] == items
    assert [raw[s:e] for _, s, e in spans] == [t.encode() for t in items]
    assert all(e == s2 for (_, _, e), (_, s2, _) in itertools.pairwise(spans))


@settings(max_examples=200)
@given(st.lists(tlvs, max_size=5), st.sampled_from([b"\x00", b"\xff"]), st.integers(1, 20))
def test_padding_skipped(items: list[Tlv], pad: bytes, n: int) -> None:
    # An empty TLV with tag 00 encodes as 00 00: indistinguishable from padding, by design.
    assume(all(t.tag != 0 for t in items))
    raw = b"".join(t.encode() for t in items)
    assert decode_all(raw + pad * n, skip_padding=True) == items
    for t in items:
        found = find(raw + pad * n, t.tag)
        assert found == next(x.value for x in items if x.tag == t.tag)


@settings(max_examples=300)
@given(st.binary(max_size=64))
def test_random_bytes_raise_only_tlv_error(raw: bytes) -> None:
    for fn in (
        lambda: decode_all(raw),
        lambda: decode_all(raw, skip_padding=True),
        lambda: find(raw, 0xDF21),
        lambda: decode_one(raw),
        lambda: parse_tag(raw),
        lambda: parse_length(raw),
        lambda: der_total_length(raw),
    ):
        with contextlib.suppress(TlvError):
            fn()


@settings(max_examples=300)
@given(st.binary(max_size=40))
def test_decoded_sequences_reencode(raw: bytes) -> None:
    """Whatever decodes fully re-encodes to itself when all lengths were minimal."""
    try:
        items = decode_all(raw)
    except TlvError:
        return
    again = b"".join(encode_tlv(t.tag, t.value) for t in items)
    assert len(again) <= len(raw)


@settings(max_examples=300)
@given(tags(), values)
def test_der_total_length_on_every_prefix(tag: int, value: bytes) -> None:
    raw = encode_tlv(tag, value) + b"trailing"
    total = len(raw) - len(b"trailing")
    header = total - len(value)
    for i in range(header + 2):
        got = der_total_length(raw[:i])
        assert got is None or got == total
        if i >= header:
            assert got == total
        else:
            assert got is None


@settings(max_examples=300)
@given(st.binary(max_size=12))
def test_der_total_length_is_monotone(raw: bytes) -> None:
    """Once a prefix gives an answer, every longer prefix gives the same answer."""
    answer: int | None = None
    for i in range(len(raw) + 1):
        try:
            got = der_total_length(raw[:i])
        except TlvError:
            # A bad header stays bad with more bytes.
            for j in range(i, len(raw) + 1):
                with pytest.raises(TlvError):
                    der_total_length(raw[:j])
            return
        if answer is not None:
            assert got == answer
        answer = got if got is not None else answer


def test_tlv_error_is_jpki_error() -> None:
    assert issubclass(TlvError, JpkiError)


# --- OBJECT IDENTIFIER ----------------------------------------------------------------------


@st.composite
def oids(draw: st.DrawFn) -> str:
    """Dotted OIDs as X.660 allows them: first arc 0-2, second < 40 under 0 and 1."""
    first = draw(st.integers(0, 2))
    second = draw(st.integers(0, 39)) if first < 2 else draw(st.integers(0, 2**70))
    rest = draw(st.lists(st.integers(0, 2**70), max_size=8))
    return ".".join(str(a) for a in [first, second, *rest])


def _oid_content(dotted: str) -> bytes:
    from asn1crypto.core import ObjectIdentifier

    return bytes(ObjectIdentifier(dotted).contents)


@given(oids())
@settings(max_examples=300)
def test_decode_oid_round_trips_against_asn1crypto(dotted: str) -> None:
    from cryptography.x509 import Name, NameAttribute, ObjectIdentifier

    from jpki.tlv import decode_oid

    assert decode_oid(_oid_content(dotted)) == dotted
    if len(_oid_content(dotted)) > 63:  # cryptography refuses OIDs longer than 63 octets
        return
    # and from cryptography's encoding: the OID TLV inside a one-attribute Name
    # SEQUENCE { SET { SEQUENCE { OID, UTF8String "x" } } }
    name = Name([NameAttribute(ObjectIdentifier(dotted), "x")]).public_bytes()
    seq = decode_one(decode_one(decode_one(name)[0].value)[0].value)[0]
    oid_tlv = seq.children()[0]
    assert oid_tlv.tag == 0x06
    assert decode_oid(oid_tlv.value) == dotted


@pytest.mark.parametrize(
    ("raw", "dotted"),
    [
        (bytes.fromhex("2a864886f70d01010b"), "1.2.840.113549.1.1.11"),
        (bytes.fromhex("551d14"), "2.5.29.20"),
        (bytes.fromhex("8837"), "2.999"),
        (b"\x00", "0.0"),
    ],
)
def test_decode_oid_known_values(raw: bytes, dotted: str) -> None:
    from jpki.tlv import decode_oid

    assert decode_oid(raw) == dotted


@pytest.mark.parametrize("raw", [b"", b"\x2a\x86", b"\x2a\x80\x01", b"\x80\x01", b"\xff"])
def test_decode_oid_malformed_raises_tlv_error(raw: bytes) -> None:
    from jpki.tlv import decode_oid

    with pytest.raises(TlvError):
        decode_oid(raw)


@given(st.binary(max_size=24))
@settings(max_examples=300)
def test_decode_oid_any_bytes_decodes_or_raises_tlv_error(raw: bytes) -> None:
    from asn1crypto.core import ObjectIdentifier

    from jpki.tlv import decode_oid

    try:
        dotted = decode_oid(raw)
    except TlvError:
        return
    # whatever decodes re-encodes to exactly the same octets (DER is canonical)
    assert _oid_content(dotted) == raw
    assert ObjectIdentifier.load(b"\x06" + bytes([len(raw)]) + raw).dotted == dotted
