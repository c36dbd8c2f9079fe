"""BER-TLV (multi-byte tags, short and long lengths) and DER length decoding.

:func:`read_header` is the one TLV reader of the package: the card's BER records, the
certificate and CRL walkers (cert/der.py, verify/flat.py, revocation/index.py) all read
their headers with it and only add their own rules (single-byte tags, short forms) on top.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeAlias

from jpki.errors import TlvError, TlvTruncatedError

# Lengths beyond 4 length bytes never occur on a card or in a CRL we accept.
_MAX_LENGTH_BYTES = 4
# Tags used on the card (DF21, 5F4E, 7F21, FF10, ...) are 2 bytes; BER allows more, we cap at 4.
_MAX_TAG_BYTES = 4


#: What the reader reads from: a DER/BER object in memory (an mmap'd CRL is a memoryview).
Buffer: TypeAlias = bytes | bytearray | memoryview
#: (tag, value start, value end): offsets into the buffer, nothing copied.
Header: TypeAlias = tuple[int, int, int]


@dataclass(frozen=True)
class Tlv:
    """One BER-TLV: ``tag`` is the tag bytes read as a big-endian integer (e.g. 0xDF21)."""

    tag: int
    value: bytes

    @property
    def constructed(self) -> bool:
        """True when the tag's first byte has the constructed bit (``0x20``) set."""
        return bool(tag_bytes(self.tag)[0] & 0x20)

    def encode(self) -> bytes:
        """The TLV as bytes (tag, definite length, value); ``TlvError`` for an invalid tag."""
        return encode_tlv(self.tag, self.value)

    def children(self) -> list[Tlv]:
        """Decode the value as a sequence of TLVs."""
        return decode_all(self.value)


