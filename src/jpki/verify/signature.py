"""RSA PKCS#1 v1.5 signature verification with a JPKI certificate's key, and key-usage policy.

The comparison: the public-key operation recovers the signed DigestInfo
(``recover_data_from_signature``, which checks the PKCS#1 v1.5 padding), and we compare it
with the DigestInfo we expect using ``hmac.compare_digest`` (constant time). That is also
measurably cheaper per call than ``public_key.verify`` (no hash context set up per call).
"""

from __future__ import annotations

import functools
import hmac
from datetime import datetime
from enum import StrEnum

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from jpki.cert import CertKind, JpkiCertificate
from jpki.digestinfo import DIGEST_SIZES, PREFIXES
from jpki.errors import CertificateError, SignatureFormatError, UsageError
from jpki.verify.digest import HashAlgorithm, digest_of, hash_algorithm, parse_digest_info
from jpki.verify.result import Status, VerificationResult

_PKCS1 = padding.PKCS1v15()


class Purpose(StrEnum):
    """What the signature is for; decides which certificate kind is acceptable."""

    SIGN = "sign"  # document signature: signing certificate (nonRepudiation)
    LOGIN = "login"  # login / authentication: user-authentication certificate
    ANY = "any"  # caller explicitly overrides the key-usage policy (reported in reasons)


def purpose_of(value: Purpose | str) -> Purpose:
    """Normalise a purpose name; ``UsageError`` for anything unknown."""
    if isinstance(value, Purpose):
        return value
    try:
        return Purpose(value)
    except ValueError:
        choices = ", ".join(p.value for p in Purpose)
        raise UsageError(f"unknown purpose {value!r} (use one of {choices})") from None


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
    return _KIND_WORDS.get(kind, kind.value)


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


def key_usage_problems(cert: JpkiCertificate, purpose: Purpose) -> tuple[list[str], list[str]]:
    """(problems, notes) of using ``cert`` for ``purpose``; problems make a result invalid.

    A pure function of the two, remembered per certificate (every login asks it twice).
    """
    problems, notes = _key_usage_verdict(cert, purpose)
    return list(problems), list(notes)


