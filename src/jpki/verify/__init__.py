"""Relying-party verification: signatures, CMS, login challenges, chain validation, batch.

Async forms (``async_validate_chain``, ``LoginVerifier.async_verify``,
``async_revocation_checker`` with OCSP over httpx) never block an event loop.

Every verifier returns a :class:`VerificationResult` (``VALID`` / ``INVALID`` /
``INDETERMINATE`` with human-readable reasons); malformed input raises a ``JpkiError``.
"""

from __future__ import annotations

from jpki.verify.aio import async_check_ocsp, async_revocation_checker
from jpki.verify.batch import BatchItem, verify_batch
from jpki.verify.cms import parse_signed_data, verify_cms
from jpki.verify.digest import DigestInfo, HashAlgorithm, build_digest_info, parse_digest_info
from jpki.verify.login import (
    Challenge,
    ChallengeStore,
    LoginVerifier,
    MemoryChallengeStore,
    SqliteChallengeStore,
    account_key,
)
from jpki.verify.path import (
    AsyncRevocationCheck,
    RevocationCheck,
    async_validate_chain,
    load_trust_anchors,
    revocation_checker,
    validate_chain,
)
from jpki.verify.result import Status, VerificationResult
from jpki.verify.signature import Purpose, verify_signature

__all__ = [
    "AsyncRevocationCheck",
    "BatchItem",
    "Challenge",
    "ChallengeStore",
    "DigestInfo",
    "HashAlgorithm",
    "LoginVerifier",
    "MemoryChallengeStore",
    "Purpose",
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