def tag_bytes(tag: int) -> bytes:
    """The encoded bytes of a tag number as stored in ``Tlv.tag``."""
    if tag < 0:
        raise TlvError(f"negative tag {tag}")
    if tag == 0:
        return b"\x00"
    return tag.to_bytes((tag.bit_length() + 7) // 8, "big")


def _check_tag_bytes(tb: bytes) -> None:
    """Refuse tag numbers that would not decode back to themselves (see ``parse_tag``)."""
    if len(tb) > _MAX_TAG_BYTES:
        raise TlvError(f"tag {tb.hex().upper()} longer than {_MAX_TAG_BYTES} bytes")
    multi = tb[0] & 0x1F == 0x1F
    if len(tb) == 1:
        if multi:
            raise TlvError(f"tag {tb.hex().upper()} announces subsequent tag bytes")
        return
    if not multi:
        raise TlvError(f"tag {tb.hex().upper()}: first byte does not announce subsequent bytes")
    if any(not b & 0x80 for b in tb[1:-1]) or tb[-1] & 0x80:
        raise TlvError(f"tag {tb.hex().upper()}: bad continuation bits")


def encode_length(n: int) -> bytes:
    """DER length: short form below 128, else the minimal long form."""
    if n < 0:
        raise TlvError(f"negative length {n}")
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    if len(body) > _MAX_LENGTH_BYTES:
        raise TlvError(f"length {n} too large")
    return bytes([0x80 | len(body)]) + body


def encode_tlv(tag: int, value: bytes) -> bytes:
    """Encode one TLV; raises ``TlvError`` for a tag number that is not a valid BER tag."""
    tb = tag_bytes(tag)
    _check_tag_bytes(tb)
    return tb + encode_length(len(value)) + bytes(value)


def parse_tag(data: Buffer, offset: int = 0) -> tuple[int, int]:
    """Read a BER tag at ``offset``; return (tag as int, offset after it)."""
    if offset >= len(data):
        raise TlvTruncatedError(f"truncated: no tag at offset {offset}")
    first = data[offset]
    tag = first
    pos = offset + 1
    if first & 0x1F == 0x1F:
        while True:
            if pos >= len(data):
                raise TlvTruncatedError("truncated multi-byte tag")
            b = data[pos]
            tag = (tag << 8) | b
            pos += 1
            if not b & 0x80:
                break
            # Checked before reading on, so a 5th byte is never accepted.
            if pos - offset >= _MAX_TAG_BYTES:
                raise TlvError(f"tag longer than {_MAX_TAG_BYTES} bytes")
    return tag, pos


def parse_length(data: Buffer, offset: int = 0) -> tuple[int, int]:
    """Read a definite BER length at ``offset``; return (length, offset after it)."""
    if offset >= len(data):
        raise TlvTruncatedError(f"truncated: no length at offset {offset}")
    first = data[offset]
    if first < 0x80:
        return first, offset + 1
    count = first & 0x7F
    if count == 0:
        raise TlvError("indefinite length is not supported")
    if count > _MAX_LENGTH_BYTES:
        raise TlvError(f"length field of {count} bytes is too long")
    end = offset + 1 + count
    if end > len(data):
        raise TlvTruncatedError("truncated long-form length")
    return int.from_bytes(data[offset + 1 : end], "big"), end


def read_header(data: Buffer, pos: int = 0, end: int | None = None) -> Header:
    """(tag, value start, value end) of the TLV at ``pos``, which must end by ``end``.

    ``end`` defaults to the end of ``data`` (a container's end bounds its children). Tags as
    :func:`parse_tag`, definite lengths of up to 4 bytes as :func:`parse_length` (indefinite
    length refused); ``TlvTruncatedError`` when the header or value does not fit.
    """
    n = len(data)
    if end is None or end > n:
        end = n
    if pos + 2 > end:
        raise TlvTruncatedError(f"truncated: no TLV header at offset {pos}")
    tag = data[pos]
    first = data[pos + 1]
    if first < 0x80 and tag & 0x1F != 0x1F:  # the common case, read inline
        start = pos + 2
        stop = start + first
    else:
        # Read through a view ending at ``end`` (no copy), so the tag and length bytes are
        # bounded too; released on the way out (an mmap cannot close while a view is held).
        with memoryview(data) as whole, whole[:end] as view:
            tag, p = parse_tag(view, pos)
            length, start = parse_length(view, p)
        stop = start + length
    if stop > end:
        declared = stop - start
        raise TlvTruncatedError(
            f"value of tag {tag:X} at offset {pos} runs past its end ({declared} bytes declared)"
        )
    return tag, start, stop


def read_elements(data: Buffer, start: int = 0, end: int | None = None) -> list[Header]:
    """The headers of the consecutive TLVs filling ``start..end`` (a container's contents)."""
    if end is None or end > len(data):
        end = len(data)
    out: list[Header] = []
    pos = start
    while pos < end:
        item = read_header(data, pos, end)
        out.append(item)
        pos = item[2]
    return out


def read_single(data: Buffer, start: int = 0, end: int | None = None) -> Header:
    """The header of the one TLV that fills ``start..end`` exactly (trailing data refused)."""
    if end is None or end > len(data):
        end = len(data)
    item = read_header(data, start, end)
    if item[2] != end:
        raise TlvError(f"{end - item[2]} trailing byte(s) after the TLV at offset {start}")
    return item


def decode_one(data: bytes, offset: int = 0) -> tuple[Tlv, int]:
    """Decode one TLV at ``offset``; return it and the offset after it."""
    tag, start, end = read_header(data, offset)
    return Tlv(tag, bytes(data[start:end])), end


def iter_tlv_spans(data: bytes, *, skip_padding: bool = False) -> Iterator[tuple[Tlv, int, int]]:
    """Consecutive TLVs with where each starts and ends in ``data`` (``data[start:end]``).

    ``skip_padding`` stops at a trailing run of 00 or FF filler.
    """
    pos = 0
    n = len(data)
    while pos < n:
        if skip_padding and data[pos] in (0x00, 0xFF) and _is_padding(data, pos):
            return
        tlv, end = decode_one(data, pos)
        yield tlv, pos, end
        pos = end


def iter_tlv(data: bytes, *, skip_padding: bool = False) -> Iterator[Tlv]:
    """Iterate over consecutive TLVs; ``skip_padding`` ignores 00/FF filler after them."""
    for tlv, _, _ in iter_tlv_spans(data, skip_padding=skip_padding):
        yield tlv


def _is_padding(data: bytes, pos: int) -> bool:
    rest = data[pos:]
    return rest.count(rest[0]) == len(rest)


def decode_all(data: bytes, *, skip_padding: bool = False) -> list[Tlv]:
    """Every TLV in ``data`` as a list (see ``iter_tlv``)."""
    return list(iter_tlv(data, skip_padding=skip_padding))


def find(data: bytes, tag: int) -> bytes | None:
    """Value of the first top-level TLV with ``tag``, or None."""
    for tlv in iter_tlv(data, skip_padding=True):
        if tlv.tag == tag:
            return tlv.value
    return None


def der_total_length(prefix: bytes) -> int | None:
    """Total size (header + value) of the DER object starting ``prefix``.

    Returns None when ``prefix`` is too short to tell (read more bytes and ask again);
    raises ``TlvError`` when the header is malformed whatever follows.
    """
    try:
        _, pos = parse_tag(prefix)
        length, end = parse_length(prefix, pos)
    except TlvTruncatedError:
        return None
    return end + length


def decode_oid(value: bytes) -> str:
    """Dotted text of an OBJECT IDENTIFIER's content octets (DER: minimal base-128 arcs).

    Raises ``TlvError`` for empty content, a truncated last arc or a non-minimal arc (a
    leading 0x80 octet), which DER forbids.
    """
    if not value or value[-1] & 0x80:
        raise TlvError("malformed OBJECT IDENTIFIER: empty or truncated")
    arcs: list[int] = []
    arc = 0
    start = True
    for b in value:
        if start and b == 0x80:
            raise TlvError("malformed OBJECT IDENTIFIER: non-minimal arc encoding")
        arc = (arc << 7) | (b & 0x7F)
        start = not b & 0x80
        if start:
            arcs.append(arc)
            arc = 0
    first = arcs[0]
    head = [first // 40, first % 40] if first < 80 else [2, first - 80]
    return ".".join(str(a) for a in head + arcs[1:])
