"""Shared revocation result types and the rules every source applies the same way.

Every source (CRL files, the store, OCSP) answers with a :class:`RevocationResult`, built by
:func:`result_from_entry` from a revoked entry where there is one, so the time and reason rules
live in one place. :class:`RevocationSource` is what the policy asks.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from jpki.revocation.crl import is_final
from jpki.revocation.index import RevocationReason, RevokedEntry, prefer_final

__all__ = [
    "UNDOABLE_REASONS",
    "RevocationReason",
    "RevocationResult",
    "RevocationSource",
    "RevocationStatus",
    "RevokedEntry",
    "is_final",
    "issued_by",
    "prefer_final",
    "result_from_entry",
]


class RevocationStatus(StrEnum):
    """A revocation answer: good, revoked, or unknown (cannot tell)."""

    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class RevocationResult:
    """One answer: status, and for REVOKED the reason and time; ``source`` names where from.

    ``invalidity_date`` is reported when the CA gave one (the key may have been unsafe since
    then: a signature made after it is suspect); it never changes ``status``. ``soft_failed``:
    the status is UNKNOWN and a soft-fail policy accepted that (see :attr:`accepted`).
    """

    status: RevocationStatus
    reason: RevocationReason | None = None
    revoked_at: datetime | None = None
    source: str = ""
    detail: str = ""
    invalidity_date: datetime | None = None
    soft_failed: bool = False

    @property
    def is_good(self) -> bool:
        """True when the status is GOOD."""
        return self.status is RevocationStatus.GOOD

    @property
    def accepted(self) -> bool:
        """GOOD, or UNKNOWN accepted by soft-fail (never REVOKED)."""
        return self.status is RevocationStatus.GOOD or (
            self.status is RevocationStatus.UNKNOWN and self.soft_failed
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON form: status, reason, times (ISO 8601), source, detail, soft-fail flags."""
        return {
            "status": self.status.value,
            "reason": self.reason.value if self.reason else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "invalidity_date": self.invalidity_date.isoformat() if self.invalidity_date else None,
            "source": self.source,
            "detail": self.detail,
            "soft_failed": self.soft_failed,
            "accepted": self.accepted,
        }


@runtime_checkable
class RevocationSource(Protocol):
    """Something that can say whether ``cert`` (issued by ``issuer``) is revoked at ``at``.

    CRL files (:class:`jpki.revocation.policy.CrlFiles`), the store
    (:class:`jpki.revocation.store.RevocationStore`) and OCSP
    (:class:`jpki.revocation.ocsp.OcspSource`) implement it. A source answers UNKNOWN (or
    raises ``RevocationError``) when it cannot tell; it never applies soft-fail itself.
    """

    @property
    def source_name(self) -> str:
        """The source's name in results and JSON (``crl``, ``store``, ``ocsp``)."""
        ...

    def status(
        self,
        cert: x509.Certificate,
        issuer: x509.Certificate,
        *,
        at: datetime,
        max_age: timedelta | None = None,
    ) -> RevocationResult:
        """Whether ``cert`` is revoked at ``at``; ``max_age`` bounds how old a CRL may be."""
        ...


# Only these revocations can be undone; every other one is final once the CA has signed it.
UNDOABLE_REASONS = (RevocationReason.CERTIFICATE_HOLD, RevocationReason.REMOVE_FROM_CRL)

# Reasons that make a certificate untrustworthy even for signatures made before revocation.
_BACKDATING_REASONS = frozenset({RevocationReason.KEY_COMPROMISE, RevocationReason.CA_COMPROMISE})


_NOT_LISTED: dict[str, RevocationResult] = {}


def result_from_entry(entry: RevokedEntry | None, at: datetime, source: str) -> RevocationResult:
    """RFC 5280: revoked as of revocationDate. Absent, or revoked only after ``at`` (for a
    reason that does not reach back), is GOOD. invalidityDate is reported, never used to
    move the revocation later (or earlier)."""
    if entry is None:
        # The answer of nearly every check: one shared (frozen) value per source.
        found = _NOT_LISTED.get(source)
        if found is None:
            found = RevocationResult(RevocationStatus.GOOD, source=source, detail="not listed")
            if len(_NOT_LISTED) >= 1024:
                _NOT_LISTED.clear()
            _NOT_LISTED[source] = found
        return found
    if entry.reason is RevocationReason.REMOVE_FROM_CRL:
        return RevocationResult(
            RevocationStatus.GOOD, source=source, detail="released from hold (removeFromCRL)"
        )
    if entry.revocation_date > at and entry.reason not in _BACKDATING_REASONS:
        return RevocationResult(
            RevocationStatus.GOOD,
            source=source,
            detail=f"revoked only later, at {entry.revocation_date.isoformat()}",
            invalidity_date=entry.invalidity_date,
        )
    reason = entry.reason or RevocationReason.UNSPECIFIED
    detail = f"listed ({reason.value})"
    if entry.invalidity_date is not None:
        detail += f"; invalid since {entry.invalidity_date.isoformat()}"
    return RevocationResult(
        RevocationStatus.REVOKED,
        reason=reason,
        revoked_at=entry.revocation_date,
        source=source,
        detail=detail,
        invalidity_date=entry.invalidity_date,
    )


_ISSUED: dict[tuple[int, int], tuple[x509.Certificate, x509.Certificate, bool]] = {}


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Did ``issuer``'s key sign ``cert`` (name and signature)? Cached: asked once per pair.

    The front memo is keyed by identity (hashing two certificate objects costs more than the
    rest of a repeat check); each entry holds both objects, so their ids stay theirs.
    """
    key = (id(cert), id(issuer))
    hit = _ISSUED.get(key)
    if hit is not None and hit[0] is cert and hit[1] is issuer:
        return hit[2]
    answer = _issued_by(cert, issuer)
    if len(_ISSUED) >= 4096:
        _ISSUED.clear()
    _ISSUED[key] = (cert, issuer, answer)
    return answer


@functools.lru_cache(maxsize=1024)
def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True
