"""Relying-party verification: signatures, CMS, login challenges, chain validation, batch.

Every verifier takes one :class:`~jpki.policy.Policy` (anchors, purpose, time, revocation,
algorithms) and returns a :class:`VerificationResult` (``VALID`` / ``INVALID`` /
``INDETERMINATE`` with coded reasons); malformed input raises a ``JpkiError``.
Async forms (``async_validate_chain``, ``LoginVerifier.async_verify``,
``async_revocation_checker``, whose OCSP has one total deadline) never block an event loop.
"""

from __future__ import annotations

from jpki.digestinfo import DigestInfo, HashAlgorithm, build_digest_info, parse_digest_info
from jpki.policy import (
    DEFAULT_ALGORITHMS,
    LEGACY_ALGORITHMS,
    AlgorithmRule,
    AsyncRevocationCheck,
    Policy,
    Purpose,
    RevocationCheck,
    revocation_checker,
)
from jpki.verify.aio import async_check_ocsp, async_revocation_checker
from jpki.verify.batch import BatchItem, verify_batch
from jpki.verify.cms import parse_signed_data, verify_cms
from jpki.verify.login import (
    Challenge,
    ChallengeStore,
    LoginVerifier,
    MemoryChallengeStore,
    SqliteChallengeStore,
    account_key,
)
from jpki.verify.path import async_validate_chain, load_trust_anchors, validate_chain
from jpki.verify.result import Code, Reason, Status, VerificationResult
from jpki.verify.signature import verify_signature

__all__ = [
    "DEFAULT_ALGORITHMS",
    "LEGACY_ALGORITHMS",
    "AlgorithmRule",
    "AsyncRevocationCheck",
    "BatchItem",
    "Challenge",
    "ChallengeStore",
    "Code",
    "DigestInfo",
    "HashAlgorithm",
    "LoginVerifier",
    "MemoryChallengeStore",
    "Policy",
    "Purpose",
    "Reason",
    "RevocationCheck",
    "SqliteChallengeStore",
    "Status",
    "VerificationResult",
    "account_key",
    "async_check_ocsp",
    "async_revocation_checker",
    "async_validate_chain",
    "build_digest_info",
    "load_trust_anchors",
    "parse_digest_info",
    "parse_signed_data",
    "revocation_checker",
    "validate_chain",
    "verify_batch",
    "verify_cms",
    "verify_signature",
]
