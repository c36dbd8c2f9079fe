"""JPKI certificate model: kind, basic 4 information, CRL DPs, policies, key ids, validity.

``JpkiCertificate`` wraps a ``cryptography`` certificate and parses each field lazily, once
(``cached_property``): a verifier on a hot path pays only for what it reads. The raw DER given
to ``load`` is kept as is (never re-encoded), and ``tbs_der`` is sliced from it.

Kind rule (first match wins; docs/cert.md has the same table):

1. BasicConstraints ``CA:TRUE`` with keyCertSign, subject ``O`` is ``JPKI`` or ``JPKI-TEST``:
   an ``OU`` ending "for digital signature" → ``signing_ca``; "for user authentication" →
   ``authentication_ca``; otherwise ``unknown``. Other CA certificates → ``unknown``.
2. Not a CA and ExtendedKeyUsage contains id-kp-OCSPSigning → ``ocsp_responder``.
3. A JPKI certificate policy (arc 1.2.392.200149.8.5.1) decides the candidate kind:
   ``.1.1.20`` (production) / ``.1.0.20`` (test cards) → ``signing``; ``.1.1.40`` →
   ``phone_signing``; ``.1.3.30`` → ``authentication``; ``.1.3.40`` → ``phone_authentication``
   (by analogy with ``.1.1.40``, unconfirmed). The KeyUsage must agree — signing kinds need
   digitalSignature + nonRepudiation, authentication kinds digitalSignature without
   nonRepudiation — else ``unknown``.
4. No JPKI policy: issuer ``O`` is ``JPKI``/``JPKI-TEST`` and the issuer ``OU`` names the
   hierarchy ("for digital signature" / "for user authentication") with the matching KeyUsage
   as in 3 → ``signing`` / ``authentication``.
5. Otherwise ``unknown``.

``is_test`` is true for the test policy arc ``1.2.392.200149.8.5.1.0.*`` or when the subject or
issuer ``O`` is ``JPKI-TEST``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import IntEnum, StrEnum
from functools import cached_property
from typing import Any, TypeVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
    ExtendedKeyUsageOID,
    ExtensionOID,
    NameOID,
)

from jpki.errors import CertificateError, TlvError
from jpki.oid import BasicInfoOID, JpkiPolicyOID
from jpki.oid import ExtensionOID as _Ext
from jpki.oid import NameOID as _NameOID
from jpki.tlv import decode_oid, parse_length, parse_tag
from jpki.wareki import Era, era_for_date

__all__ = [
    "BasicInfo",
    "CertKind",
    "DistributionPointName",
    "Era",
    "JpkiCertificate",
    "Sex",
    "era_for_date",
    "name_to_text",
]

_POLICY_ARC = JpkiPolicyOID.ARC
_TEST_POLICY_ARC = JpkiPolicyOID.TEST_ARC
OID_NAME = BasicInfoOID.NAME
OID_NAME_SUBSTITUTES = BasicInfoOID.NAME_SUBSTITUTES
OID_SEX = BasicInfoOID.SEX
OID_BIRTH_DATE = BasicInfoOID.BIRTH_DATE
OID_ADDRESS = BasicInfoOID.ADDRESS
OID_ADDRESS_SUBSTITUTES = BasicInfoOID.ADDRESS_SUBSTITUTES
_BASIC_OIDS = (
    OID_NAME,
    OID_NAME_SUBSTITUTES,
    OID_SEX,
    OID_BIRTH_DATE,
    OID_ADDRESS,
    OID_ADDRESS_SUBSTITUTES,
)
_JPKI_ORGS = ("JPKI", "JPKI-TEST")
_SIGN_OU = "for digital signature"
_AUTH_OU = "for user authentication"
_UTF8STRING = 0x0C

# Errors cryptography raises while lazily decoding a malformed certificate.
_DECODE_ERRORS = (
    ValueError,
    TypeError,
    OverflowError,
    KeyError,  # unknown string tag inside a Name
    UnsupportedAlgorithm,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
)


class CertKind(StrEnum):
    """What a certificate is for, by the rule in the module docstring."""

    SIGNING = "signing"
    AUTHENTICATION = "authentication"
    SIGNING_CA = "signing_ca"
    AUTHENTICATION_CA = "authentication_ca"
    PHONE_SIGNING = "phone_signing"
    PHONE_AUTHENTICATION = "phone_authentication"
    OCSP_RESPONDER = "ocsp_responder"
    UNKNOWN = "unknown"


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


@dataclass(frozen=True)
class DistributionPointName:
    """One CRL distribution point full name: a directoryName or a URI."""

    directory_name: x509.Name | None = None
    uri: str | None = None

    @property
    def text(self) -> str:
        if self.directory_name is not None:
            return name_to_text(self.directory_name)
        return self.uri or ""

    def as_dict(self) -> dict[str, str]:
        if self.directory_name is not None:
            return {"type": "directoryName", "value": self.text}
        return {"type": "uri", "value": self.text}


_SHORT_NAMES = {
    NameOID.COUNTRY_NAME: "C",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.COMMON_NAME: "CN",
    NameOID.LOCALITY_NAME: "L",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.SERIAL_NUMBER: "serialNumber",
    NameOID.EMAIL_ADDRESS: "emailAddress",
}


def name_to_text(name: x509.Name) -> str:
    """``C=JP, O=JPKI, OU=…`` in certificate order (as openssl prints it), not RFC 4514 order."""
    parts = []
    for attr in name:
        key = _SHORT_NAMES.get(attr.oid, attr.oid.dotted_string)
        value = attr.value if isinstance(attr.value, str) else attr.value.hex()
        parts.append(f"{key}={value}")
    return ", ".join(parts)


T = TypeVar("T")


def _decoding(fn: Callable[[JpkiCertificate], T]) -> Callable[[JpkiCertificate], T]:
    """Turn cryptography's lazy-decoding errors into ``CertificateError``."""

    def wrapper(self: JpkiCertificate) -> T:
        try:
            return fn(self)
        except _DECODE_ERRORS as exc:
            raise CertificateError(f"malformed certificate ({fn.__name__}): {exc}") from None

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


