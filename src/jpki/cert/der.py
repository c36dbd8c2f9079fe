"""The certificate's DER reader: fields read straight from the raw encoding by offsets.

cryptography decodes *all* extensions and names into Python objects on first access (~50-80
µs for a signing certificate); the fields that classify a certificate are read here straight
from the DER by offsets (no copies, no objects per element), strictly: anything unexpected is
a CertificateError. tests/test_cert.py checks these fields against cryptography's decode.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from jpki.errors import CertificateError, TlvError
from jpki.oid import ExtensionOID as _Ext
from jpki.oid import NameOID as _NameOID
from jpki.tlv import decode_oid, read_elements

OID_O = _NameOID.ORGANIZATION
OID_OU = _NameOID.ORGANIZATIONAL_UNIT
EXT_BC = _Ext.BASIC_CONSTRAINTS
EXT_KU = _Ext.KEY_USAGE
EXT_EKU = _Ext.EXTENDED_KEY_USAGE
EXT_POLICIES = _Ext.CERTIFICATE_POLICIES
EXT_SKI = _Ext.SUBJECT_KEY_IDENTIFIER
EXT_AKI = _Ext.AUTHORITY_KEY_IDENTIFIER
EXT_SAN = _Ext.SUBJECT_ALT_NAME
KU_BITS = (
    "digitalSignature",
    "nonRepudiation",
    "keyEncipherment",
    "dataEncipherment",
    "keyAgreement",
    "keyCertSign",
    "cRLSign",
    "encipherOnly",
    "decipherOnly",
)

Item = tuple[int, int, int]  # (tag, value start, value end) within the certificate DER


def elements(data: bytes, start: int, end: int, what: str) -> list[Item]:
    """The DER elements between ``start`` and ``end`` (single-byte tags, as X.509 uses)."""
    try:
        found = read_elements(data, start, end)
    except TlvError as exc:
        raise CertificateError(f"malformed certificate ({what}): {exc}") from None
    for tag, _, _ in found:
        if tag > 0xFF:
            raise CertificateError(f"malformed certificate ({what}): unexpected multi-byte tag")
    return found


def expect(item: Item, tag: int, what: str) -> Item:
    """The item, checked to have ``tag`` (``CertificateError`` otherwise)."""
    if item[0] != tag:
        raise CertificateError(
            f"malformed certificate ({what}): expected tag 0x{tag:02X}, found 0x{item[0]:02X}"
        )
    return item


def only(data: bytes, start: int, end: int, tag: int, what: str) -> Item:
    """The single element of tag ``tag`` that must fill ``start..end``."""
    found = elements(data, start, end, what)
    if len(found) != 1:
        raise CertificateError(f"malformed certificate ({what}): expected one element")
    return expect(found[0], tag, what)


def inside(data: bytes, item: Item, what: str) -> list[Item]:
    """The DER items inside a constructed item."""
    return elements(data, item[1], item[2], what)


@functools.lru_cache(maxsize=1024)
def oid_text(raw: bytes) -> str:
    try:
        return decode_oid(raw)
    except TlvError:
        raise CertificateError("malformed certificate: bad OBJECT IDENTIFIER") from None


def read_oid(data: bytes, item: Item, what: str) -> str:
    """The dotted OID text of an OBJECT IDENTIFIER item."""
    _, a, b = expect(item, 0x06, what)
    return oid_text(data[a:b])


def string(data: bytes, item: Item) -> str:
    """The text of a DER string item (any of the X.509 string types)."""
    tag, a, b = item
    raw = data[a:b]
    try:
        if tag == 0x0C:
            return raw.decode("utf-8")
        if tag in (0x13, 0x16, 0x14):  # Printable, IA5, Teletex
            return raw.decode("latin-1")
        if tag == 0x1E:
            return raw.decode("utf-16-be")
        if tag == 0x1C:
            return raw.decode("utf-32-be")
    except UnicodeDecodeError:
        raise CertificateError("malformed certificate: undecodable name attribute") from None
    return raw.hex()


def name_values(data: bytes, name: Item, wanted: tuple[str, ...]) -> list[tuple[str, str]]:
    """(OID, text) of the attributes of a Name whose OID is in ``wanted``, in order."""
    out: list[tuple[str, str]] = []
    for rdn in inside(data, name, "name"):
        for atv in inside(data, expect(rdn, 0x31, "name"), "name"):
            parts = inside(data, expect(atv, 0x30, "name"), "name")
            if len(parts) != 2:
                raise CertificateError("malformed certificate (name): bad attribute")
            oid = read_oid(data, parts[0], "name")
            if oid in wanted:
                out.append((oid, string(data, parts[1])))
    return out


@dataclass(frozen=True)
class RawTbs:
    """Offsets of the raw TBSCertificate fields jpki reads without re-encoding."""

    tbs: Item  # the TBSCertificate element (its header starts at ``tbs_start``)
    tbs_start: int
    issuer: Item
    subject: Item
    extensions: dict[str, tuple[bool, int, int]]  # OID -> (critical, extnValue start, end)


def raw_tbs(der: bytes) -> RawTbs:
    """The raw TBSCertificate layout of a DER certificate."""
    outer = only(der, 0, len(der), 0x30, "Certificate")
    top = inside(der, outer, "Certificate")
    if len(top) != 3:
        raise CertificateError("malformed certificate: expected tbs, algorithm and signature")
    tbs = expect(top[0], 0x30, "TBSCertificate")
    fields = inside(der, tbs, "TBSCertificate")
    i = 1 if fields and fields[0][0] == 0xA0 else 0
    if len(fields) < i + 6:
        raise CertificateError("malformed certificate: TBSCertificate is missing fields")
    issuer = expect(fields[i + 2], 0x30, "issuer")
    subject = expect(fields[i + 4], 0x30, "subject")
    extensions: dict[str, tuple[bool, int, int]] = {}
    for f in fields[i + 6 :]:
        if f[0] != 0xA3:
            continue
        for ext in inside(der, only(der, f[1], f[2], 0x30, "extensions"), "extensions"):
            parts = inside(der, expect(ext, 0x30, "extension"), "extension")
            if len(parts) not in (2, 3):
                raise CertificateError("malformed certificate: bad extension")
            oid = read_oid(der, parts[0], "extension")
            critical = False
            if len(parts) == 3:
                _, a, b = expect(parts[1], 0x01, "critical")
                critical = der[a:b] != b"\x00"
            if oid in extensions:
                raise CertificateError(f"malformed certificate: extension {oid} appears twice")
            _, a, b = expect(parts[-1], 0x04, f"extension {oid}")
            extensions[oid] = (critical, a, b)
    return RawTbs(tbs, outer[1], issuer, subject, extensions)


def other_names(der: bytes, start: int, end: int) -> list[tuple[str, bytes]]:
    """(type-id, DER of the value inside [0] EXPLICIT) of each otherName in a SAN value."""
    out: list[tuple[str, bytes]] = []
    for gn in inside(der, only(der, start, end, 0x30, "subjectAltName"), "subjectAltName"):
        if gn[0] != 0xA0:
            continue
        parts = inside(der, gn, "otherName")
        if len(parts) != 2:
            raise CertificateError("malformed certificate: otherName needs type-id and value")
        oid = read_oid(der, parts[0], "otherName")
        _, a, b = expect(parts[1], 0xA0, f"otherName {oid}")
        # exactly one element inside [0] EXPLICIT; its full encoding is the value
        if len(elements(der, a, b, f"otherName {oid}")) != 1:
            raise CertificateError(f"otherName {oid}: [0] must hold exactly one value")
        out.append((oid, der[a:b]))
    return out
