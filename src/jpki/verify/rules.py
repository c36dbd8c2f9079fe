"""The end-entity rules of a :class:`jpki.policy.Policy`, as coded reasons.

One place decides what a certificate may be used for (kind and KeyUsage per purpose, cA never
an end entity), whether it is within its validity period, and whether a signature's key size
and hash are acceptable. Every verifier calls these; none spells a rule out again.
"""

from __future__ import annotations

import functools
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from jpki.cert import CertKind, JpkiCertificate
from jpki.errors import CertificateError
from jpki.policy import AlgorithmRule, Purpose, check_time
from jpki.verify.result import Code, Reason

_SIGN_KINDS = frozenset({CertKind.SIGNING, CertKind.PHONE_SIGNING})
_LOGIN_KINDS = frozenset({CertKind.AUTHENTICATION, CertKind.PHONE_AUTHENTICATION})
_NEVER_KINDS = frozenset({CertKind.SIGNING_CA, CertKind.AUTHENTICATION_CA, CertKind.OCSP_RESPONDER})
_KIND_WORDS = {
    CertKind.SIGNING: "a signing certificate (署名用)",
    CertKind.PHONE_SIGNING: "a smartphone signing certificate",
    CertKind.AUTHENTICATION: "a user-authentication certificate (利用者証明用)",
    CertKind.PHONE_AUTHENTICATION: "a smartphone user-authentication certificate",
    CertKind.SIGNING_CA: "a signing CA certificate",
    CertKind.AUTHENTICATION_CA: "an authentication CA certificate",
    CertKind.OCSP_RESPONDER: "an OCSP responder certificate",
    CertKind.UNKNOWN: "not a recognised JPKI certificate",
}


def kind_words(kind: CertKind) -> str:
    """The certificate kind in words, for reasons."""
    return _KIND_WORDS.get(kind, kind.value)


def purpose_by_kind(cert: JpkiCertificate) -> Purpose:
    """Login for authentication certificates, sign otherwise (what a chain check asks)."""
    return Purpose.LOGIN if cert.kind in _LOGIN_KINDS else Purpose.SIGN