def _parse_der(data: bytes) -> x509.Certificate:
    try:
        tag, pos = parse_tag(data)
        length, pos = parse_length(data, pos)
    except TlvError as exc:
        raise CertificateError(f"not a DER certificate: {exc}") from None
    if tag != 0x30:
        raise CertificateError("not a DER certificate: does not start with a SEQUENCE")
    if pos + length != len(data):
        raise CertificateError(
            f"not a DER certificate: header says {pos + length} bytes, got {len(data)}"
        )
    try:
        with warnings.catch_warnings():
            # e.g. a non-positive serial: deprecated now, rejected by later cryptography
            warnings.simplefilter("error", CryptographyDeprecationWarning)
            return x509.load_der_x509_certificate(data)
    except (*_DECODE_ERRORS, x509.InvalidVersion, CryptographyDeprecationWarning) as exc:
        raise CertificateError(f"malformed certificate: {exc}") from None


def _pem_to_der(data: bytes) -> bytes:
    begin = b"-----BEGIN CERTIFICATE-----"
    end = b"-----END CERTIFICATE-----"
    start = data.find(begin)
    stop = data.find(end, start + len(begin))
    if start < 0 or stop < 0:
        raise CertificateError("PEM input has no complete CERTIFICATE block")
    return _b64(data[start + len(begin) : stop])


def _b64(body: bytes) -> bytes:
    compact = b"".join(body.split())
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise CertificateError("certificate is neither DER, PEM nor valid base64") from None


# --- raw DER reading ----------------------------------------------------------------------
# cryptography decodes *all* extensions and names into Python objects on first access (~50-80
# µs for a signing certificate); the fields that classify a certificate are read here straight
# from the DER by offsets (no copies, no objects per element), strictly: anything unexpected is
# a CertificateError. tests/test_cert.py checks these fields against cryptography's decode.

