"""The vectorised CRL walk equals the plain reference walk; malformed DER is a CrlError."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from jpki.errors import CrlError
from jpki.revocation.index import (
    REASON_TEMPLATE,
    WALK_CHUNK,
    SerialIndex,
    as_array,
    decode_entry,
    fast_listing,
    reference_walk,
    serial_key_bytes,
)


def _len(n: int, form: str) -> bytes:
    if form == "short" and n < 0x80:
        return bytes([n])
    if form == "81" and n < 0x100:
        return bytes([0x81, n])
    return bytes([0x82]) + n.to_bytes(2, "big")


def _tlv(tag: int, body: bytes, form: str = "short") -> bytes:
    return bytes([tag]) + _len(len(body), form) + body


def _ext(oid: bytes, value: bytes, critical: bool = False) -> bytes:
    crit = b"\x01\x01\xff" if critical else b""
    return _tlv(0x30, _tlv(0x06, oid) + crit + _tlv(0x04, value))


REASON_OID = bytes.fromhex("551d15")
INVALIDITY_OID = bytes.fromhex("551d18")
OTHER_OID = bytes.fromhex("2a030405")

serial_content = st.one_of(
    st.integers(1, 2**159 - 1).map(serial_key_bytes),  # minimal DER, sign octet when needed
    st.binary(min_size=1, max_size=20).map(lambda b: b"\x00" + b),  # redundant leading 00
    st.binary(min_size=1, max_size=8),  # anything (incl. negative)
)


@st.composite
def entry(draw: st.DrawFn) -> bytes:
    serial = draw(serial_content)
    utc = draw(st.booleans())
    date = _tlv(0x17, b"260102030405Z") if utc else _tlv(0x18, b"20260102030405Z")
    kind = draw(st.sampled_from(["none", "template", "reason+inv", "other", "other-critical"]))
    code = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 8, 9, 10]))
    form = draw(st.sampled_from(["short", "short", "81", "82"]))
    reason = _ext(REASON_OID, _tlv(0x0A, bytes([code])))
    exts = b""
    if kind == "template":
        exts = _tlv(0x30, reason)
    elif kind == "reason+inv":
        exts = _tlv(0x30, reason + _ext(INVALIDITY_OID, _tlv(0x18, b"20251231000000Z")))
    elif kind == "other":
        exts = _tlv(0x30, _ext(OTHER_OID, b"\x05\x00"), form)
    elif kind == "other-critical":
        exts = _tlv(0x30, _ext(OTHER_OID, b"\x05\x00", critical=True))
    return _tlv(0x30, _tlv(0x02, serial) + date + exts, form)


def _wrap(body: bytes, prefix: bytes = b"\x30\x03\x02\x01\x01") -> tuple[bytes, int, int]:
    # Header-ish prefix, the list, and a trailing fake signature like a real CRL has.
    data = prefix + _tlv(0x30, body, "82") + bytes(range(40))
    start = len(prefix) + 4
    return data, start, start + len(body)


# Walk chunk sizes: tiny ones make entries straddle chunk boundaries everywhere (1: every
# chunk holds a single entry start; 20: the shortest possible entry).
chunks = st.sampled_from([1, 2, 5, 19, 20, 21, 33, 64, 127, 500, WALK_CHUNK])


def _both(data: bytes, start: int, end: int, chunk: int = WALK_CHUNK) -> tuple[object, object]:
    results: list[object] = []
    walks: list[Callable[[], object]] = [
        lambda: reference_walk(memoryview(data), start, end),
        lambda: fast_listing(as_array(data), start, end, chunk=chunk),
    ]
    for fn in walks:
        try:
            results.append(fn())
        except CrlError as exc:
            results.append(CrlError)
            assert str(exc)
    return results[0], results[1]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(entry(), max_size=30), chunks)
def test_fast_walk_equals_reference(entries: list[bytes], chunk: int) -> None:
    data, start, end = _wrap(b"".join(entries))
    ref, fast = _both(data, start, end, chunk)
    assert ref == fast
    if ref is not CrlError:
        assert isinstance(ref, list)
        assert len(ref) == len(entries)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(entry(), min_size=1, max_size=12), st.data())
def test_mutations_agree_and_raise_only_crl_error(
    entries: list[bytes], data: st.DataObject
) -> None:
    body = bytearray(b"".join(entries))
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(body) - 1))
        body[i] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        cut = data.draw(st.integers(0, len(body)))
        del body[cut:]
    raw, start, end = _wrap(bytes(body))
    ref, fast = _both(raw, start, end, data.draw(chunks))
    assert ref == fast


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(entry(), max_size=25, unique=True), chunks)
def test_index_finds_every_serial_with_its_entry(entries: list[bytes], chunk: int) -> None:
    data, start, end = _wrap(b"".join(entries))
    buf = memoryview(data)
    try:
        ref = reference_walk(buf, start, end)
    except CrlError:
        assume(False)
        return
    idx = SerialIndex.build(as_array(data), start, end, chunk=chunk)
    assert len(idx) == len(entries)
    for _, off in ref:
        e = decode_entry(buf, off, end)
        hit = idx.lookup(e.serial)
        assert hit is not None
        assert hit.serial == e.serial
    # a serial above anything a 20-octet field can hold is never found
    assert idx.find(2**200) is None


def test_empty_and_absent_lists() -> None:
    data, start, end = _wrap(b"")
    assert fast_listing(as_array(data), start, end) == []
    idx = SerialIndex.build(as_array(data), start, end)
    assert len(idx) == 0
    assert idx.lookup(1) is None


def test_long_form_lengths_and_21_octet_serials() -> None:
    big = 2**159 + 12345  # needs the 00 sign octet: 21 octets
    e1 = _tlv(0x30, _tlv(0x02, serial_key_bytes(big)) + _tlv(0x17, b"260102030405Z"), "82")
    e2 = _tlv(0x30, _tlv(0x02, b"\x00\x05") + _tlv(0x17, b"260102030405Z"), "81")
    data, start, end = _wrap(e1 + e2)
    idx = SerialIndex.build(as_array(data), start, end)
    hit = idx.lookup(big)
    assert hit is not None and hit.serial == big
    hit5 = idx.lookup(5)
    assert hit5 is not None and hit5.revocation_date == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert idx.lookup(6) is None


def test_serial_over_20_octets_rejected() -> None:
    e = _tlv(0x30, _tlv(0x02, b"\x01" * 21) + _tlv(0x17, b"260102030405Z"))
    data, start, end = _wrap(e)
    with pytest.raises(CrlError):
        SerialIndex.build(as_array(data), start, end)
    with pytest.raises(CrlError):
        reference_walk(memoryview(data), start, end)


def test_unknown_critical_entry_extension_rejected() -> None:
    exts = _tlv(0x30, _ext(OTHER_OID, b"\x05\x00", critical=True))
    e = _tlv(0x30, _tlv(0x02, b"\x07") + _tlv(0x17, b"260102030405Z") + exts)
    data, start, end = _wrap(e)
    with pytest.raises(CrlError, match="critical"):
        SerialIndex.build(as_array(data), start, end)


def test_template_reason_is_decoded_lazily() -> None:
    e = _tlv(0x30, _tlv(0x02, b"\x09") + _tlv(0x17, b"260102030405Z") + REASON_TEMPLATE + b"\x03")
    data, start, end = _wrap(e)
    idx = SerialIndex.build(as_array(data), start, end)
    hit = idx.lookup(9)
    assert hit is not None and hit.reason is not None
    assert hit.reason.value == "affiliationChanged" and hit.reason.code == 3


@pytest.mark.parametrize("chunk", [1, 7, 64, WALK_CHUNK])
def test_false_candidates_inside_serials_are_skipped(chunk: int) -> None:
    # serial bytes that look like entry headers ("30 05 02 ...") must not be taken as entries
    tricky = bytes.fromhex("3005020130")
    entries = [
        _tlv(0x30, _tlv(0x02, bytes([0x11]) + tricky * 3) + _tlv(0x17, b"260102030405Z"))
        for _ in range(50)
    ]
    data, start, end = _wrap(b"".join(entries))
    got = fast_listing(as_array(data), start, end, chunk=chunk)
    assert got == reference_walk(memoryview(data), start, end)


@pytest.mark.parametrize("chunk", [1, 3, 50, WALK_CHUNK])
def test_adversarial_false_chains_use_pointer_doubling(chunk: int) -> None:
    # A serial full of a repeated fake entry header makes long false chains: pruning gives up
    # and the doubling fallback must still find the true chain.
    fake = bytes.fromhex("300002")  # 30 00 -> successor two bytes on, 02 keeps it a candidate
    serial = b"\x01" + (b"\x30\x00\x02" * 6)[:19]
    entries = [_tlv(0x30, _tlv(0x02, serial) + _tlv(0x17, b"260102030405Z")) for _ in range(20)]
    data, start, end = _wrap(b"".join(entries))
    assert fake in data
    got = fast_listing(as_array(data), start, end, chunk=chunk)
    assert got == reference_walk(memoryview(data), start, end)


def test_keys_numpy_dtypes() -> None:
    e = _tlv(0x30, _tlv(0x02, b"\x01\x02") + _tlv(0x17, b"260102030405Z"))
    data, start, end = _wrap(e * 3)
    idx = SerialIndex.build(as_array(data), start, end)
    assert idx.columns[0].dtype == np.uint64
    assert idx.offsets.dtype == np.uint32  # 4 bytes an entry below 4 GiB
    assert idx.nbytes() == 3 * (8 + idx.offsets.dtype.itemsize)


def _serial_list(serials: list[int], chunk: int) -> tuple[SerialIndex, bytes, int]:
    body = b"".join(
        _tlv(0x30, _tlv(0x02, serial_key_bytes(s)) + _tlv(0x17, b"260102030405Z")) for s in serials
    )
    data, start, end = _wrap(body)
    return SerialIndex.build(as_array(data), start, end, chunk=chunk), data, end


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.one_of(
        st.lists(st.integers(0, 2**12), max_size=60),  # narrow range: packed in-place sort
        st.lists(st.integers(-(2**12), 2**12), max_size=60),  # packed, negative/positive twins
        st.lists(st.integers(0, 2**64 - 1), max_size=60),  # too wide to pack: argsort
        st.lists(st.integers(0, 2**159), max_size=40),  # several key columns: lexsort
        st.lists(st.integers(-(2**70), 2**70), max_size=40),  # negative serials share keys
    ),
    chunks,
)
def test_sorted_index_keeps_keys_and_offsets_together(serials: list[int], chunk: int) -> None:
    _check_index(serials, chunk)


def _check_index(serials: list[int], chunk: int) -> SerialIndex:
    idx, data, end = _serial_list(serials, chunk)
    assert len(idx) == len(serials)
    cols = idx.columns
    keys = [tuple(int(c[i]) for c in cols) for i in range(len(idx))]
    assert keys == sorted(keys)
    buf = memoryview(data)
    # every key row belongs to the entry its offset points at
    for i, off in enumerate(idx.offsets.tolist()):
        s = decode_entry(buf, off, end).serial
        raw = serial_key_bytes(s).lstrip(b"\x00") or b"\x00"
        want = sum(k << (64 * (len(cols) - 1 - j)) for j, k in enumerate(keys[i]))
        assert int.from_bytes(raw, "big") == want
    for s in serials:
        hit = idx.lookup(s)
        assert hit is not None and hit.serial == s
    for s in {s + d for s in serials for d in (-1, 1)} - set(serials):
        assert idx.lookup(s) is None
    return idx


@pytest.mark.parametrize(
    ("serials", "layout"),
    [
        ([5, 3, 9, 3 + 2**20, 9], "exact"),  # packed words hold the whole key
        ([2**63 + 5, 3, 2**62, 77, 1 << 40, 78], "prefix"),  # 64-bit range: low bits dropped
        ([*range(40, 0, -1), 2**64 - 1], "argsort"),  # clustered + far outlier: long runs
        ([2**100, 1, 2**70], "argsort"),  # two key columns
        ([1, 2, 2**64 - 1], "plain"),  # already sorted
    ],
)
@pytest.mark.parametrize("chunk", [7, WALK_CHUNK])
def test_sort_layouts(serials: list[int], layout: str, chunk: int) -> None:
    idx = _check_index(serials, chunk)
    pk = idx._packed
    got = (
        "prefix"
        if pk and pk.drop
        else "exact"
        if pk
        else "plain"
        if serials == sorted(serials)
        else "argsort"
    )
    assert got == layout


@pytest.mark.parametrize(
    ("raw", "year"),
    [(b"490102030405Z", 2049), (b"500102030405Z", 1950), (b"991231235959Z", 1999)],
)
def test_utctime_two_digit_years_follow_rfc5280(raw: bytes, year: int) -> None:
    e = _tlv(0x30, _tlv(0x02, b"\x01") + _tlv(0x17, raw))
    data, start, end = _wrap(e)
    hit = SerialIndex.build(as_array(data), start, end).lookup(1)
    assert hit is not None and hit.revocation_date.year == year


@pytest.mark.parametrize("raw", [b"260230000000Z", b"260102030405", b"26010203040aZ"])
def test_bad_times_are_crl_errors_on_decode(raw: bytes) -> None:
    e = _tlv(0x30, _tlv(0x02, b"\x01") + _tlv(0x17, raw))
    data, start, end = _wrap(e)
    # a wrong length fails the bulk layout check; a bad value fails when the hit is decoded
    with pytest.raises(CrlError, match=r"time|revokedCertificates"):
        SerialIndex.build(as_array(data), start, end).lookup(1)
