"""Compact index of a CRL's revoked serials, built by a vectorised walk over the raw DER.

No Python object is created per entry: numpy finds candidate entry starts, computes each
candidate's successor from its length bytes, keeps the chain reachable from the first entry
(pointer doubling) and checks that it ends exactly at the end of ``revokedCertificates``.
This runs over ``WALK_CHUNK`` bytes at a time (the chain position carried from chunk to
chunk), so temporaries stay bounded and a memory-mapped caller can drop walked pages.
Serials become fixed-width big-endian keys in uint64 columns, sorted once (in place when they
pack into one word with the entry number); a lookup is a binary search. Dates and reasons are
decoded lazily for hits from the entry offset kept alongside.

``reference_walk`` is the plain one-entry-at-a-time walk with the same rules; a property test
shows both agree on random CRLs.
"""

from __future__ import annotations

import bisect
import mmap
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from jpki import tlv
from jpki.errors import CrlError, TlvError

U8 = npt.NDArray[np.uint8]
# Positions and node ids inside one walk chunk (small: int64 costs nothing).
I64 = npt.NDArray[np.signedinteger[Any]]
# Stored entry offsets: uint32 below 4 GiB, else int64.
Offsets = npt.NDArray[np.integer[Any]]
U64 = npt.NDArray[np.uint64]

# A serial is at most 20 octets (RFC 5280 4.1.2.2), 21 with the DER sign octet.
MAX_SERIAL_OCTETS = 21
KEY_BYTES_MAX = 20
# The one entry-extension encoding nearly every CA emits: only a reasonCode, non-critical.
REASON_TEMPLATE = bytes.fromhex("300c300a0603551d1504030a01")
_CAND_CHUNK = 1 << 18  # candidate search slice: temporaries stay in cache

OID_REASON_CODE = "2.5.29.21"
OID_HOLD_INSTRUCTION = "2.5.29.23"
OID_INVALIDITY_DATE = "2.5.29.24"
OID_CERTIFICATE_ISSUER = "2.5.29.29"
# Entry extensions we understand; certificateIssuer (indirect CRLs) is deliberately absent, so a
# CRL using it (always critical) is rejected rather than misread.
KNOWN_ENTRY_EXTENSIONS = frozenset({OID_REASON_CODE, OID_HOLD_INSTRUCTION, OID_INVALIDITY_DATE})


class RevocationReason(StrEnum):
    """CRLReason (RFC 5280 5.3.1); values are the RFC names."""

    UNSPECIFIED = "unspecified"
    KEY_COMPROMISE = "keyCompromise"
    CA_COMPROMISE = "cACompromise"
    AFFILIATION_CHANGED = "affiliationChanged"
    SUPERSEDED = "superseded"
    CESSATION_OF_OPERATION = "cessationOfOperation"
    CERTIFICATE_HOLD = "certificateHold"
    REMOVE_FROM_CRL = "removeFromCRL"
    PRIVILEGE_WITHDRAWN = "privilegeWithdrawn"
    AA_COMPROMISE = "aACompromise"

    @property
    def code(self) -> int:
        """The CRLReason code (RFC 5280 §5.3.1)."""
        return _REASON_CODES[self]

    @classmethod
    def from_code(cls, code: int) -> RevocationReason:
        """The reason for a CRLReason code; an unknown code is a ``CrlError``."""
        try:
            return _REASONS_BY_CODE[code]
        except KeyError:
            raise CrlError(f"unknown CRL reason code {code}") from None


_REASON_CODES = {
    RevocationReason.UNSPECIFIED: 0,
    RevocationReason.KEY_COMPROMISE: 1,
    RevocationReason.CA_COMPROMISE: 2,
    RevocationReason.AFFILIATION_CHANGED: 3,
    RevocationReason.SUPERSEDED: 4,
    RevocationReason.CESSATION_OF_OPERATION: 5,
    RevocationReason.CERTIFICATE_HOLD: 6,
    RevocationReason.REMOVE_FROM_CRL: 8,
    RevocationReason.PRIVILEGE_WITHDRAWN: 9,
    RevocationReason.AA_COMPROMISE: 10,
}
_REASONS_BY_CODE = {v: k for k, v in _REASON_CODES.items()}
_VALID_REASON_BYTES = np.array(sorted(_REASONS_BY_CODE), dtype=np.uint8)


@dataclass(frozen=True)
class RevokedEntry:
    """One revokedCertificates entry, decoded on demand."""

    serial: int
    revocation_date: datetime
    reason: RevocationReason | None
    invalidity_date: datetime | None = None
    offset: int = 0


def prefer_final(entries: Iterable[RevokedEntry]) -> RevokedEntry | None:
    """The entry that decides when a serial is listed more than once (or in several CRLs).

    A final revocation beats a hold, which beats a removeFromCRL: a later or duplicate entry
    can release a hold but never undo what the CA once declared final. Among final entries
    the earliest revocation date decides.
    """
    best: RevokedEntry | None = None
    for e in entries:
        if best is None or _rank(e) < _rank(best):
            best = e
    return best


def _rank(e: RevokedEntry) -> tuple[int, datetime]:
    if e.reason is RevocationReason.REMOVE_FROM_CRL:
        return (2, e.revocation_date)
    if e.reason is RevocationReason.CERTIFICATE_HOLD:
        return (1, e.revocation_date)
    return (0, e.revocation_date)