_OID_O = _NameOID.ORGANIZATION
_OID_OU = _NameOID.ORGANIZATIONAL_UNIT
_EXT_BC = _Ext.BASIC_CONSTRAINTS
_EXT_KU = _Ext.KEY_USAGE
_EXT_EKU = _Ext.EXTENDED_KEY_USAGE
_EXT_POLICIES = _Ext.CERTIFICATE_POLICIES
_EXT_SKI = _Ext.SUBJECT_KEY_IDENTIFIER
_EXT_AKI = _Ext.AUTHORITY_KEY_IDENTIFIER
_EXT_SAN = _Ext.SUBJECT_ALT_NAME
_KU_BITS = (
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

_Item = tuple[int, int, int]  # (tag, value start, value end) within the certificate DER


def _items(data: bytes, start: int, end: int, what: str) -> list[_Item]:
    """The DER elements between ``start`` and ``end`` (single-byte tags, as X.509 uses)."""
    out: list[_Item] = []
    pos = start
    while pos < end:
        if pos + 2 > end:
            raise CertificateError(f"malformed certificate ({what}): truncated element")
        tag = data[pos]
        if tag & 0x1F == 0x1F:
            raise CertificateError(f"malformed certificate ({what}): unexpected multi-byte tag")
        n = data[pos + 1]
        pos += 2
        if n & 0x80:
            k = n & 0x7F
            if k == 0 or k > 4 or pos + k > end:
                raise CertificateError(f"malformed certificate ({what}): bad length")
            n = int.from_bytes(data[pos : pos + k], "big")
            pos += k
        if pos + n > end:
            raise CertificateError(f"malformed certificate ({what}): element runs past its end")
        out.append((tag, pos, pos + n))
        pos += n
    return out


def _expect(item: _Item, tag: int, what: str) -> _Item:
    if item[0] != tag:
        raise CertificateError(
            f"malformed certificate ({what}): expected tag 0x{tag:02X}, found 0x{item[0]:02X}"
        )
    return item


def _only(data: bytes, start: int, end: int, tag: int, what: str) -> _Item:
    """The single element of tag ``tag`` that must fill ``start..end``."""
    items = _items(data, start, end, what)
    if len(items) != 1:
        raise CertificateError(f"malformed certificate ({what}): expected one element")
    return _expect(items[0], tag, what)


def _inside(data: bytes, item: _Item, what: str) -> list[_Item]:
    return _items(data, item[1], item[2], what)


@functools.lru_cache(maxsize=1024)
def _oid_text(raw: bytes) -> str:
    try:
        return decode_oid(raw)
    except TlvError:
        raise CertificateError("malformed certificate: bad OBJECT IDENTIFIER") from None


def _oid(data: bytes, item: _Item, what: str) -> str:
    _, a, b = _expect(item, 0x06, what)
    return _oid_text(data[a:b])


def _string(data: bytes, item: _Item) -> str:
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


def _name_values(data: bytes, name: _Item, wanted: tuple[str, ...]) -> list[tuple[str, str]]:
    """(OID, text) of the attributes of a Name whose OID is in ``wanted``, in order."""
    out: list[tuple[str, str]] = []
    for rdn in _inside(data, name, "name"):
        for atv in _inside(data, _expect(rdn, 0x31, "name"), "name"):
            parts = _inside(data, _expect(atv, 0x30, "name"), "name")
            if len(parts) != 2:
                raise CertificateError("malformed certificate (name): bad attribute")
            oid = _oid(data, parts[0], "name")
            if oid in wanted:
                out.append((oid, _string(data, parts[1])))
    return out


@dataclass(frozen=True)
class _RawTbs:
    tbs: _Item  # the TBSCertificate element (its header starts at ``tbs_start``)
    tbs_start: int
    issuer: _Item
    subject: _Item
    extensions: dict[str, tuple[bool, int, int]]  # OID -> (critical, extnValue start, end)


def _raw_tbs(der: bytes) -> _RawTbs:
    outer = _only(der, 0, len(der), 0x30, "Certificate")
    top = _inside(der, outer, "Certificate")
    if len(top) != 3:
        raise CertificateError("malformed certificate: expected tbs, algorithm and signature")
    tbs = _expect(top[0], 0x30, "TBSCertificate")
    fields = _inside(der, tbs, "TBSCertificate")
    i = 1 if fields and fields[0][0] == 0xA0 else 0
    if len(fields) < i + 6:
        raise CertificateError("malformed certificate: TBSCertificate is missing fields")
    issuer = _expect(fields[i + 2], 0x30, "issuer")
    subject = _expect(fields[i + 4], 0x30, "subject")
    extensions: dict[str, tuple[bool, int, int]] = {}
    for f in fields[i + 6 :]:
        if f[0] != 0xA3:
            continue
        for ext in _inside(der, _only(der, f[1], f[2], 0x30, "extensions"), "extensions"):
            parts = _inside(der, _expect(ext, 0x30, "extension"), "extension")
            if len(parts) not in (2, 3):
                raise CertificateError("malformed certificate: bad extension")
            oid = _oid(der, parts[0], "extension")
            critical = False
            if len(parts) == 3:
                _, a, b = _expect(parts[1], 0x01, "critical")
                critical = der[a:b] != b"\x00"
            if oid in extensions:
                raise CertificateError(f"malformed certificate: extension {oid} appears twice")
            _, a, b = _expect(parts[-1], 0x04, f"extension {oid}")
            extensions[oid] = (critical, a, b)
    return _RawTbs(tbs, outer[1], issuer, subject, extensions)


def _other_names(der: bytes, start: int, end: int) -> list[tuple[str, bytes]]:
    """(type-id, DER of the value inside [0] EXPLICIT) of each otherName in a SAN value."""
    out: list[tuple[str, bytes]] = []
    for gn in _inside(der, _only(der, start, end, 0x30, "subjectAltName"), "subjectAltName"):
        if gn[0] != 0xA0:
            continue
        parts = _inside(der, gn, "otherName")
        if len(parts) != 2:
            raise CertificateError("malformed certificate: otherName needs type-id and value")
        oid = _oid(der, parts[0], "otherName")
        _, a, b = _expect(parts[1], 0xA0, f"otherName {oid}")
        # exactly one element inside [0] EXPLICIT; its full encoding is the value
        if len(_items(der, a, b, f"otherName {oid}")) != 1:
            raise CertificateError(f"otherName {oid}: [0] must hold exactly one value")
        out.append((oid, der[a:b]))
    return out


class JpkiCertificate:
    """A certificate of the JPKI hierarchies (or any X.509 certificate, kind ``unknown``)."""

    def __init__(self, certificate: x509.Certificate, der: bytes | None = None) -> None:
        self.certificate = certificate
        self._der = der

    @classmethod
    def load(cls, data: bytes) -> JpkiCertificate:
        """Load one certificate from DER, PEM or bare base64 (detected automatically)."""
        if not data:
            raise CertificateError("empty certificate input")
        stripped = data.strip()
        if stripped.startswith(b"-----BEGIN"):
            der = _pem_to_der(stripped)
        elif data[:1] == b"\x30":
            der = bytes(data)
        else:
            der = _b64(stripped)
        return cls(_parse_der(der), der)

    @classmethod
    def from_cryptography(cls, cert: x509.Certificate) -> JpkiCertificate:
        return cls(cert)

    def __repr__(self) -> str:
        return f"JpkiCertificate(serial={self.serial_hex}, subject={self.subject_text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JpkiCertificate) and self.der == other.der

    def __hash__(self) -> int:
        return hash(self.fingerprint_sha256)

    # --- raw ------------------------------------------------------------------------------

    @property
    def der(self) -> bytes:
        if self._der is None:
            from cryptography.hazmat.primitives.serialization import Encoding

            self._der = self.certificate.public_bytes(Encoding.DER)
        return self._der

    @cached_property
    def fingerprint_sha256(self) -> bytes:
        return hashlib.sha256(self.der).digest()

    @cached_property
    def tbs_der(self) -> bytes:
        """The signed part (TBSCertificate), sliced from the raw DER without re-encoding."""
        raw = self._raw
        return self.der[raw.tbs_start : raw.tbs[2]]

    @cached_property
    @_decoding
    def public_key(self) -> CertificatePublicKeyTypes:
        return self.certificate.public_key()

    # --- names, serial, validity ----------------------------------------------------------

    @cached_property
    @_decoding
    def subject(self) -> x509.Name:
        return self.certificate.subject

    @cached_property
    @_decoding
    def issuer(self) -> x509.Name:
        return self.certificate.issuer

    @cached_property
    def subject_text(self) -> str:
        return name_to_text(self.subject)

    @cached_property
    def issuer_text(self) -> str:
        return name_to_text(self.issuer)

    @cached_property
    @_decoding
    def serial(self) -> int:
        return self.certificate.serial_number

    @cached_property
    def serial_hex(self) -> str:
        """Upper-case hex, even number of digits (negative serials keep a leading '-')."""
        s = self.serial
        digits = f"{abs(s):X}"
        digits = digits.zfill(len(digits) + len(digits) % 2)
        return f"-{digits}" if s < 0 else digits

    @cached_property
    @_decoding
    def not_before(self) -> datetime:
        return self.certificate.not_valid_before_utc

    @cached_property
    @_decoding
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc

    # --- extensions -----------------------------------------------------------------------

    @cached_property
    @_decoding
    def _extensions(self) -> dict[str, x509.Extension[x509.ExtensionType]]:
        return {ext.oid.dotted_string: ext for ext in self.certificate.extensions}

    def _ext(self, oid: x509.ObjectIdentifier, kind: type[T]) -> T | None:
        ext = self._extensions.get(oid.dotted_string)
        if ext is None:
            return None
        if not isinstance(ext.value, kind):
            # cryptography returns UnrecognizedExtension when it cannot parse a known one
            raise CertificateError(f"malformed certificate: extension {oid.dotted_string}")
        return ext.value

    @cached_property
    def _raw(self) -> _RawTbs:
        return _raw_tbs(self.der)

    def _raw_ext(self, oid: str) -> list[_Item] | None:
        """The elements inside an extension's extnValue, or None if it is absent."""
        found = self._raw.extensions.get(oid)
        return None if found is None else _items(self.der, found[1], found[2], oid)

    def _raw_ext_single(self, oid: str, tag: int, what: str) -> _Item | None:
        items = self._raw_ext(oid)
        if items is None:
            return None
        if len(items) != 1:
            raise CertificateError(f"malformed certificate ({what}): expected one element")
        return _expect(items[0], tag, what)

    @cached_property
    def is_ca(self) -> bool:
        bc = self._raw_ext_single(_EXT_BC, 0x30, "basicConstraints")
        if bc is None:
            return False
        parts = _inside(self.der, bc, "basicConstraints")
        if not parts or parts[0][0] != 0x01:
            return False
        return self.der[parts[0][1] : parts[0][2]] != b"\x00"

    @cached_property
    def key_usage(self) -> tuple[str, ...]:
        """KeyUsage bits set, by their RFC 5280 names, in RFC order (empty if absent)."""
        ku = self._raw_ext_single(_EXT_KU, 0x03, "keyUsage")
        if ku is None:
            return ()
        bits = self.der[ku[1] : ku[2]]
        if not bits or bits[0] > 7:
            raise CertificateError("malformed certificate: bad keyUsage BIT STRING")
        value = int.from_bytes(bits[1:], "big")
        width = 8 * (len(bits) - 1)
        return tuple(
            name for i, name in enumerate(_KU_BITS) if i < width and value >> (width - 1 - i) & 1
        )

    @cached_property
    def key_usage_critical(self) -> bool:
        found = self._raw.extensions.get(_EXT_KU)
        return bool(found and found[0])

    @cached_property
    def extended_key_usage(self) -> tuple[str, ...]:
        eku = self._raw_ext_single(_EXT_EKU, 0x30, "extKeyUsage")
        if eku is None:
            return ()
        return tuple(_oid(self.der, t, "extKeyUsage") for t in _inside(self.der, eku, "EKU"))

    @cached_property
    def policies(self) -> tuple[str, ...]:
        """Certificate policy OIDs (dotted strings)."""
        pol = self._raw_ext_single(_EXT_POLICIES, 0x30, "certificatePolicies")
        if pol is None:
            return ()
        out = []
        for info in _inside(self.der, pol, "certificatePolicies"):
            parts = _inside(self.der, _expect(info, 0x30, "policyInformation"), "policy")
            if not parts:
                raise CertificateError("malformed certificate: empty policyInformation")
            out.append(_oid(self.der, parts[0], "policyIdentifier"))
        return tuple(out)

    @cached_property
    def subject_key_id(self) -> bytes | None:
        ski = self._raw_ext_single(_EXT_SKI, 0x04, "subjectKeyIdentifier")
        return None if ski is None else self.der[ski[1] : ski[2]]

    @cached_property
    def authority_key_id(self) -> bytes | None:
        aki = self._raw_ext_single(_EXT_AKI, 0x30, "authorityKeyIdentifier")
        if aki is None:
            return None
        for tag, a, b in _inside(self.der, aki, "authorityKeyIdentifier"):
            if tag == 0x80:
                return self.der[a:b]
        return None

    @cached_property
    def crl_distribution_points(self) -> tuple[DistributionPointName, ...]:
        """Full names of all CRL distribution points (directoryName and URI forms)."""
        dps = self._ext(ExtensionOID.CRL_DISTRIBUTION_POINTS, x509.CRLDistributionPoints)
        out: list[DistributionPointName] = []
        for dp in dps or ():
            for gn in dp.full_name or ():
                if isinstance(gn, x509.DirectoryName):
                    out.append(DistributionPointName(directory_name=gn.value))
                elif isinstance(gn, x509.UniformResourceIdentifier):
                    out.append(DistributionPointName(uri=gn.value))
        return tuple(out)

    @cached_property
    def crl_dp_directory_names(self) -> tuple[x509.Name, ...]:
        return tuple(d.directory_name for d in self.crl_distribution_points if d.directory_name)

    @cached_property
    def ocsp_urls(self) -> tuple[str, ...]:
        aia = self._ext(ExtensionOID.AUTHORITY_INFORMATION_ACCESS, x509.AuthorityInformationAccess)
        return tuple(
            ad.access_location.value
            for ad in aia or ()
            if ad.access_method == AuthorityInformationAccessOID.OCSP
            and isinstance(ad.access_location, x509.UniformResourceIdentifier)
        )

    # --- classification -------------------------------------------------------------------

    def _name_mentions(self, name: _Item, text: str) -> bool:
        """Cheap pre-check: could an attribute of ``name`` contain ``text`` (ASCII)?"""
        chunk = self.der[name[1] : name[2]]
        return any(text.encode(enc) in chunk for enc in ("latin-1", "utf-16-be", "utf-32-be"))

    def _org_units(self, name: _Item) -> list[tuple[str, str]]:
        # every O/OU we look for contains "JPKI": most other names need no walk
        if not self._name_mentions(name, "JPKI"):
            return []
        return _name_values(self.der, name, (_OID_O, _OID_OU))

    @cached_property
    def _subject_org_units(self) -> list[tuple[str, str]]:
        return self._org_units(self._raw.subject)

    @cached_property
    def _issuer_org_units(self) -> list[tuple[str, str]]:
        return self._org_units(self._raw.issuer)

    @staticmethod
    def _hierarchy(attrs: list[tuple[str, str]]) -> str | None:
        """'sign' / 'auth' from an ``OU`` of a JPKI (or JPKI-TEST) name, else None."""
        if not any(oid == _OID_O and v in _JPKI_ORGS for oid, v in attrs):
            return None
        for oid, ou in attrs:
            if oid == _OID_OU and ou.endswith(_SIGN_OU):
                return "sign"
            if oid == _OID_OU and ou.endswith(_AUTH_OU):
                return "auth"
        return None

    @cached_property
    def kind(self) -> CertKind:
        if self.is_ca:
            if "keyCertSign" not in self.key_usage:
                return CertKind.UNKNOWN
            return {"sign": CertKind.SIGNING_CA, "auth": CertKind.AUTHENTICATION_CA}.get(
                self._hierarchy(self._subject_org_units) or "", CertKind.UNKNOWN
            )
        if ExtendedKeyUsageOID.OCSP_SIGNING.dotted_string in self.extended_key_usage:
            return CertKind.OCSP_RESPONDER
        candidate = self._kind_from_policy()
        if candidate is None:
            candidate = {"sign": CertKind.SIGNING, "auth": CertKind.AUTHENTICATION}.get(
                self._hierarchy(self._issuer_org_units) or "", CertKind.UNKNOWN
            )
        ku = self.key_usage
        if candidate in (CertKind.SIGNING, CertKind.PHONE_SIGNING):
            ok = "digitalSignature" in ku and "nonRepudiation" in ku
        elif candidate in (CertKind.AUTHENTICATION, CertKind.PHONE_AUTHENTICATION):
            ok = "digitalSignature" in ku and "nonRepudiation" not in ku
        else:
            ok = False
        return candidate if ok else CertKind.UNKNOWN

    def _kind_from_policy(self) -> CertKind | None:
        for oid in self.policies:
            if not oid.startswith(_POLICY_ARC):
                continue
            arc = oid[len(_POLICY_ARC) :]
            if arc in ("1.20", "0.20"):
                return CertKind.SIGNING
            if arc == "1.40":
                return CertKind.PHONE_SIGNING
            if arc == "3.30":
                return CertKind.AUTHENTICATION
            if arc == "3.40":
                return CertKind.PHONE_AUTHENTICATION
        return None

    @cached_property
    def is_test(self) -> bool:
        if any(p.startswith(_TEST_POLICY_ARC) for p in self.policies):
            return True
        raw = self._raw
        if self._name_mentions(raw.subject, "JPKI-TEST") and _test_org(self._subject_org_units):
            return True
        return self._name_mentions(raw.issuer, "JPKI-TEST") and _test_org(self._issuer_org_units)

    # --- basic 4 information --------------------------------------------------------------

    @cached_property
    def basic_info(self) -> BasicInfo | None:
        """Basic 4 information from the subjectAltName otherNames; None if there is none."""
        found = self._raw.extensions.get(_EXT_SAN)
        if found is None:
            return None
        values: dict[str, str] = {}
        other: dict[str, str] = {}
        for oid, value in _other_names(self.der, found[1], found[2]):
            if oid in _BASIC_OIDS:
                if oid in values:
                    raise CertificateError(f"otherName {oid} appears twice")
                values[oid] = _utf8_value(oid, value)
            else:
                other[oid] = _other_value(value)
        if not values:
            return None
        return _basic_info(values, other)

    # --- output ---------------------------------------------------------------------------

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (schema in docs/cert.md)."""
        basic = self.basic_info
        return {
            "kind": self.kind.value,
            "is_test": self.is_test,
            "is_ca": self.is_ca,
            "subject": self.subject_text,
            "issuer": self.issuer_text,
            "serial_hex": self.serial_hex,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "policies": list(self.policies),
            "key_usage": list(self.key_usage),
            "extended_key_usage": list(self.extended_key_usage),
            "fingerprint_sha256": self.fingerprint_sha256.hex(),
            "crl_distribution_points": [dp.as_dict() for dp in self.crl_distribution_points],
            "ocsp_urls": list(self.ocsp_urls),
            "authority_key_id": _hex_or_none(self.authority_key_id),
            "subject_key_id": _hex_or_none(self.subject_key_id),
            "basic_info": basic.as_dict() if basic else None,
        }


def _test_org(attrs: list[tuple[str, str]]) -> bool:
    return any(oid == _OID_O and v == "JPKI-TEST" for oid, v in attrs)


def _hex_or_none(b: bytes | None) -> str | None:
    return b.hex() if b is not None else None


def _utf8_value(oid: str, der: bytes) -> str:
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


def _other_value(der: bytes) -> str:
    try:
        return _utf8_value("", der)
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


def _basic_info(values: dict[str, str], other: dict[str, str]) -> BasicInfo:
    missing = [oid for oid in _BASIC_OIDS if oid not in values]
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
