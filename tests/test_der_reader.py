"""The one TLV reader (``jpki.tlv.read_header``) and the walkers built on it.

Properties: every encoding reads back; every truncation, inside the header or the value, is a
``TlvTruncatedError``; long-form lengths of 1-4 bytes read, longer ones and the indefinite
form are refused; trailing data is refused by ``read_single``; hostile bytes end in
``TlvError`` only, with offsets inside their bounds. The certificate walker (cert/der.py),
the CRL walker (revocation/index.py) and the flat path's reader accept exactly what the core
accepts, with single-byte tags.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jpki.cert import der as cert_der
from jpki.errors import CertificateError, CrlError, TlvError, TlvTruncatedError
from jpki.revocation import index as crl_index
from jpki.tlv import read_elements, read_header, read_single
from jpki.verify import flat

single_tags = st.integers(0, 0xFF).filter(lambda t: t & 0x1F != 0x1F)
multi_tags = st.builds(
    lambda first, rest: ((first | 0x1F) << 8 * len(rest)) | int.from_bytes(rest, "big"),
    st.integers(0, 0xFF),
    st.one_of(
        st.tuples(st.integers(0, 0x7F)).map(bytes),
        st.tuples(st.integers(0x80, 0xFF), st.integers(0, 0x7F)).map(bytes),
    ),
)
tags = st.one_of(single_tags, multi_tags)
values = st.binary(max_size=300)
#: How the length is written: short (when it fits), or long with 1-4 length bytes
#: (minimal or padded with leading zeros: BER allows it and the reader takes it).
length_forms = st.sampled_from(["short", 1, 2, 3, 4])


def _length(n: int, form: str | int) -> bytes:
    if form == "short" and n < 0x80:
        return bytes([n])
    k = max(int(form) if form != "short" else 1, (n.bit_length() + 7) // 8, 1)
    return bytes([0x80 | k]) + n.to_bytes(k, "big")


def _encode(tag: int, value: bytes, form: str | int) -> bytes:
    tb = tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")
    return tb + _length(len(value), form) + value


@given(tags, values, length_forms, st.binary(max_size=8))
def test_every_encoding_reads_back(tag: int, value: bytes, form: str | int, tail: bytes) -> None:
    enc = _encode(tag, value, form)
    data = b"\x00" + enc + tail  # not at offset 0, with data after it
    got_tag, start, stop = read_header(data, 1)
    assert (got_tag, data[start:stop], stop) == (tag, value, 1 + len(enc))
    assert read_single(enc) == (tag, len(enc) - len(value), len(enc))


@given(tags, values, length_forms, st.data())
def test_every_truncation_is_reported_as_such(
    tag: int, value: bytes, form: str | int, data: st.DataObject
) -> None:
    enc = _encode(tag, value, form)
    cut = data.draw(st.integers(0, len(enc) - 1))
    with pytest.raises(TlvTruncatedError):
        read_header(enc[:cut])
    # The same cut as a container bound: bytes after ``end`` are never read, whatever they are.
    junk = data.draw(st.binary(min_size=1, max_size=8))
    with pytest.raises(TlvTruncatedError):
        read_header(enc[:cut] + junk, 0, cut)


@pytest.mark.parametrize(
    ("hex_header", "length"),
    [("0481", None), ("048180", 0x80), ("04820100", 0x100), ("0483010000", 0x10000)],
)
def test_long_form_lengths(hex_header: str, length: int | None) -> None:
    header = bytes.fromhex(hex_header)
    if length is None:  # 81 announces one length byte that is not there
        with pytest.raises(TlvTruncatedError):
            read_header(header)
        return
    data = header + bytes(length)
    assert read_header(data) == (0x04, len(header), len(data))


@given(st.sampled_from([0x04, 0x30, 0xA0, 0xBF21]), st.binary(max_size=16))
def test_indefinite_and_over_long_lengths_are_refused(tag: int, rest: bytes) -> None:
    tb = tag.to_bytes((tag.bit_length() + 7) // 8, "big")
    for length_byte in (0x80, 0x85, 0x88, 0xFF):  # indefinite, then 5, 8 and 127 length bytes
        with pytest.raises(TlvError) as info:
            read_header(tb + bytes([length_byte]) + bytes(8) + rest)
        assert not isinstance(info.value, TlvTruncatedError)


@given(tags, values, length_forms, st.binary(min_size=1, max_size=16))
def test_trailing_data_is_refused_by_read_single(
    tag: int, value: bytes, form: str | int, tail: bytes
) -> None:
    enc = _encode(tag, value, form)
    with pytest.raises(TlvError):
        read_single(enc + tail)
    assert read_header(enc + tail)[2] == len(enc)  # one header alone ignores what follows


@given(st.lists(st.tuples(tags, st.binary(max_size=40), length_forms), max_size=8))
def test_read_elements_splits_a_concatenation(parts: list[tuple[int, bytes, str | int]]) -> None:
    data = b"".join(_encode(t, v, f) for t, v, f in parts)
    got = read_elements(data)
    assert [(t, data[a:b]) for t, a, b in got] == [(t, v) for t, v, _ in parts]


@settings(max_examples=500)
@given(st.binary(max_size=64), st.integers(0, 70), st.integers(0, 70))
def test_hostile_bytes_end_in_tlv_error_only(data: bytes, pos: int, end: int) -> None:
    try:
        tag, start, stop = read_header(data, pos, end)
    except TlvError:
        return
    assert pos < start <= stop <= min(end, len(data)) and tag >= 0


@settings(max_examples=500)
@given(st.binary(max_size=64))
def test_walkers_accept_exactly_what_the_core_accepts(data: bytes) -> None:
    try:
        core: list[tuple[int, int, int]] | None = read_elements(data)
    except TlvError:
        core = None
    single = core is not None and all(t <= 0xFF for t, _, _ in core)
    try:
        cert_walk = cert_der.elements(data, 0, len(data), "probe")
    except CertificateError:
        assert not single
    else:
        assert single and cert_walk == core
    try:
        first: tuple[int, int, int] | None = read_header(data, 0)
    except TlvError:
        first = None
    try:
        crl = crl_index.read_header(memoryview(data), 0, len(data))
    except CrlError:
        assert first is None or first[0] > 0xFF
    else:
        assert crl == first
    try:
        flat_item = flat._element(data, 0)
    except TlvError:
        assert first is None
    else:
        assert flat_item == first