def _key_usage(cert: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None
    except (
        ValueError,
        KeyError,
        TypeError,
        x509.DuplicateExtension,
        x509.UnsupportedGeneralNameType,
    ) as exc:
        # Duplicate or undecodable extension; a damaged name inside one (e.g. in
        # AuthorityKeyIdentifier) surfaces from cryptography as KeyError, TypeError or
        # UnsupportedGeneralNameType.
        raise CertificateError(f"certificate extensions cannot be decoded: {exc!r}") from None


def key_usage_problems(
    cert: JpkiCertificate, purpose: Purpose
) -> tuple[list[Reason], list[Reason]]:
    """(problems, notes) of using ``cert`` as an end entity for ``purpose``.

    A pure function of the two, remembered per certificate (every login asks it).
    """
    problems, notes = _key_usage_verdict(cert, purpose)
    return list(problems), list(notes)


@functools.lru_cache(maxsize=4096)
def _key_usage_verdict(
    cert: JpkiCertificate, purpose: Purpose
) -> tuple[tuple[Reason, ...], tuple[Reason, ...]]:
    problems, notes = _key_usage_rule(cert, purpose)
    return tuple(problems), tuple(notes)


def _key_usage_rule(cert: JpkiCertificate, purpose: Purpose) -> tuple[list[Reason], list[Reason]]:
    """The rule itself.

    A CA certificate (cA=TRUE) is never an end entity, whatever the purpose. JPKI kinds decide
    next (a signing certificate must not log in, an authentication certificate must not sign
    documents: it carries no nonRepudiation and the law gives its signatures no presumption
    of authenticity). Certificates of unknown kind are judged by their KeyUsage bits.
    ``Purpose.ANY`` skips the kind rule and says so in the notes.
    """
    kind = cert.kind
    ku = _key_usage(cert.certificate)
    problems: list[Reason] = []
    if cert.is_ca or kind in _NEVER_KINDS:
        what = kind_words(kind) if kind in _NEVER_KINDS else "a CA certificate (cA=TRUE)"
        problems.append(
            Reason(
                Code.PURPOSE_CA_AS_END_ENTITY,
                f"the certificate is {what}, not an end-user certificate",
            )
        )
    if purpose is Purpose.ANY:
        return problems, [
            Reason(
                Code.PURPOSE_OVERRIDDEN,
                f"key-usage policy overridden by the caller (purpose 'any'); the certificate is "
                f"{kind_words(kind)}",
            )
        ]
    if problems:
        pass  # a CA certificate: the kind rules below would only repeat it
    elif purpose is Purpose.SIGN:
        if kind in _LOGIN_KINDS:
            problems.append(
                Reason(
                    Code.PURPOSE_WRONG_KIND,
                    f"the certificate is {kind_words(kind)}; document signatures need a signing "
                    "certificate (use purpose 'login' for logins, or 'any' to override)",
                )
            )
        elif kind not in _SIGN_KINDS and (ku is None or not ku.content_commitment):
            problems.append(
                Reason(
                    Code.PURPOSE_KEY_USAGE,
                    "the certificate's KeyUsage lacks nonRepudiation, which document signatures "
                    "need",
                )
            )
    elif purpose is Purpose.LOGIN:
        if kind in _SIGN_KINDS:
            problems.append(
                Reason(
                    Code.PURPOSE_WRONG_KIND,
                    f"the certificate is {kind_words(kind)}; logins need a user-authentication "
                    "certificate (use purpose 'sign' for documents, or 'any' to override)",
                )
            )
        elif kind not in _LOGIN_KINDS and (ku is None or not ku.digital_signature):
            problems.append(
                Reason(Code.PURPOSE_KEY_USAGE, "the certificate's KeyUsage lacks digitalSignature")
            )
    if ku is not None and not ku.digital_signature and not ku.content_commitment:
        problems.append(
            Reason(Code.PURPOSE_KEY_USAGE, "the certificate's KeyUsage allows no signatures at all")
        )
    return problems, []


def validity_problems(cert: JpkiCertificate, at: datetime) -> list[Reason]:
    """Why ``cert`` is not valid at ``at`` (empty: within its validity period)."""
    check_time(at)
    if at < cert.not_before:
        return [
            Reason(
                Code.CERT_NOT_YET_VALID,
                f"the certificate is not valid before {cert.not_before.isoformat()}",
            )
        ]
    if at > cert.not_after:
        return [
            Reason(Code.CERT_EXPIRED, f"the certificate expired on {cert.not_after.isoformat()}")
        ]
    return []


def rsa_bits(cert: JpkiCertificate) -> int | None:
    """The RSA key size of a certificate, or None for another key type."""
    key = cert.public_key
    return key.key_size if isinstance(key, rsa.RSAPublicKey) else None


def algorithm_reasons(
    rule: AlgorithmRule, cert: JpkiCertificate, hash_name: str | None
) -> tuple[list[Reason], list[Reason]]:
    """(problems, notes) of a signature by ``cert``'s key over a ``hash_name`` digest."""
    problems, notes = algorithm_verdict(rule, cert, hash_name)
    return list(problems), list(notes)


@functools.lru_cache(maxsize=4096)
def algorithm_verdict(
    rule: AlgorithmRule, cert: JpkiCertificate, hash_name: str | None
) -> tuple[tuple[Reason, ...], tuple[Reason, ...]]:
    """:func:`algorithm_reasons` as tuples, remembered (a pure function; every login asks)."""
    bits = rsa_bits(cert)
    problems = tuple(Reason(Code.ALGORITHM_REFUSED, t) for t in rule.problems(bits, hash_name))
    notes = tuple(Reason(Code.ALGORITHM_LEGACY_ACCEPTED, t) for t in rule.notes(bits, hash_name))
    return problems, notes
