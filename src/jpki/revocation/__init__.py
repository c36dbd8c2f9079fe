"""Revocation: CRL index, OCSP, revocation store, status monitoring, policy."""

from jpki.revocation.crl import Crl
from jpki.revocation.index import RevocationReason, RevokedEntry, SerialIndex
from jpki.revocation.policy import (
    RevocationPolicy,
    RevocationResult,
    RevocationStatus,
    check_revocation,
)

__all__ = [
    "Crl",
    "RevocationPolicy",
    "RevocationReason",
    "RevocationResult",
    "RevocationStatus",
    "RevokedEntry",
    "SerialIndex",
    "check_revocation",
]
