"""The basic 4 information (基本4情報) of a signing certificate: model and parsing.

subjectAltName ``otherName`` entries ``{ type-id, [0] EXPLICIT UTF8String }`` (card order
.1 .4 .3 .5 .2 .6): name, name substitute flags, sex, birth date ``EYYYYMMDD``, address,
address substitute flags. Unknown otherNames are kept readable (a former surname may be one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import IntEnum
from typing import Any

from jpki.errors import CertificateError, TlvError
from jpki.oid import BasicInfoOID
from jpki.tlv import parse_length, parse_tag
from jpki.wareki import Era

__all__ = ["BASIC_OIDS", "BasicInfo", "Sex", "basic_info_from", "other_value", "utf8_value"]

OID_NAME = BasicInfoOID.NAME
OID_NAME_SUBSTITUTES = BasicInfoOID.NAME_SUBSTITUTES
OID_SEX = BasicInfoOID.SEX
OID_BIRTH_DATE = BasicInfoOID.BIRTH_DATE
OID_ADDRESS = BasicInfoOID.ADDRESS
OID_ADDRESS_SUBSTITUTES = BasicInfoOID.ADDRESS_SUBSTITUTES
BASIC_OIDS = (
    OID_NAME,
    OID_NAME_SUBSTITUTES,
    OID_SEX,
    OID_BIRTH_DATE,
    OID_ADDRESS,
    OID_ADDRESS_SUBSTITUTES,
)
_UTF8STRING = 0x0C


class Sex(IntEnum):
    """Sex as coded in the signing certificate (otherName ...8.5.5.3)."""

    MALE = 1
    FEMALE = 2
    UNKNOWN = 3


@dataclass(frozen=True)
class BasicInfo:
    """The basic 4 information (基本4情報) of a signing certificate.

    ``birth_date`` is None when the certificate does not give a whole date (era digit 0, or
    month or day 00 / no such day): ``birth_date_raw`` keeps the ``EYYYYMMDD`` text as
    written. A substitute-flag string whose length does not match its text is kept as
    written (``*_substitutes`` then has that many flags) and ``substitute_flags_consistent``
    is False.
    """

    name: str
    name_substitutes: tuple[bool, ...]  # one flag per character (code point) of ``name``
    sex: Sex
    birth_date: date | None
    birth_era: Era
    address: str
    address_substitutes: tuple[bool, ...]
    # otherName entries with OIDs we do not know (e.g. a former surname), kept as text;
    # a value that is not a UTF8String is kept as "der:" + hex of its DER.
    other: Mapping[str, str] = field(default_factory=dict)
    birth_date_raw: str = field(default="", compare=False)
    substitute_flags_consistent: bool = True

    def as_dict(self) -> dict[str, Any]:
        """The JSON form: every field, sex and era as lower-case names, dates in ISO 8601."""
        return {
            "name": self.name,
            "name_substitutes": list(self.name_substitutes),
            "sex": self.sex.name.lower(),
            "birth_date": self.birth_date.isoformat() if self.birth_date is not None else None,
            "birth_date_raw": self.birth_date_raw,
            "birth_era": self.birth_era.name.lower(),
            "address": self.address,
            "address_substitutes": list(self.address_substitutes),
            "substitute_flags_consistent": self.substitute_flags_consistent,
            "other": dict(self.other),
        }


def utf8_value(oid: str, der: bytes) -> str:
    """The text of a ``UTF8String``; anything else is an error."""
    try:
        tag, pos = parse_tag(der)
        length, pos = parse_length(der, pos)
    except TlvError as exc:
        raise CertificateError(f"otherName {oid}: malformed value: {exc}") from None
    if tag != _UTF8STRING:
        raise CertificateError(f"otherName {oid}: expected a UTF8String, found tag 0x{tag:X}")
    if pos + length != len(der):
        raise CertificateError(f"otherName {oid}: value length does not match its encoding")
    try:
        return der[pos:].decode("utf-8")
    except UnicodeDecodeError:
        raise CertificateError(f"otherName {oid}: UTF8String is not valid UTF-8") from None


def other_value(der: bytes) -> str:
    """The UTF-8 text of an otherName value."""
    try:
        return utf8_value("", der)
    except CertificateError:
        return "der:" + der.hex()


def _flags(oid: str, text: str, what: str, target: str) -> tuple[tuple[bool, ...], bool]:
    """(flags, whether there is exactly one per character of ``target``)."""
    if any(c not in "01" for c in text):
        raise CertificateError(f"otherName {oid}: {what} must be digits 0/1, got {text!r}")
    return tuple(c == "1" for c in text), len(text) == len(target)


def _birth(text: str) -> tuple[date | None, Era]:
    """The birth date code ``EYYYYMMDD``: (Gregorian date or None if not whole, era)."""
    if len(text) != 9 or not text.isascii() or not text.isdigit():
        raise CertificateError(f"birth date {text!r} is not EYYYYMMDD")
    era_digit = int(text[0])
    if era_digit > max(Era):
        raise CertificateError(f"birth date {text!r}: unknown era digit {era_digit}")
    era = Era(era_digit)
    if era is Era.UNKNOWN:
        return None, era  # the era is not known, so neither is the date
    try:
        d = date(int(text[1:5]), int(text[5:7]), int(text[7:9]))
    except ValueError:
        return None, era  # month or day unknown (00), or no such day: keep the text only
    return d, era


def basic_info_from(values: dict[str, str], other: dict[str, str]) -> BasicInfo:
    """Basic 4 information from the subjectAltName otherName values."""
    missing = [oid for oid in BASIC_OIDS if oid not in values]
    if missing:
        raise CertificateError(f"basic information incomplete: missing otherName {missing[0]}")
    name = values[OID_NAME]
    address = values[OID_ADDRESS]
    sex_text = values[OID_SEX]
    if sex_text not in ("1", "2", "3"):
        raise CertificateError(f"sex must be 1, 2 or 3, got {sex_text!r}")
    birth_raw = values[OID_BIRTH_DATE]
    birth, era = _birth(birth_raw)
    name_flags, name_ok = _flags(
        OID_NAME_SUBSTITUTES, values[OID_NAME_SUBSTITUTES], "name substitute flags", name
    )
    address_flags, address_ok = _flags(
        OID_ADDRESS_SUBSTITUTES,
        values[OID_ADDRESS_SUBSTITUTES],
        "address substitute flags",
        address,
    )
    return BasicInfo(
        name=name,
        name_substitutes=name_flags,
        sex=Sex(int(sex_text)),
        birth_date=birth,
        birth_era=era,
        address=address,
        address_substitutes=address_flags,
        other=other,
        birth_date_raw=birth_raw,
        substitute_flags_consistent=name_ok and address_ok,
    )
