"""The TLV records of the card-info APs: one outer tag, a run of fields, then filler.

Some records open with an offset table (text AP ``DF21``, visual AP ``DF21``): one big-endian
u16 per following field, the offset from the **first byte of the file**. It is checked against
where each field really starts, never trusted. Filler (``00``/``FF``) after the fields is ignored,
and offsets are counted from the outer header's own length, so a dump with filler after the
object parses the same as a trimmed read.
"""

from __future__ import annotations

from dataclasses import dataclass

from jpki.errors import JpkiError, ParseError
from jpki.tlv import Tlv, decode_one, parse_length, parse_tag

_FILLER = (0x00, 0xFF)


@dataclass(frozen=True)
class Field:
    """One field of a record: its TLV, its bytes as written and where it starts in the file."""

    tag: int
    value: bytes
    raw: bytes
    start: int


@dataclass(frozen=True)
class Record:
    """A parsed record: its fields in order, and the outer TLV's value."""

    fields: tuple[Field, ...]
    value: bytes
    #: The offset table's TLV as written (empty when the record has none).
    table_raw: bytes = b""

    def get(self, tag: int) -> Field:
        """The first field tagged ``tag``, or ``ParseError`` when there is none."""
        for f in self.fields:
            if f.tag == tag:
                return f
        raise ParseError(f"record lacks field {tag:04X}")

    def has(self, tag: int) -> bool:
        """Whether the record has a field tagged ``tag``."""
        return any(f.tag == tag for f in self.fields)

    def value_of(self, tag: int) -> bytes:
        """The value of the field tagged ``tag`` (``ParseError`` when missing)."""
        return self.get(tag).value

    def raw_of(self, *tags: int) -> bytes:
        """The named fields' TLVs as written, concatenated in the order given."""
        return b"".join(self.get(t).raw for t in tags)


def parse_record(raw: bytes, tag: int, what: str, *, table: int | None = None) -> Record:
    """Parse ``raw`` as ``tag { fields }``; check the ``table`` field's offsets if present."""
    try:
        outer, _ = decode_one(raw, 0)
        _, pos = parse_tag(raw, 0)
        _, header_len = parse_length(raw, pos)
    except JpkiError as exc:
        raise ParseError(f"{what}: {exc}") from None
    if outer.tag != tag:
        raise ParseError(f"{what}: expected tag {tag:X}, found {outer.tag:X}")
    value = outer.value
    fields: list[Field] = []
    table_value: bytes | None = None
    table_raw = b""
    pos = 0
    try:
        while pos < len(value) and value[pos] not in _FILLER:
            item, end = decode_one(value, pos)
            if table is not None and item.tag == table and table_value is None and not fields:
                table_value, table_raw = item.value, value[pos:end]
            else:
                fields.append(Field(item.tag, item.value, value[pos:end], header_len + pos))
            pos = end
    except JpkiError as exc:
        raise ParseError(f"{what}: {exc}") from None
    if table_value is not None:
        check_offsets(table_value, fields, what)
    return Record(tuple(fields), value, table_raw)


def check_offsets(table: bytes, fields: list[Field], what: str) -> None:
    """Each u16 of ``table`` must be where the matching field starts in the file."""
    if len(table) != 2 * len(fields):
        raise ParseError(
            f"{what}: offset table has {len(table) // 2} entries for {len(fields)} fields"
        )
    for i, f in enumerate(fields):
        declared = int.from_bytes(table[2 * i : 2 * i + 2], "big")
        if declared != f.start:
            raise ParseError(
                f"{what}: offset {i} says {declared:#06x} but field {f.tag:04X} starts at "
                f"{f.start:#06x}"
            )


def outer_tlv(raw: bytes, tag: int, what: str) -> Tlv:
    """The outer TLV of a record file, filler after it ignored."""
    try:
        outer, _ = decode_one(raw, 0)
    except JpkiError as exc:
        raise ParseError(f"{what}: {exc}") from None
    if outer.tag != tag:
        raise ParseError(f"{what}: expected tag {tag:X}, found {outer.tag:X}")
    return outer


def key_id(raw: bytes, what: str) -> bytes:
    """The 16-byte key id field of a record, checked for length."""
    if len(raw) != 16:
        raise ParseError(f"{what}: key id is {len(raw)} bytes, not 16")
    return raw


__all__ = ["Field", "Record", "check_offsets", "key_id", "outer_tlv", "parse_record"]
