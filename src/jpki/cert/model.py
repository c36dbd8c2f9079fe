"""The JPKI certificate model: ``JpkiCertificate``, CRL distribution points, names.

``JpkiCertificate`` wraps a ``cryptography`` certificate and parses each field lazily, once
(``cached_property``): a verifier on a hot path pays only for what it reads. The raw DER given
to ``load`` is kept as is (never re-encoded), and ``tbs_der`` is sliced from it. What the
certificate is for is decided in :mod:`jpki.cert.kind`, the basic 4 information parsed in
:mod:`jpki.cert.basic_info`, the raw fields read by :mod:`jpki.cert.der`.

``is_test`` is true for the test policy arc ``1.2.392.200149.8.5.1.0.*`` or when the subject or
issuer ``O`` is ``JPKI-TEST``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
    ExtensionOID,
)

from jpki.cert.basic_info import BASIC_OIDS, BasicInfo, basic_info_from, other_value, utf8_value
from jpki.cert.der import (
    EXT_AKI,
    EXT_BC,
    EXT_EKU,
    EXT_KU,
    EXT_POLICIES,
    EXT_SAN,
    EXT_SKI,
    KU_BITS,
    OID_O,
    OID_OU,
    Item,
    RawTbs,
    elements,
    expect,
    inside,
    name_values,
    other_names,
    raw_tbs,
    read_oid,
)
from jpki.cert.kind import CertKind, classify, is_test_org
from jpki.cert.load import DECODE_ERRORS, b64, parse_der, pem_to_der
from jpki.errors import CertificateError
from jpki.oid import JpkiPolicyOID

__all__ = ["DistributionPointName", "JpkiCertificate", "name_to_text"]

_TEST_POLICY_ARC = JpkiPolicyOID.TEST_ARC


@dataclass(frozen=True)
class DistributionPointName:
    """One CRL distribution point full name: a directoryName or a URI."""

    directory_name: x509.Name | None = None
    uri: str | None = None

    @property
    def text(self) -> str:
        """The directoryName in RFC 4514 form, else the URI (empty when neither)."""
        if self.directory_name is not None:
            return name_to_text(self.directory_name)
        return self.uri or ""

    def as_dict(self) -> dict[str, str]:
        """The JSON form: ``{"type": "directoryName" or "uri", "value": text}``."""
        if self.directory_name is not None:
            return {"type": "directoryName", "value": self.text}
        return {"type": "uri", "value": self.text}


def serial_hex(serial: int) -> str:
    """The one serial rendering (JSON ``serial_hex``): upper-case hex, an even number of
    digits; a negative serial (malformed, but seen) keeps a leading '-'."""
    digits = f"{abs(serial):X}"
    digits = digits.zfill(len(digits) + len(digits) % 2)
    return f"-{digits}" if serial < 0 else digits


def name_to_text(name: x509.Name) -> str:
    """The one DN rendering of every command and JSON field: RFC 4514 (``CN=…,O=JPKI,C=JP``).

    Most specific first, ``,`` between RDNs, special characters escaped, so the string can
    be parsed back (``x509.Name.from_rfc4514_string``) and compared.
    """
    return name.rfc4514_string()


T = TypeVar("T")


def _decoding(fn: Callable[[JpkiCertificate], T]) -> Callable[[JpkiCertificate], T]:
    """Turn cryptography's lazy-decoding errors into ``CertificateError``."""

    def wrapper(self: JpkiCertificate) -> T:
        try:
            return fn(self)
        except DECODE_ERRORS as exc:
            raise CertificateError(f"malformed certificate ({fn.__name__}): {exc}") from None

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


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
            der = pem_to_der(stripped)
        elif data[:1] == b"\x30":
            der = bytes(data)
        else:
            der = b64(stripped)
        return cls(parse_der(der), der)

    @classmethod
    def from_cryptography(cls, cert: x509.Certificate) -> JpkiCertificate:
        """Wrap an already parsed ``cryptography`` certificate (its DER re-encoded on demand)."""
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
        """The DER as loaded (never re-encoded); encoded once when wrapped from ``cryptography``."""
        if self._der is None:
            from cryptography.hazmat.primitives.serialization import Encoding

            self._der = self.certificate.public_bytes(Encoding.DER)
        return self._der

    @cached_property
    def fingerprint_sha256(self) -> bytes:
        """SHA-256 of the DER (32 bytes)."""
        return hashlib.sha256(self.der).digest()

    @cached_property
    def tbs_der(self) -> bytes:
        """The signed part (TBSCertificate), sliced from the raw DER without re-encoding."""
        raw = self._raw
        return self.der[raw.tbs_start : raw.tbs[2]]

    @cached_property
    @_decoding
    def public_key(self) -> CertificatePublicKeyTypes:
        """The subject public key (``CertificateError`` when it does not decode)."""
        return self.certificate.public_key()

    # --- names, serial, validity ----------------------------------------------------------

    @cached_property
    @_decoding
    def subject(self) -> x509.Name:
        """The subject name (``CertificateError`` when it does not decode)."""
        return self.certificate.subject

    @cached_property
    @_decoding
    def issuer(self) -> x509.Name:
        """The issuer name (``CertificateError`` when it does not decode)."""
        return self.certificate.issuer

    @cached_property
    def subject_text(self) -> str:
        """The subject in RFC 4514 form (see ``name_to_text``)."""
        return name_to_text(self.subject)

    @cached_property
    def issuer_text(self) -> str:
        """The issuer in RFC 4514 form (see ``name_to_text``)."""
        return name_to_text(self.issuer)

    @cached_property
    @_decoding
    def serial(self) -> int:
        """The serial number (``CertificateError`` when it does not decode)."""
        return self.certificate.serial_number

    @cached_property
    def serial_hex(self) -> str:
        """Upper-case hex, even number of digits (negative serials keep a leading '-')."""
        return serial_hex(self.serial)

    @cached_property
    @_decoding
    def not_before(self) -> datetime:
        """Start of validity, timezone-aware UTC."""
        return self.certificate.not_valid_before_utc

    @cached_property
    @_decoding
    def not_after(self) -> datetime:
        """End of validity, timezone-aware UTC."""
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
    def _raw(self) -> RawTbs:
        return raw_tbs(self.der)

    def _raw_ext(self, oid: str) -> list[Item] | None:
        """The elements inside an extension's extnValue, or None if it is absent."""
        found = self._raw.extensions.get(oid)
        return None if found is None else elements(self.der, found[1], found[2], oid)

    def _raw_ext_single(self, oid: str, tag: int, what: str) -> Item | None:
        items = self._raw_ext(oid)
        if items is None:
            return None
        if len(items) != 1:
            raise CertificateError(f"malformed certificate ({what}): expected one element")
        return expect(items[0], tag, what)

    @cached_property
    def is_ca(self) -> bool:
        """True when basicConstraints is present and says cA TRUE."""
        bc = self._raw_ext_single(EXT_BC, 0x30, "basicConstraints")
        if bc is None:
            return False
        parts = inside(self.der, bc, "basicConstraints")
        if not parts or parts[0][0] != 0x01:
            return False
        return self.der[parts[0][1] : parts[0][2]] != b"\x00"

    @cached_property
    def key_usage(self) -> tuple[str, ...]:
        """KeyUsage bits set, by their RFC 5280 names, in RFC order (empty if absent)."""
        ku = self._raw_ext_single(EXT_KU, 0x03, "keyUsage")
        if ku is None:
            return ()
        bits = self.der[ku[1] : ku[2]]
        if not bits or bits[0] > 7:
            raise CertificateError("malformed certificate: bad keyUsage BIT STRING")
        value = int.from_bytes(bits[1:], "big")
        width = 8 * (len(bits) - 1)
        return tuple(
            name for i, name in enumerate(KU_BITS) if i < width and value >> (width - 1 - i) & 1
        )

    @cached_property
    def key_usage_critical(self) -> bool:
        """True when keyUsage is present and marked critical."""
        found = self._raw.extensions.get(EXT_KU)
        return bool(found and found[0])

    @cached_property
    def extended_key_usage(self) -> tuple[str, ...]:
        """The extKeyUsage purpose OIDs, dotted (empty when absent)."""
        eku = self._raw_ext_single(EXT_EKU, 0x30, "extKeyUsage")
        if eku is None:
            return ()
        return tuple(read_oid(self.der, t, "extKeyUsage") for t in inside(self.der, eku, "EKU"))

    @cached_property
    def policies(self) -> tuple[str, ...]:
        """Certificate policy OIDs (dotted strings)."""
        pol = self._raw_ext_single(EXT_POLICIES, 0x30, "certificatePolicies")
        if pol is None:
            return ()
        out = []
        for info in inside(self.der, pol, "certificatePolicies"):
            parts = inside(self.der, expect(info, 0x30, "policyInformation"), "policy")
            if not parts:
                raise CertificateError("malformed certificate: empty policyInformation")
            out.append(read_oid(self.der, parts[0], "policyIdentifier"))
        return tuple(out)

    @cached_property
    def subject_key_id(self) -> bytes | None:
        """The subjectKeyIdentifier bytes, or None when absent."""
        ski = self._raw_ext_single(EXT_SKI, 0x04, "subjectKeyIdentifier")
        return None if ski is None else self.der[ski[1] : ski[2]]

    @cached_property
    def authority_key_id(self) -> bytes | None:
        """The authorityKeyIdentifier's keyIdentifier bytes, or None when absent."""
        aki = self._raw_ext_single(EXT_AKI, 0x30, "authorityKeyIdentifier")
        if aki is None:
            return None
        for tag, a, b in inside(self.der, aki, "authorityKeyIdentifier"):
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
        """The directoryName full names of the CRL distribution points."""
        return tuple(d.directory_name for d in self.crl_distribution_points if d.directory_name)

    @cached_property
    def ocsp_urls(self) -> tuple[str, ...]:
        """The OCSP responder URIs from authorityInfoAccess (empty when none)."""
        aia = self._ext(ExtensionOID.AUTHORITY_INFORMATION_ACCESS, x509.AuthorityInformationAccess)
        return tuple(
            ad.access_location.value
            for ad in aia or ()
            if ad.access_method == AuthorityInformationAccessOID.OCSP
            and isinstance(ad.access_location, x509.UniformResourceIdentifier)
        )

    # --- classification -------------------------------------------------------------------

    def _name_mentions(self, name: Item, text: str) -> bool:
        """Cheap pre-check: could an attribute of ``name`` contain ``text`` (ASCII)?"""
        chunk = self.der[name[1] : name[2]]
        return any(text.encode(enc) in chunk for enc in ("latin-1", "utf-16-be", "utf-32-be"))

    def _org_units(self, name: Item) -> list[tuple[str, str]]:
        # every O/OU we look for contains "JPKI": most other names need no walk
        if not self._name_mentions(name, "JPKI"):
            return []
        return name_values(self.der, name, (OID_O, OID_OU))

    @cached_property
    def _subject_org_units(self) -> list[tuple[str, str]]:
        return self._org_units(self._raw.subject)

    @cached_property
    def _issuer_org_units(self) -> list[tuple[str, str]]:
        return self._org_units(self._raw.issuer)

    @cached_property
    def kind(self) -> CertKind:
        """What the certificate is for (see :mod:`jpki.cert.kind`); ``unknown`` outside JPKI."""
        return classify(
            is_ca=self.is_ca,
            key_usage=self.key_usage,
            extended_key_usage=self.extended_key_usage,
            policies=self.policies,
            subject_org_units=self._subject_org_units,
            issuer_org_units=self._issuer_org_units,
        )

    @cached_property
    def is_test(self) -> bool:
        """True for a test certificate: a test policy OID, or JPKI-TEST names in a test org."""
        if any(p.startswith(_TEST_POLICY_ARC) for p in self.policies):
            return True
        raw = self._raw
        if self._name_mentions(raw.subject, "JPKI-TEST") and is_test_org(self._subject_org_units):
            return True
        return self._name_mentions(raw.issuer, "JPKI-TEST") and is_test_org(self._issuer_org_units)

    # --- basic 4 information --------------------------------------------------------------

    @cached_property
    def basic_info(self) -> BasicInfo | None:
        """Basic 4 information from the subjectAltName otherNames; None if there is none."""
        found = self._raw.extensions.get(EXT_SAN)
        if found is None:
            return None
        values: dict[str, str] = {}
        other: dict[str, str] = {}
        for oid, value in other_names(self.der, found[1], found[2]):
            if oid in BASIC_OIDS:
                if oid in values:
                    raise CertificateError(f"otherName {oid} appears twice")
                values[oid] = utf8_value(oid, value)
            else:
                other[oid] = other_value(value)
        if not values:
            return None
        return basic_info_from(values, other)

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


def _hex_or_none(b: bytes | None) -> str | None:
    return b.hex() if b is not None else None