# --- small DER helpers (shared by the reference walk and the lazy entry decoder) ------------


def read_header(buf: bytes | memoryview, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the TLV at ``pos``; must fit before ``end``.

    :func:`jpki.tlv.read_header` with single-byte tags only (as X.509 uses), errors as CrlError.
    """
    try:
        item = tlv.read_header(buf, pos, end)
    except TlvError as exc:
        raise CrlError(f"bad DER at offset {pos}: {exc}") from None
    if item[0] > 0xFF:
        raise CrlError(f"unexpected multi-byte tag at offset {pos}")
    return item


def expect(buf: bytes | memoryview, pos: int, end: int, tag: int, what: str) -> tuple[int, int]:
    """The (start, end) of the DER value at ``pos`` if its tag is ``tag``, else ``CrlError``."""
    t, s, e = read_header(buf, pos, end)
    if t != tag:
        raise CrlError(f"{what}: expected tag {tag:02X}, found {t:02X} at offset {pos}")
    return s, e


def parse_time(buf: bytes | memoryview, pos: int, end: int) -> tuple[datetime, int]:
    """A DER UTCTime or GeneralizedTime at ``pos`` (must be ``...Z`` with seconds)."""
    tag, s, e = read_header(buf, pos, end)
    raw = bytes(buf[s:e])
    if tag == 0x17 and len(raw) == 13:
        digits = raw[:12]
    elif tag == 0x18 and len(raw) == 15:
        digits = raw[:14]
    else:
        raise CrlError(f"bad time at offset {pos}")
    if not digits.isdigit() or raw[-1:] != b"Z":
        raise CrlError(f"bad time {raw!r} at offset {pos}")
    if tag == 0x17:
        yy = int(digits[:2])
        year, rest = (1900 + yy if yy >= 50 else 2000 + yy), digits[2:]  # RFC 5280 4.1.2.5.1
    else:
        year, rest = int(digits[:4]), digits[4:]
    try:
        value = datetime(
            year,
            int(rest[0:2]),
            int(rest[2:4]),
            int(rest[4:6]),
            int(rest[6:8]),
            int(rest[8:10]),
            tzinfo=UTC,
        )
    except ValueError:
        raise CrlError(f"bad time {raw!r} at offset {pos}") from None
    return value, e


def _entry_length_ok(buf: bytes | memoryview, pos: int) -> bool:
    # The fast walk reads entry lengths in short, 81 or 82 form only (entries are tiny).
    first = buf[pos + 1]
    return first < 0x80 or first in (0x81, 0x82)


@dataclass(frozen=True)
class _EntryLayout:
    serial_start: int
    serial_end: int
    date_pos: int
    ext_pos: int  # == end when there are no extensions
    end: int


def _entry_layout(buf: bytes | memoryview, pos: int, region_end: int) -> _EntryLayout:
    # Every header is read by the shared reader; the checks around it are the fast walk's
    # own rules (entry and extension lengths in short, 81 or 82 form; serial and date short).
    if pos + 2 > region_end or buf[pos] != 0x30 or not _entry_length_ok(buf, pos):
        raise CrlError(f"bad revokedCertificates entry at offset {pos}")
    _, s, e = read_header(buf, pos, region_end)
    if s + 2 > e or buf[s] != 0x02 or buf[s + 1] >= 0x80:
        raise CrlError(f"bad serial number in entry at offset {pos}")
    try:
        _, serial_start, serial_end = read_header(buf, s, e)
    except CrlError:
        raise CrlError(f"bad serial number length in entry at offset {pos}") from None
    slen = serial_end - serial_start
    if not 1 <= slen <= MAX_SERIAL_OCTETS:
        raise CrlError(f"bad serial number length in entry at offset {pos}")
    if slen == MAX_SERIAL_OCTETS and buf[serial_start] != 0:
        raise CrlError(f"serial number longer than 20 octets in entry at offset {pos}")
    if slen >= 2 and buf[serial_start] == 0xFF and buf[serial_start + 1] >= 0x80:
        # A redundant sign octet on a negative serial would defeat key matching; it is not DER.
        raise CrlError(f"non-minimal negative serial number in entry at offset {pos}")
    d = serial_end
    if d + 2 > e:
        raise CrlError(f"missing revocationDate in entry at offset {pos}")
    try:
        tag, ds, x = read_header(buf, d, e)
    except CrlError:
        raise CrlError(f"bad revocationDate in entry at offset {pos}") from None
    if ds != d + 2 or (tag, x - ds) not in ((0x17, 13), (0x18, 15)):
        raise CrlError(f"bad revocationDate in entry at offset {pos}")
    if x < e:
        if buf[x] != 0x30 or not _entry_length_ok(buf, x):
            raise CrlError(f"bad crlEntryExtensions in entry at offset {pos}")
        _, _, xe = read_header(buf, x, e)
        if xe != e:
            raise CrlError(f"trailing bytes in entry at offset {pos}")
    return _EntryLayout(serial_start, serial_end, d, x, e)


def _parse_entry_extensions(
    buf: bytes | memoryview, pos: int, end: int
) -> tuple[RevocationReason | None, datetime | None]:
    """Decode crlEntryExtensions; an unknown critical one makes the CRL unusable."""
    reason: RevocationReason | None = None
    invalidity: datetime | None = None
    s, e = expect(buf, pos, end, 0x30, "crlEntryExtensions")
    p = s
    seen: set[str] = set()
    while p < e:
        es, ee = expect(buf, p, e, 0x30, "extension")
        os_, oe = expect(buf, es, ee, 0x06, "extension id")
        oid = decode_oid(bytes(buf[os_:oe]))
        q = oe
        critical = False
        if q < ee and buf[q] == 0x01:
            bs, be = expect(buf, q, ee, 0x01, "critical")
            if be - bs != 1:
                raise CrlError("bad BOOLEAN in entry extension")
            critical = buf[bs] != 0
            q = be
        vs, ve = expect(buf, q, ee, 0x04, "extension value")
        if ve != ee:
            raise CrlError("trailing bytes in entry extension")
        if oid in seen:
            raise CrlError(f"duplicate entry extension {oid}")
        seen.add(oid)
        if oid == OID_REASON_CODE:
            rs, re_ = expect(buf, vs, ve, 0x0A, "reasonCode")
            if re_ != ve or re_ - rs != 1:
                raise CrlError("bad reasonCode")
            reason = RevocationReason.from_code(buf[rs])
        elif oid == OID_INVALIDITY_DATE:
            invalidity, te = parse_time(buf, vs, ve)
            if te != ve:
                raise CrlError("bad invalidityDate")
        elif critical and oid not in KNOWN_ENTRY_EXTENSIONS:
            raise CrlError(f"unknown critical CRL entry extension {oid}: CRL unusable")
        p = ee
    return reason, invalidity


def decode_oid(raw: bytes) -> str:
    """``jpki.tlv.decode_oid`` with a malformed OID reported as a CrlError."""
    try:
        return tlv.decode_oid(raw)
    except TlvError:
        raise CrlError("bad OBJECT IDENTIFIER") from None


def decode_entry(buf: bytes | memoryview, pos: int, region_end: int) -> RevokedEntry:
    """Fully decode the entry at ``pos`` (used for hits and by the reference walk)."""
    lay = _entry_layout(buf, pos, region_end)
    serial = int.from_bytes(bytes(buf[lay.serial_start : lay.serial_end]), "big", signed=True)
    date, _ = parse_time(buf, lay.date_pos, lay.ext_pos)
    reason: RevocationReason | None = None
    invalidity: datetime | None = None
    if lay.ext_pos < lay.end:
        ext = bytes(buf[lay.ext_pos : lay.end])
        if _is_template(ext):  # the usual lone reasonCode: no need for the general parser
            reason = RevocationReason.from_code(ext[-1])
        else:
            reason, invalidity = _parse_entry_extensions(buf, lay.ext_pos, lay.end)
    return RevokedEntry(serial, date, reason, invalidity, pos)


def serial_key_bytes(serial: int) -> bytes:
    """The minimal DER INTEGER content octets of ``serial`` (what the index keys are made of)."""
    n = (serial if serial >= 0 else ~serial).bit_length() // 8 + 1
    return serial.to_bytes(n, "big", signed=True)


def _magnitude(raw: bytes) -> bytes:
    # Left-padding with zeros makes 00 01 and 01 the same key; drop leading zeros to fit 20.
    return raw.lstrip(b"\x00") or b"\x00"


# --- the reference walk ------------------------------------------------------------------------


def reference_walk(buf: bytes | memoryview, start: int, end: int) -> list[tuple[bytes, int]]:
    """Plain walk: ``(serial magnitude bytes, entry offset)`` in DER order, same rules as fast."""
    out: list[tuple[bytes, int]] = []
    pos = start
    while pos < end:
        lay = _entry_layout(buf, pos, end)
        ext = bytes(buf[lay.ext_pos : lay.end])
        if ext and not _is_template(ext):
            _parse_entry_extensions(buf, lay.ext_pos, lay.end)
        elif ext and ext[-1] not in _REASONS_BY_CODE:
            raise CrlError(f"unknown CRL reason code {ext[-1]}")
        out.append((_magnitude(bytes(buf[lay.serial_start : lay.serial_end])), pos))
        pos = lay.end
    return out


def _is_template(ext: bytes) -> bool:
    return len(ext) == len(REASON_TEMPLATE) + 1 and ext.startswith(REASON_TEMPLATE)


# --- the vectorised walk ---------------------------------------------------------------------


def _candidates(a: U8, start: int, end: int) -> I64:
    """Positions p in [start, end) that look like an entry header followed by an INTEGER tag:
    ``30 LL 02``, ``30 81 LL 02`` or ``30 82 HH LL 02``."""
    out: list[I64] = []
    # Small slices and reused buffers: the temporaries stay in cache and never page-fault.
    w = min(_CAND_CHUNK, max(end - start, 1))
    is02 = np.empty(w + 4, bool)
    m = np.empty(w, bool)
    t = np.empty(w, bool)
    pad = np.zeros(w + 4, np.uint8)
    for cs in range(start, end, w):
        ce = min(end, cs + w)
        k = ce - cs
        c = a[cs : ce + 4]
        if len(c) < k + 4:  # near the end of the buffer: pad the look-ahead with zeros
            pad[: len(c)] = c
            pad[len(c) :] = 0
            c = pad[: k + 4]
        b02, mm, tt = is02[: k + 4], m[:k], t[:k]
        np.equal(c, 0x02, out=b02)
        l1 = c[1 : k + 1]
        np.less(l1, 0x80, out=mm)
        mm &= b02[2 : k + 2]
        np.equal(l1, 0x81, out=tt)
        tt &= b02[3 : k + 3]
        mm |= tt
        np.equal(l1, 0x82, out=tt)
        tt &= b02[4 : k + 4]
        mm |= tt
        np.equal(c[:k], 0x30, out=tt)
        mm &= tt
        p = np.flatnonzero(mm)
        p += cs
        out.append(p)
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def _offset_dtype(n: int) -> type[np.unsignedinteger[Any]] | type[np.signedinteger[Any]]:
    # Stored entry offsets: 4 bytes an entry for any file under 4 GiB.
    return np.uint32 if n < (1 << 32) else np.int64


def _tlv_at(a: U8, p: I64) -> tuple[I64 | int, I64]:
    """(header length, content length) of the short/81/82-form TLVs at positions ``p``.

    Positions must leave 3 readable bytes (callers clip); other length forms get a header
    length so large that every later range check fails.
    """
    l1 = a[p + 1]
    if not (l1 >= 0x80).any():  # the common case: every entry in short form
        return 2, l1.astype(p.dtype)
    n = len(a)
    dt = p.dtype
    l1 = l1.astype(dt)
    b2 = a[np.minimum(p + 2, n - 1)].astype(dt)
    b3 = a[np.minimum(p + 3, n - 1)].astype(dt)
    # Other length forms get header length len(a): every range check after that fails.
    hdr = np.where(l1 < 0x80, 2, np.where(l1 == 0x81, 3, np.where(l1 == 0x82, 4, n))).astype(dt)
    length = np.where(l1 < 0x80, l1, np.where(l1 == 0x81, b2, (b2 << 8) | b3)).astype(dt)
    return hdr, length


def _walk_chunk(a: U8, p: int, ce: int) -> tuple[I64, int]:
    """The entries chained from ``p`` that start before ``ce`` (the last one may run past it)
    and the position just after the last one, where the next chunk starts."""
    cand = _candidates(a, p, ce)
    m = len(cand)
    if m == 0 or cand[0] != p:
        raise CrlError(f"bad revokedCertificates entry at offset {p}")
    hdr, length = _tlv_at(a, cand)
    nxt = cand + hdr + length
    del hdr, length
    exit_node, bad_node = m, m + 1
    # Successor as a node id: usually simply the next candidate; search only where it is not.
    # Anything at or past ``ce`` leaves the chunk (the exit node); the last candidate's
    # successor is the exit unless it lands inside the chunk on a non-candidate.
    jump = np.arange(1, m + 1, dtype=np.int64)
    miss = np.flatnonzero(nxt[:-1] != cand[1:])
    if nxt[-1] < ce:
        miss = np.append(miss, m - 1)
    if len(miss):
        tgt = nxt[miss]
        idx = np.minimum(np.searchsorted(cand, tgt), m - 1)
        jump[miss] = np.where(tgt >= ce, exit_node, np.where(cand[idx] == tgt, idx, bad_node))
    jump = np.concatenate([jump, np.array([exit_node, bad_node], np.int64)])
    path = _chain_from_first(jump, m)
    return cand[path], int(nxt[path[-1]])


def _chain_from_first(jump: I64, m: int) -> I64:
    """Node ids on the path from node 0 to the exit node (m); CrlError if it ends at m + 1.

    Honest CRLs have few false candidates and each is pointed to by nobody, so pruning nodes
    with no kept predecessor yields the chain in a round or two. Adversarial input falls back
    to pointer doubling (log2 m rounds).
    """
    sub = np.arange(m, dtype=jump.dtype)
    for _ in range(6):
        nx = jump[sub]
        if nx[-1] == m and bool((nx[:-1] == sub[1:]).all()):
            return sub
        pointed = np.zeros(m + 2, dtype=bool)
        pointed[nx] = True
        pointed[0] = True
        if pointed[m + 1] and bool(pointed[sub].all()):
            break  # nothing left to prune: the chain itself may be broken
        sub = sub[pointed[sub]]
    reach = np.zeros(m + 2, dtype=bool)
    reach[0] = True
    # Invariant: before a round with jump = next^(2^r), reach holds distances 0 .. 2^r - 1.
    while True:
        reach[jump[reach]] = True
        if jump[0] >= m:
            break
        jump = jump[jump]
    if reach[m + 1] or not reach[m]:
        raise CrlError("revokedCertificates entries do not chain to the end of the list")
    return np.flatnonzero(reach[:m])


@dataclass(frozen=True)
class _Layout:
    serial_end: I64
    serial_len: I64


def _validate_entries(a: U8, pos: I64, region_end: int) -> _Layout:
    """Vectorised ``_entry_layout`` for entries already known to tile ``[pos[0], region_end)``."""
    n = len(a)
    end = np.empty_like(pos)
    end[:-1] = pos[1:]
    end[-1] = region_end
    hdr, _ = _tlv_at(a, pos)
    s = pos + hdr  # INTEGER tag (0x02 guaranteed by the candidate filter)
    del hdr
    slen = a[np.minimum(s + 1, n - 1)].astype(pos.dtype)
    ok = (slen >= 1) & (slen <= MAX_SERIAL_OCTETS)
    s += 2  # serial content start
    d = s + slen
    ok &= d + 2 <= end
    np.minimum(d, n - 2, out=d)
    tag = a[d]
    dl = a[d + 1]
    ok &= ((tag == 0x17) & (dl == 13)) | ((tag == 0x18) & (dl == 15))
    del tag
    x = d + 2
    x += dl
    del d, dl
    ok &= x <= end
    if not ok.all():
        bad = int(pos[np.argmin(ok)])
        raise CrlError(f"bad revokedCertificates entry at offset {bad}")
    long_serial = np.flatnonzero(slen == MAX_SERIAL_OCTETS)
    if len(long_serial) and (a[s[long_serial]] != 0).any():
        raise CrlError("serial number longer than 20 octets in a CRL entry")
    neg = np.flatnonzero((a[s] == 0xFF) & (slen >= 2))
    if len(neg) and (a[s[neg] + 1] >= 0x80).any():
        raise CrlError("non-minimal negative serial number in a CRL entry")
    has_ext = np.flatnonzero(x < end)
    if len(has_ext):
        xe = x[has_ext]
        ee = end[has_ext]
        ok_ext = a[xe] == 0x30
        xh, xl = _tlv_at(a, np.minimum(xe, n - 4))
        ok_ext &= xe + xh + xl == ee
        if not ok_ext.all():
            bad = int(pos[has_ext[np.argmin(ok_ext)]])
            raise CrlError(f"bad crlEntryExtensions in entry at offset {bad}")
        _check_extensions(a, xe, ee)
    s += slen
    return _Layout(s, slen)


def _check_extensions(a: U8, x: I64, end: I64) -> None:
    """Template reasonCode extensions are checked in bulk; anything else entry by entry."""
    tlen = len(REASON_TEMPLATE)
    regular = (end - x) == tlen + 1
    xr = np.minimum(x, len(a) - tlen - 1)
    for i in range(tlen):
        regular &= a[xr + i] == REASON_TEMPLATE[i]
    codes = a[x[regular] + tlen]
    if not np.isin(codes, _VALID_REASON_BYTES).all():
        raise CrlError("unknown CRL reason code in an entry")
    irregular = np.flatnonzero(~regular)
    if len(irregular):
        buf = memoryview(a.data).cast("B")
        for i in irregular.tolist():
            _parse_entry_extensions(buf, int(x[i]), int(end[i]))


_U64_MAX = (1 << 64) - 1
_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [(1 << 64) - 1], dtype=np.uint64)


def _keys(a: U8, serial_end: I64, serial_len: I64, ncols: int) -> list[U64]:
    """Serials as big-endian magnitudes right-aligned in uint64 columns, most significant
    column first. Each column is one 8-byte window read ending at the serial's last octets;
    octets in front of the serial are masked off, and leading zero octets cost nothing."""
    n = len(a)
    windows = np.lib.stride_tricks.as_strided(a, shape=(n - 7, 8), strides=(1, 1))
    cols: list[U64] = []
    for c in range(ncols):
        start = serial_end - 8 * (c + 1)
        inside = np.clip(serial_len - 8 * c, 0, 8)
        rows = windows[np.maximum(start, 0)]
        shift = np.minimum(start, 0)  # windows before offset 0 (tiny test buffers only)
        col = rows.view(">u8").reshape(-1).astype(np.uint64)
        if shift.any():
            col >>= (-8 * shift).astype(np.uint64)
        col &= _MASKS[inside]
        cols.append(col)
    cols.reverse()
    return cols


WALK_CHUNK = 1 << 20  # DER bytes walked per step: every temporary is bounded by this
MIN_ENTRY_BYTES = 20  # 30 LL | 02 01 XX | 17 0D <13 octets>: bounds the entry count


#: ``(entries so far, bytes walked, bytes in the list)`` after each walk chunk.
WalkProgress = Callable[[int, int, int], None]


def _walk_and_key(
    a: U8,
    start: int,
    end: int,
    chunk: int,
    release: Callable[[int], None] | None,
    progress: WalkProgress | None = None,
) -> tuple[list[U64], Offsets]:
    """One pass over ``a[start:end]`` a chunk at a time: chain, validate and key the entries.

    Returns the key columns (most significant first) and the entry offsets, in DER order.
    The output arrays are sized for the most entries the list could hold; only the pages
    written become resident. ``release(pos)`` is told when the bytes before ``pos`` are done.
    """
    if start == end:
        return [np.zeros(0, np.uint64)], np.zeros(0, _offset_dtype(len(a)))
    if end + 3 > len(a):
        raise CrlError("revokedCertificates runs to the end of the data")
    cap = (end - start) // MIN_ENTRY_BYTES + 1
    offs = np.empty(cap, _offset_dtype(len(a)))
    cols: list[U64] = []  # least significant first; a wider serial adds a (zeroed) column
    n = 0
    p = start
    while p < end:
        pos, nxt = _walk_chunk(a, p, min(end, p + max(chunk, 1)))
        if nxt > end:
            raise CrlError("revokedCertificates entries do not chain to the end of the list")
        lay = _validate_entries(a, pos, nxt)
        k = len(pos)
        if n + k > cap:  # pragma: no cover - validated entries are >= MIN_ENTRY_BYTES long
            raise CrlError("revokedCertificates entries shorter than possible")
        offs[n : n + k] = pos
        width = (int(lay.serial_len.max()) + 7) // 8
        part = _keys(a, lay.serial_end, lay.serial_len, width)
        while len(cols) < width:
            cols.append(np.zeros(cap, np.uint64))
        for c in range(width):
            cols[c][n : n + k] = part[width - 1 - c]
        del pos, lay, part
        n += k
        p = nxt
        if release is not None:
            release(p)
        if progress is not None:
            progress(n, p - start, end - start)
    out = [c[:n] for c in reversed(cols)]
    # leading zero octets (e.g. a 00 sign octet) never need a column of their own
    while len(out) > 1 and not out[0].any():
        out.pop(0)
    return out, offs[:n]


def fast_walk(a: U8, start: int, end: int, *, chunk: int = WALK_CHUNK) -> Offsets:
    """Offsets of the entries of ``revokedCertificates`` content ``a[start:end]``, in order.

    Raises CrlError unless the entries chain from ``start`` exactly to ``end``.
    """
    return _walk_and_key(a, start, end, chunk, None)[1]


_STEP = 1 << 20  # entries per step of the in-place passes over the sorted keys


@dataclass(frozen=True)
class _Packing:
    """Packed layout: word = ``((key - kmin) >> drop) << ibits | entry number``."""

    kmin: int
    ibits: int
    drop: int  # low key bits dropped so the word fits 64 bits (0 when the range allows)

    @property
    def mask(self) -> int:
        return (1 << self.ibits) - 1


_MAX_RUN = 16  # most entries a truncated key prefix may share (each one is decoded on lookup)


def _sort_index(
    a: U8, cols: list[U64], offs: Offsets
) -> tuple[list[U64], Offsets, _Packing | None]:
    """Sort the keys with as few extra bytes as possible: ``(cols, offsets, packing)``.

    One key column: packed words sorted in place, offsets left in DER order (see
    ``SerialIndex``). When the key range is too wide, the words keep a key prefix; that is
    used as long as no prefix is shared by more than ``_MAX_RUN`` entries (lookups decode and
    compare each). Otherwise (several columns, or clustered keys with far outliers) an
    argsort permutation is applied to each column and to the offsets.
    """
    n = len(offs)
    if n < 2:
        return cols, offs, None
    if len(cols) == 1:
        c = cols[0]
        if bool((c[1:] >= c[:-1]).all()):
            return cols, offs, None
        kmin = int(c.min())
        ibits = (n - 1).bit_length()
        drop = max(0, (int(c.max()) - kmin).bit_length() + ibits - 64)
        packing = _Packing(kmin, ibits, drop)
        _pack_sort(c, packing)
        if drop == 0 or _runs_short(c, ibits):
            return cols, offs, packing
        # The packed words lost the low key bits: read the keys again from the DER.
        del c
        cols = [_keys_at(a, offs)]
    order = _sort_order(cols)
    if order is None:
        return cols, offs, None
    for i in range(len(cols)):  # one column at a time: the old one is freed
        cols[i] = cols[i][order]
    return cols, offs[order], None


def _pack_sort(c: U64, pk: _Packing) -> None:
    """Sort ``c`` in place as packed words: no argsort permutation (8 bytes an entry), no
    second key column, no permuted offsets."""
    lo, sh, dr = np.uint64(pk.kmin), np.uint64(pk.ibits), np.uint64(pk.drop)
    for i in range(0, len(c), _STEP):
        s = c[i : i + _STEP]
        s -= lo
        if pk.drop:
            s >>= dr
        s <<= sh
        s |= np.arange(i, i + len(s), dtype=np.uint64)
    c.sort()  # in place


def _runs_short(c: U64, ibits: int) -> bool:
    """No key prefix (``word >> ibits``) is shared by more than ``_MAX_RUN`` sorted words."""
    n, r, sh = len(c), _MAX_RUN, np.uint64(ibits)
    for i in range(0, max(n - r, 0), _STEP):
        j = min(n - r, i + _STEP)
        if not bool(((c[i + r : j + r] >> sh) != (c[i:j] >> sh)).all()):
            return False
    return True


def _keys_at(a: U8, offs: Offsets) -> U64:
    """One key column for the entries at ``offs`` (already validated, keys <= 8 octets)."""
    out = np.empty(len(offs), np.uint64)
    for i in range(0, len(offs), _STEP):
        p = offs[i : i + _STEP].astype(np.int64)
        hdr, _ = _tlv_at(a, p)
        s = p + hdr  # the INTEGER tag
        slen = a[s + 1].astype(np.int64)
        out[i : i + len(p)] = _keys(a, s + 2 + slen, slen, 1)[0]
    return out


class SerialIndex:
    """Sorted fixed-width serial keys plus entry offsets into the CRL DER.

    Two layouts. Plain: key columns and offsets permuted together. Packed (one key column whose
    range leaves room for an entry number): each word is ``(key - kmin) << ibits | entry
    number`` sorted in place, and the offsets stay in DER order, indexed by that number; no
    permutation array is ever built. ``columns``/``offsets`` present both as the plain layout.
    """

    def __init__(
        self,
        buf: U8,
        cols: list[U64],
        offsets: Offsets,
        region_end: int,
        *,
        packed: _Packing | None = None,
    ) -> None:
        self._buf = buf
        self._cols = cols
        self._offsets = offsets
        self._region_end = region_end
        self._packed = packed
        self._view = memoryview(buf.data).cast("B") if buf.ndim == 1 else memoryview(b"")
        # Lookups bisect these (C, Python ints): a numpy call on one scalar costs more than
        # the whole binary search.
        self._col_views = [c.data for c in cols]

    @classmethod
    def build(
        cls,
        buf: U8,
        start: int,
        end: int,
        *,
        chunk: int = WALK_CHUNK,
        release: Callable[[int], None] | None = None,
        progress: WalkProgress | None = None,
    ) -> SerialIndex:
        """Walk ``buf[start:end]`` (the content of revokedCertificates) and index it.

        ``chunk`` bytes are walked per step; ``release(pos)`` is called as the walk passes
        ``pos`` (a memory-mapped caller drops those pages from its resident set).
        """
        if not 0 <= start <= end <= len(buf):
            raise CrlError("revokedCertificates outside the CRL")
        cols, pos = _walk_and_key(buf, start, end, chunk, release, progress)
        cols, pos, packed = _sort_index(buf, cols, pos)
        return cls(buf, cols, pos, end, packed=packed)

    @property
    def columns(self) -> list[U64]:
        """Key columns, most significant first, sorted (a new array for the packed layout)."""
        return self._plain()[0]

    @property
    def offsets(self) -> Offsets:
        """Entry offsets in key order (a new array for the packed layout)."""
        return self._plain()[1]

    def _plain(self) -> tuple[list[U64], Offsets]:
        pk = self._packed
        if pk is None:
            return self._cols, self._offsets
        c = self._cols[0]
        mask = np.uint64(pk.mask)
        offs = np.empty(len(c), self._offsets.dtype)
        for i in range(0, len(c), _STEP):
            offs[i : i + _STEP] = self._offsets[c[i : i + _STEP] & mask]
        if pk.drop:  # the words hold key prefixes only: exact keys from the DER, then order
            keys = _keys_at(self._buf, offs)
            if not bool((keys[1:] >= keys[:-1]).all()):
                order = np.argsort(keys, kind="stable")
                keys, offs = keys[order], offs[order]
            return [keys], offs
        keys = np.empty_like(c)
        for i in range(0, len(c), _STEP):
            s = keys[i : i + _STEP]
            np.right_shift(c[i : i + _STEP], np.uint64(pk.ibits), out=s)
            s += np.uint64(pk.kmin)
        return [keys], offs

    @property
    def region_end(self) -> int:
        """Where the revoked-certificates region ends in the DER (entries decode within it)."""
        return self._region_end

    def undoable_offsets(self) -> Offsets:
        """Offsets of the entries on hold or removed from the CRL.

        A vectorised pass over the (already validated) entries, made only when asked (the
        store compares them with the CRL they replace): the lone template reasonCode is read
        in bulk, any other extension list decoded entry by entry.
        """
        a, buf = self._buf, self._view
        out: list[Offsets] = []
        tlen = len(REASON_TEMPLATE)
        n = len(a)
        for i in range(0, len(self._offsets), _STEP):
            p = self._offsets[i : i + _STEP].astype(np.int64)
            hdr, length = _tlv_at(a, p)
            end = p + hdr + length
            s = p + hdr  # the INTEGER tag
            d = s + 2 + a[s + 1].astype(np.int64)
            x = d + 2 + a[np.minimum(d + 1, n - 1)].astype(np.int64)
            has_ext = x < end
            regular = has_ext & ((end - x) == tlen + 1)
            xr = np.minimum(x, n - tlen - 1)
            for k in range(tlen):
                regular &= a[xr + k] == REASON_TEMPLATE[k]
            code = a[np.minimum(end - 1, n - 1)]
            out.append(p[regular & ((code == 6) | (code == 8))])
            odd = [
                off
                for off in p[has_ext & ~regular].tolist()
                if decode_entry(buf, off, self._region_end).reason
                in (RevocationReason.CERTIFICATE_HOLD, RevocationReason.REMOVE_FROM_CRL)
            ]
            out.append(np.array(odd, np.int64))
        return np.concatenate(out) if out else np.zeros(0, np.int64)

    def undoable_keys(self) -> U64 | set[bytes]:
        """Sorted keys (one column) or key magnitudes (wider serials) of the undoable entries."""
        offs = self.undoable_offsets()
        if len(self._cols) == 1:
            return np.sort(_keys_at(self._buf, offs)) if len(offs) else np.zeros(0, np.uint64)
        buf = self._view
        return {
            _magnitude(serial_key_bytes(decode_entry(buf, int(o), self._region_end).serial))
            for o in offs.tolist()
        }

    def __len__(self) -> int:
        return len(self._offsets)

    def nbytes(self) -> int:
        """Memory the index's arrays take, in bytes."""
        return sum(int(c.nbytes) for c in self._cols) + int(self._offsets.nbytes)

    def _key_cols(self, serial: int) -> list[int] | None:
        ncols = len(self._cols)
        if serial >= 0:
            # A non-negative serial's key is its value, right-aligned in the columns.
            if serial >> (64 * ncols):
                return None
            if ncols == 1:
                return [serial]  # the common case, asked on every check
            return [(serial >> (64 * (ncols - 1 - i))) & _U64_MAX for i in range(ncols)]
        raw = _magnitude(serial_key_bytes(serial))
        width = ncols * 8
        if len(raw) > width:
            return None
        raw = raw.rjust(width, b"\x00")
        return [int.from_bytes(raw[i : i + 8], "big") for i in range(0, width, 8)]

    def _range(self, serial: int) -> tuple[int, int]:
        """Index range of entries whose key equals the key of ``serial``."""
        n = len(self._offsets)
        key = self._key_cols(serial) if n else None
        if key is None:
            return 0, 0
        pk = self._packed
        if pk is not None:
            # every entry whose key prefix matches; lookup() decodes each and compares
            rel = key[0] - pk.kmin
            prefix = rel >> pk.drop
            if rel < 0 or prefix >> (64 - pk.ibits):
                return 0, 0
            view, ibits = self._col_views[0], pk.ibits
            lo = bisect.bisect_left(view, prefix << ibits)
            hi = lo
            while hi < n and view[hi] >> ibits == prefix:
                hi += 1
            return lo, hi
        if len(key) == 1:  # the common case: one column, one binary search
            view = self._col_views[0]
            lo = bisect.bisect_left(view, key[0])
            return lo, bisect.bisect_right(view, key[0], lo)
        lo, hi = 0, n
        for col, kk in zip(self._cols, key, strict=True):
            seg = col[lo:hi]
            k = np.uint64(kk)
            a = int(np.searchsorted(seg, k, side="left"))
            b = int(np.searchsorted(seg, k, side="right"))
            lo, hi = lo + a, lo + b
            if lo >= hi:
                return 0, 0
        return lo, hi

    def find(self, serial: int) -> int | None:
        """Entry offset for ``serial`` or None."""
        hit = self.lookup(serial)
        return hit.offset if hit is not None else None

    def lookup(self, serial: int) -> RevokedEntry | None:
        """The deciding entry for ``serial`` (see :func:`prefer_final` when listed twice)."""
        lo, hi = self._range(serial)
        if lo == hi:
            return None  # not listed: the answer of nearly every check
        return prefer_final(self._entries(serial, lo, hi))

    def lookup_all(self, serial: int) -> list[RevokedEntry]:
        """Every entry listing ``serial`` (a CRL may list a serial more than once)."""
        lo, hi = self._range(serial)
        return self._entries(serial, lo, hi)

    def _entries(self, serial: int, lo: int, hi: int) -> list[RevokedEntry]:
        buf = self._view
        # Keys are value bytes, so a negative serial (invalid, but seen in the wild) shares a key
        # with a positive one: the decoded serial decides.
        out = []
        for i in range(lo, hi):
            entry = decode_entry(buf, self._offset_at(i), self._region_end)
            if entry.serial == serial:
                out.append(entry)
        return out

    def _offset_at(self, i: int) -> int:
        if self._packed is None:
            return int(self._offsets[i])
        return int(self._offsets[int(self._cols[0][i]) & self._packed.mask])

    def __contains__(self, serial: object) -> bool:
        return isinstance(serial, int) and self.find(serial) is not None

    def entries(self) -> Iterator[RevokedEntry]:
        """Every entry, decoded, in serial order (for small CRLs: deltas, listings, tests)."""
        buf = memoryview(self._buf.data).cast("B")
        for off in self.offsets.tolist():
            yield decode_entry(buf, off, self._region_end)


def _sort_order(cols: list[U64]) -> npt.NDArray[np.intp] | None:
    """Permutation that sorts the keys, or None when they are already sorted (common)."""
    if len(cols) == 1:
        c = cols[0]
        if bool((c[1:] >= c[:-1]).all()):
            return None
        # Flipping the top bit maps uint64 order onto int64 order; int64 argsort is much
        # faster. Flipped in place (and back) so no second copy of the keys is needed.
        top = np.uint64(1 << 63)
        c ^= top
        try:
            return np.argsort(c.view(np.int64))
        finally:
            c ^= top
    return np.lexsort(tuple(reversed(cols)))


def as_array(data: bytes | bytearray | memoryview | mmap.mmap) -> U8:
    """Zero-copy uint8 view of a buffer."""
    return np.frombuffer(data, dtype=np.uint8)


def fast_listing(
    a: U8, start: int, end: int, *, chunk: int = WALK_CHUNK
) -> list[tuple[bytes, int]]:
    """The fast path's result in ``reference_walk``'s shape (for parity tests and debugging)."""
    cols, pos = _walk_and_key(a, start, end, chunk, None)
    width = 8 * len(cols)
    out: list[tuple[bytes, int]] = []
    for i, off in enumerate(pos.tolist()):
        key = b"".join(int(c[i]).to_bytes(8, "big") for c in cols)
        out.append((_magnitude(key[-width:]), off))
    return out
