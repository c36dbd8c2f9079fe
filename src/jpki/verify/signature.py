"""RSA PKCS#1 v1.5 signature verification with a JPKI certificate's key, under a policy.

The comparison: the public-key operation recovers the signed DigestInfo
(``recover_data_from_signature``, which checks the PKCS#1 v1.5 padding), and we compare it
with the DigestInfo we expect using ``hmac.compare_digest`` (constant time). That is also
measurably cheaper per call than ``public_key.verify`` (no hash context set up per call).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from jpki.cert import JpkiCertificate
from jpki.digestinfo import (
    DIGEST_SIZES,
    PREFIXES,
    HashAlgorithm,
    digest_of,
    hash_algorithm,
    parse_digest_info,
)
from jpki.errors import CertificateError, SignatureFormatError, UsageError
from jpki.policy import Policy, Purpose, check_time, purpose_of
from jpki.verify.path import validate_chain
from jpki.verify.result import Code, Reason, Status, VerificationResult, worst
from jpki.verify.rules import (
    algorithm_verdict,
    key_usage_problems,
    kind_words,
    validity_problems,
)

_PKCS1 = padding.PKCS1v15()

__all__ = [
    "Purpose",
    "as_certificate",
    "check_rsa_pkcs1",
    "combine",
    "judge",
    "key_usage_problems",
    "kind_words",
    "purpose_of",
    "rsa_public_key",
    "signature_check",
    "validity_problems",
    "verify_signature",
]


def rsa_public_key(cert: JpkiCertificate) -> rsa.RSAPublicKey:
    """The certificate's RSA public key, or ``CertificateError`` for any other key type."""
    key = cert.public_key
    # Decided once per key type: ``RSAPublicKey`` is an ABC, and its isinstance check is a
    # noticeable part of a repeat login.
    is_rsa = _IS_RSA.get(type(key))
    if is_rsa is None:
        is_rsa = _IS_RSA[type(key)] = isinstance(key, rsa.RSAPublicKey)
    if not is_rsa:
        raise CertificateError(
            f"the certificate's key is {type(key).__name__}, not RSA (JPKI uses RSA-2048)"
        )
    return key  # type: ignore[return-value]


_IS_RSA: dict[type, bool] = {}


def check_rsa_pkcs1(
    key: rsa.RSAPublicKey, signature: bytes, expected_digest_info: bytes
) -> Reason | None:
    """None if ``signature`` is a valid PKCS#1 v1.5 signature of the DigestInfo, else why not."""
    size = (key.key_size + 7) // 8
    if len(signature) != size:
        return Reason(
            Code.SIGNATURE_LENGTH,
            f"the signature is {len(signature)} bytes but this certificate's "
            f"{key.key_size}-bit key makes {size}-byte signatures",
        )
    try:
        recovered = key.recover_data_from_signature(signature, _PKCS1, None)
    except InvalidSignature:
        return Reason(
            Code.SIGNATURE_WRONG_KEY,
            "the signature does not belong to this certificate's key (wrong key or "
            "certificate, or the signature bytes were altered)",
        )
    if hmac.compare_digest(recovered, expected_digest_info):
        return None
    return _explain_mismatch(recovered, expected_digest_info)


def _explain_mismatch(recovered: bytes, expected: bytes) -> Reason:
    # Only reached on failure; timing here reveals nothing about a valid signature.
    try:
        got = parse_digest_info(recovered)
        want = parse_digest_info(expected)
    except SignatureFormatError:
        return Reason(
            Code.SIGNATURE_NOT_DIGEST_INFO,
            "the key signed something that is not a well-formed DigestInfo",
        )
    if got.algorithm is not want.algorithm:
        return Reason(
            Code.SIGNATURE_HASH_MISMATCH,
            f"the signature was made over a {got.algorithm.value.upper()} digest but "
            f"{want.algorithm.value.upper()} was expected",
        )
    return Reason(
        Code.SIGNATURE_MISMATCH,
        "the signature was made by this certificate's key but over different data "
        "(the data or digest was altered, or the wrong data was supplied)",
    )


