"""What a certificate is for (``CertKind``) and the rule that decides it.

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

from collections.abc import Sequence
from enum import StrEnum

from jpki.oid import JpkiPolicyOID, NameOID

__all__ = ["CertKind", "classify", "hierarchy", "is_test_org", "kind_from_policy"]

_OID_O = NameOID.ORGANIZATION
_OID_OU = NameOID.ORGANIZATIONAL_UNIT
_POLICY_ARC = JpkiPolicyOID.ARC
_OCSP_SIGNING = "1.3.6.1.5.5.7.3.9"
JPKI_ORGS = ("JPKI", "JPKI-TEST")
_SIGN_OU = "for digital signature"
_AUTH_OU = "for user authentication"


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


def hierarchy(attrs: Sequence[tuple[str, str]]) -> str | None:
    """'sign' / 'auth' from an ``OU`` of a JPKI (or JPKI-TEST) name, else None."""
    if not any(oid == _OID_O and v in JPKI_ORGS for oid, v in attrs):
        return None
    for oid, ou in attrs:
        if oid == _OID_OU and ou.endswith(_SIGN_OU):
            return "sign"
        if oid == _OID_OU and ou.endswith(_AUTH_OU):
            return "auth"
    return None


def kind_from_policy(policies: Sequence[str]) -> CertKind | None:
    """The kind a JPKI certificate policy names, if any."""
    for oid in policies:
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


def classify(
    *,
    is_ca: bool,
    key_usage: Sequence[str],
    extended_key_usage: Sequence[str],
    policies: Sequence[str],
    subject_org_units: Sequence[tuple[str, str]],
    issuer_org_units: Sequence[tuple[str, str]],
) -> CertKind:
    """The kind rule of the module docstring (first match wins)."""
    if is_ca:
        if "keyCertSign" not in key_usage:
            return CertKind.UNKNOWN
        return {"sign": CertKind.SIGNING_CA, "auth": CertKind.AUTHENTICATION_CA}.get(
            hierarchy(subject_org_units) or "", CertKind.UNKNOWN
        )
    if _OCSP_SIGNING in extended_key_usage:
        return CertKind.OCSP_RESPONDER
    candidate = kind_from_policy(policies)
    if candidate is None:
        candidate = {"sign": CertKind.SIGNING, "auth": CertKind.AUTHENTICATION}.get(
            hierarchy(issuer_org_units) or "", CertKind.UNKNOWN
        )
    ku = key_usage
    if candidate in (CertKind.SIGNING, CertKind.PHONE_SIGNING):
        ok = "digitalSignature" in ku and "nonRepudiation" in ku
    elif candidate in (CertKind.AUTHENTICATION, CertKind.PHONE_AUTHENTICATION):
        ok = "digitalSignature" in ku and "nonRepudiation" not in ku
    else:
        ok = False
    return candidate if ok else CertKind.UNKNOWN


def is_test_org(attrs: Sequence[tuple[str, str]]) -> bool:
    return any(oid == _OID_O and v == "JPKI-TEST" for oid, v in attrs)
