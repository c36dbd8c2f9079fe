"""Revocation: CRL index, OCSP, revocation store (SQLite / PostgreSQL), monitoring, policy.

Shared result types live in :mod:`jpki.revocation.results`; every source (CRL files, the
store, OCSP) implements :class:`RevocationSource`; :func:`check_revocation` is the policy.
``RevocationStore`` is imported on first use (it loads the database drivers).
"""

from typing import TYPE_CHECKING, Any

from jpki.revocation.crl import Crl
from jpki.revocation.index import RevocationReason, RevokedEntry, SerialIndex
from jpki.revocation.ocsp import OcspSource, check_ocsp, check_ocsp_async
from jpki.revocation.policy import (
    CrlFiles,
    RevocationPolicy,
    check_revocation,
    check_revocation_async,
)
from jpki.revocation.results import RevocationResult, RevocationSource, RevocationStatus

if TYPE_CHECKING:
    from jpki.revocation.store import RevocationStore

__all__ = [
    "Crl",
    "CrlFiles",
    "OcspSource",
    "RevocationPolicy",
    "RevocationReason",
    "RevocationResult",
    "RevocationSource",
    "RevocationStatus",
    "RevocationStore",
    "RevokedEntry",
    "SerialIndex",
    "check_ocsp",
    "check_ocsp_async",
    "check_revocation",
    "check_revocation_async",
]


def __getattr__(name: str) -> Any:
    if name == "RevocationStore":
        from jpki.revocation.store import RevocationStore

        return RevocationStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