def expected_digest_info(
    *, data: bytes | None, digest: bytes | None, hash_alg: HashAlgorithm
) -> bytes:
    """The DigestInfo a signature over ``data`` or ``digest`` must carry.

    With both, they must agree (``SignatureFormatError`` otherwise): a signature is never
    checked against a digest that is not the digest of the data given with it.
    """
    if data is None and digest is None:
        raise UsageError("give data or digest")
    if digest is not None and len(digest) != DIGEST_SIZES[hash_alg]:
        raise UsageError(
            f"a {hash_alg.value} digest is {DIGEST_SIZES[hash_alg]} bytes, got {len(digest)}"
        )
    computed = digest_of(hash_alg, data) if data is not None else None
    if computed is not None and digest is not None and not hmac.compare_digest(computed, digest):
        raise SignatureFormatError(
            f"the digest given is not the {hash_alg.value} digest of the data given"
        )
    chosen = computed if computed is not None else digest
    assert chosen is not None
    return PREFIXES[hash_alg] + bytes(chosen)


def as_certificate(cert: JpkiCertificate | x509.Certificate | bytes) -> JpkiCertificate:
    """``cert`` as a ``JpkiCertificate`` (DER/PEM bytes are parsed)."""
    if isinstance(cert, JpkiCertificate):
        return cert
    if isinstance(cert, x509.Certificate):
        return JpkiCertificate.from_cryptography(cert)
    return JpkiCertificate.load(cert)


def signature_check(
    cert: JpkiCertificate,
    signature: bytes,
    *,
    data: bytes | None = None,
    digest: bytes | None = None,
    hash_alg: HashAlgorithm | str = HashAlgorithm.SHA256,
) -> Reason | None:
    """The signature alone: None if it matches ``cert``'s key over data/digest, else why not."""
    alg = hash_algorithm(hash_alg)
    expected = expected_digest_info(data=data, digest=digest, hash_alg=alg)
    return check_rsa_pkcs1(rsa_public_key(cert), signature, expected)


def verify_signature(
    cert: JpkiCertificate | x509.Certificate | bytes,
    signature: bytes,
    *,
    data: bytes | None = None,
    digest: bytes | None = None,
    hash_alg: HashAlgorithm | str = HashAlgorithm.SHA256,
    policy: Policy | None = None,
    intermediates: Iterable[JpkiCertificate] = (),
    default_purpose: Purpose = Purpose.SIGN,
) -> VerificationResult:
    """Verify an RSA PKCS#1 v1.5 signature over ``data`` and/or a precomputed ``digest``.

    Everything else comes from ``policy`` (default: ``Policy()``, which trusts nobody, so the
    answer is at best INDETERMINATE): the purpose (default: a document signature, so a
    signing certificate is needed), the time, the chain to the anchors, revocation and the
    algorithm rule.
    """
    pol = policy if policy is not None else Policy()
    jc = as_certificate(cert)
    alg = hash_algorithm(hash_alg)
    at = check_time(pol.time())
    purp = pol.purpose_for(default_purpose)
    why = signature_check(jc, signature, data=data, digest=digest, hash_alg=alg)
    return judge(jc, why, alg.value, replace(pol, at=at, purpose=purp), intermediates)


def judge(
    cert: JpkiCertificate,
    why: Reason | None,
    hash_name: str | None,
    policy: Policy,
    intermediates: Iterable[JpkiCertificate] = (),
    problems: Iterable[Reason] = (),
) -> VerificationResult:
    """A signature check (``why``: None when it matched) and other ``problems``, judged
    with the chain under ``policy`` (whose time and purpose must be fixed)."""
    chain = validate_chain(cert, policy, intermediates=intermediates)
    return combine(cert, why, hash_name, policy, chain, problems)


def combine(
    cert: JpkiCertificate,
    why: Reason | None,
    hash_name: str | None,
    policy: Policy,
    chain: VerificationResult,
    problems: Iterable[Reason] = (),
    **fields: Any,
) -> VerificationResult:
    """One result from a signature check, other ``problems``, the policy's algorithm rule
    and the chain verdict (purpose, validity, anchors, revocation); ``fields`` are set on it
    too (e.g. a login's ``account_key``)."""
    first = why if why is not None else _OK
    alg_problems, alg_notes = algorithm_verdict(policy.algorithms, cert, hash_name)
    more = tuple(problems)
    status = Status.INVALID if why is not None or more or alg_problems else Status.VALID
    return chain.evolve(
        status=worst((status, chain.status)),
        reasons=(first, *more, *alg_problems, *chain.reasons, *alg_notes),
        **fields,
    )


_OK = Reason(Code.SIGNATURE_OK, "signature matches the certificate's key")