@functools.lru_cache(maxsize=4096)
def _key_usage_verdict(
    cert: JpkiCertificate, purpose: Purpose
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    problems, notes = _key_usage_rule(cert, purpose)
    return tuple(problems), tuple(notes)


def _key_usage_rule(cert: JpkiCertificate, purpose: Purpose) -> tuple[list[str], list[str]]:
    """The rule itself.

    JPKI kinds decide first (a signing certificate must not log in, an authentication
    certificate must not sign documents: it carries no nonRepudiation and the law gives its
    signatures no presumption of authenticity). Certificates of unknown kind are judged by
    their KeyUsage bits. ``Purpose.ANY`` skips the policy and says so in the notes.
    """
    kind = cert.kind
    ku = _key_usage(cert.certificate)
    if purpose is Purpose.ANY:
        return [], [
            f"key-usage policy overridden by the caller (purpose 'any'); the certificate is "
            f"{kind_words(kind)}"
        ]
    problems: list[str] = []
    if kind in _NEVER_KINDS:
        problems.append(f"the certificate is {kind_words(kind)}, not an end-user certificate")
    elif purpose is Purpose.SIGN:
        if kind in _LOGIN_KINDS:
            problems.append(
                f"the certificate is {kind_words(kind)}; document signatures need a signing "
                "certificate (use purpose 'login' for logins, or 'any' to override)"
            )
        elif kind not in _SIGN_KINDS and (ku is None or not ku.content_commitment):
            problems.append(
                "the certificate's KeyUsage lacks nonRepudiation, which document signatures need"
            )
    elif purpose is Purpose.LOGIN:
        if kind in _SIGN_KINDS:
            problems.append(
                f"the certificate is {kind_words(kind)}; logins need a user-authentication "
                "certificate (use purpose 'sign' for documents, or 'any' to override)"
            )
        elif kind not in _LOGIN_KINDS and (ku is None or not ku.digital_signature):
            problems.append("the certificate's KeyUsage lacks digitalSignature")
    if ku is not None and not ku.digital_signature and not ku.content_commitment:
        problems.append("the certificate's KeyUsage allows no signatures at all")
    return problems, []


def validity_problems(cert: JpkiCertificate, at: datetime) -> list[str]:
    if at.tzinfo is None or at.utcoffset() is None:
        raise UsageError("validation time must be timezone-aware")
    if at < cert.not_before:
        return [f"the certificate is not valid before {cert.not_before.isoformat()}"]
    if at > cert.not_after:
        return [f"the certificate expired on {cert.not_after.isoformat()}"]
    return []


def rsa_public_key(cert: JpkiCertificate) -> rsa.RSAPublicKey:
    key = cert.public_key
    if not isinstance(key, rsa.RSAPublicKey):
        raise CertificateError(
            f"the certificate's key is {type(key).__name__}, not RSA (JPKI uses RSA-2048)"
        )
    return key


def check_rsa_pkcs1(
    key: rsa.RSAPublicKey, signature: bytes, expected_digest_info: bytes
) -> str | None:
    """None if ``signature`` is a valid PKCS#1 v1.5 signature of the DigestInfo, else why not."""
    size = (key.key_size + 7) // 8
    if len(signature) != size:
        return (
            f"the signature is {len(signature)} bytes but this certificate's "
            f"{key.key_size}-bit key makes {size}-byte signatures"
        )
    try:
        recovered = key.recover_data_from_signature(signature, _PKCS1, None)
    except InvalidSignature:
        return (
            "the signature does not belong to this certificate's key (wrong key or "
            "certificate, or the signature bytes were altered)"
        )
    if hmac.compare_digest(recovered, expected_digest_info):
        return None
    return _explain_mismatch(recovered, expected_digest_info)


def _explain_mismatch(recovered: bytes, expected: bytes) -> str:
    # Only reached on failure; timing here reveals nothing about a valid signature.
    try:
        got = parse_digest_info(recovered)
        want = parse_digest_info(expected)
    except SignatureFormatError:
        return "the key signed something that is not a well-formed DigestInfo"
    if got.algorithm is not want.algorithm:
        return (
            f"the signature was made over a {got.algorithm.value.upper()} digest but "
            f"{want.algorithm.value.upper()} was expected"
        )
    return (
        "the signature was made by this certificate's key but over different data "
        "(the data or digest was altered, or the wrong data was supplied)"
    )


def expected_digest_info(
    *, data: bytes | None, digest: bytes | None, hash_alg: HashAlgorithm
) -> bytes:
    if (data is None) == (digest is None):
        raise UsageError("give exactly one of data or digest")
    if digest is not None:
        if len(digest) != DIGEST_SIZES[hash_alg]:
            raise UsageError(
                f"a {hash_alg.value} digest is {DIGEST_SIZES[hash_alg]} bytes, got {len(digest)}"
            )
        return PREFIXES[hash_alg] + bytes(digest)
    assert data is not None
    return PREFIXES[hash_alg] + digest_of(hash_alg, data)


def as_certificate(cert: JpkiCertificate | x509.Certificate | bytes) -> JpkiCertificate:
    if isinstance(cert, JpkiCertificate):
        return cert
    if isinstance(cert, x509.Certificate):
        return JpkiCertificate.from_cryptography(cert)
    return JpkiCertificate.load(cert)


def verify_signature(
    cert: JpkiCertificate | x509.Certificate | bytes,
    signature: bytes,
    *,
    data: bytes | None = None,
    digest: bytes | None = None,
    hash_alg: HashAlgorithm | str = HashAlgorithm.SHA256,
    purpose: Purpose | str = Purpose.SIGN,
    at: datetime | None = None,
) -> VerificationResult:
    """Verify an RSA PKCS#1 v1.5 signature over ``data`` or a precomputed ``digest``.

    ``purpose`` applies the key-usage policy (``Purpose.ANY`` overrides it, visibly).
    ``at`` (aware) also checks the certificate's validity period at that time. The chain to
    a trust anchor is *not* checked here: see :func:`jpki.verify.path.validate_chain`.
    """
    jc = as_certificate(cert)
    alg = hash_algorithm(hash_alg)
    purp = purpose_of(purpose)
    expected = expected_digest_info(data=data, digest=digest, hash_alg=alg)
    return _judge(jc, rsa_public_key(jc), signature, expected, purp, at)


def _judge(
    jc: JpkiCertificate,
    key: rsa.RSAPublicKey,
    signature: bytes,
    expected: bytes,
    purpose: Purpose,
    at: datetime | None,
) -> VerificationResult:
    problems, notes = key_usage_problems(jc, purpose)
    if at is not None:
        problems += validity_problems(jc, at)
    why = check_rsa_pkcs1(key, signature, expected)
    reasons: list[str] = []
    if why is None:
        reasons.append("signature matches the certificate's key")
    else:
        reasons.append(why)
    reasons += problems + notes
    status = Status.VALID if why is None and not problems else Status.INVALID
    return VerificationResult(
        status,
        tuple(reasons),
        certificate_fingerprint=jc.fingerprint_sha256.hex(),
        certificate_kind=jc.kind.value,
        subject=jc.subject_text,
    )
