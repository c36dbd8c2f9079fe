"""Revocation policy: which sources to ask, in which order, and what "unknown" means.

Hard-fail by default: without fresh, trusted revocation information the answer is UNKNOWN
(callers treat it as not valid). Soft-fail turns UNKNOWN into GOOD with source "soft-fail" and a
``detail`` that says the revocation status was NOT established.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from jpki.errors import CrlError, RevocationError, UsageError
from jpki.revocation.crl import CertLike, Crl, as_x509, lookup_with_delta, select_crls
from jpki.revocation.index import RevocationReason, RevokedEntry

if TYPE_CHECKING:
    from jpki.revocation.store import RevocationStore

__all__ = [
    "RevocationPolicy",
    "RevocationReason",
    "RevocationResult",
    "RevocationStatus",
    "check_revocation",
    "issued_by",
    "result_from_entry",
]


class RevocationStatus(StrEnum):
    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class RevocationResult:
    """One answer: status, and for REVOKED the reason and time; ``source`` names where from."""

    status: RevocationStatus
    reason: RevocationReason | None = None
    revoked_at: datetime | None = None
    source: str = ""
    detail: str = ""

    @property
    def is_good(self) -> bool:
        return self.status is RevocationStatus.GOOD

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "reason": self.reason.value if self.reason else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "source": self.source,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class RevocationPolicy:
    """``prefer``: which source is asked first when several are given."""

    soft_fail: bool = False
    max_crl_age: timedelta | None = None
    prefer: Literal["crl", "ocsp"] = "crl"
    ocsp_timeout: float = 10.0
    clock_skew: timedelta = field(default=timedelta(minutes=5))

    def __post_init__(self) -> None:
        if self.prefer not in ("crl", "ocsp"):
            raise UsageError("prefer must be 'crl' or 'ocsp'")
        # NaN fails every comparison; inf or a huge value overflows the socket timeout.
        if not 0 < self.ocsp_timeout <= 86400:
            raise UsageError("ocsp_timeout must be positive seconds, at most a day")
        if self.max_crl_age is not None and self.max_crl_age < timedelta(0):
            raise UsageError("max_crl_age must not be negative")


# Reasons that make a certificate untrustworthy even for signatures made before revocation.
_BACKDATING_REASONS = frozenset({RevocationReason.KEY_COMPROMISE, RevocationReason.CA_COMPROMISE})


def result_from_entry(entry: RevokedEntry | None, at: datetime, source: str) -> RevocationResult:
    """GOOD when absent, or revoked only after ``at`` for a reason that does not reach back."""
    if entry is None:
        return RevocationResult(RevocationStatus.GOOD, source=source, detail="not listed")
    when = entry.invalidity_date or entry.revocation_date
    if when > at and entry.reason not in _BACKDATING_REASONS:
        return RevocationResult(
            RevocationStatus.GOOD,
            source=source,
            detail=f"revoked only later, at {entry.revocation_date.isoformat()}",
        )
    return RevocationResult(
        RevocationStatus.REVOKED,
        reason=entry.reason or RevocationReason.UNSPECIFIED,
        revoked_at=entry.revocation_date,
        source=source,
        detail=f"listed ({(entry.reason or RevocationReason.UNSPECIFIED).value})",
    )


@functools.lru_cache(maxsize=8)
def _load_cached(der: bytes) -> Crl:
    # Callers (e.g. the path validator) pass the same CRL bytes for every check: index once.
    # (A bytes object caches its hash, so the lookup does not rehash a 300 MB CRL.)
    return Crl.load(der)


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


def _from_crls(
    crls: Sequence[Crl | bytes], cert: CertLike, issuer: CertLike, at: datetime, p: RevocationPolicy
) -> RevocationResult:
    loaded = [c if isinstance(c, Crl) else _load_cached(bytes(c)) for c in crls]
    usable: list[Crl] = []
    out_of_date: list[Crl] = []
    problems: list[str] = []
    for crl in loaded:
        if not crl.covers(cert):
            continue
        try:
            signer, iss = crl.verified_by, as_x509(issuer)
            # Equal certificates have equal keys: skip decoding both keys on every check.
            if signer is None or (
                signer is not iss and signer != iss and signer.public_key() != iss.public_key()
            ):
                crl.verify([issuer])
        except CrlError as exc:
            problems.append(str(exc))
            continue
        try:
            crl.check_fresh(at, max_age=p.max_crl_age)
        except CrlError as exc:
            problems.append(str(exc))
            out_of_date.append(crl)
            continue
        usable.append(crl)
    serial = as_x509(cert).serial_number
    base, delta = select_crls(usable, cert)
    if base is None:
        why = "; ".join(problems) or "no CRL covers this certificate (issuer / distribution point)"
        result = RevocationResult(RevocationStatus.UNKNOWN, source="crl", detail=why)
    else:
        entry = lookup_with_delta(base, delta, serial)
        source = f"crl#{base.number}" + (f"+delta#{delta.number}" if delta else "")
        result = result_from_entry(entry, at, source)
    if result.status is RevocationStatus.REVOKED:
        return result
    return _listed_for_good(out_of_date, serial, at) or result


# Only these revocations can be undone; every other one is final once the CA has signed it.
UNDOABLE_REASONS = (RevocationReason.CERTIFICATE_HOLD, RevocationReason.REMOVE_FROM_CRL)


def _listed_for_good(crls: Sequence[Crl], serial: int, at: datetime) -> RevocationResult | None:
    """A final revocation in a CRL that is signed by the issuer but not fresh still counts.

    Freshness protects against missing *new* revocations; an old (or stale delta) CRL that
    already lists the certificate is evidence enough, and ignoring it would answer GOOD.
    """
    for crl in crls:
        entry = crl.lookup(serial)
        if entry is None or entry.reason in UNDOABLE_REASONS:
            continue
        res = result_from_entry(entry, at, f"crl#{crl.number} (not fresh)")
        if res.status is RevocationStatus.REVOKED:
            return res
    return None


def check_revocation(
    cert: CertLike,
    issuer: CertLike,
    *,
    crls: Sequence[Crl | bytes] = (),
    ocsp_url: str | None = None,
    store: RevocationStore | None = None,
    at: datetime,
    policy: RevocationPolicy | None = None,
) -> RevocationResult:
    """Ask the given sources in policy order; the first GOOD/REVOKED answer wins."""
    p = policy or RevocationPolicy()
    if at.tzinfo is None:
        raise UsageError("the validation time must be timezone-aware")
    if not crls and ocsp_url is None and store is None:
        raise UsageError("no revocation source given (CRL, OCSP URL or store)")
    if not issued_by(as_x509(cert), as_x509(issuer)):
        # CA generations share a DN: the other generation's (fresh, verified) CRL would
        # answer "not listed" for a certificate it never covered. Never good, even soft.
        return RevocationResult(
            RevocationStatus.UNKNOWN,
            source="issuer",
            detail="the given issuer certificate did not sign this certificate "
            "(wrong CA generation?): revocation status NOT established",
        )
    order = ["crl", "store", "ocsp"] if p.prefer == "crl" else ["ocsp", "crl", "store"]
    unknown: list[RevocationResult] = []
    for name in order:
        try:
            if name == "crl" and crls:
                res = _from_crls(crls, cert, issuer, at, p)
            elif name == "store" and store is not None:
                res = store.check(cert, issuer, at=at, max_age=p.max_crl_age)
            elif name == "ocsp" and ocsp_url is not None:
                from jpki.revocation.ocsp import check_ocsp

                res = check_ocsp(
                    cert, issuer, ocsp_url, at=at, timeout=p.ocsp_timeout, skew=p.clock_skew
                )
            else:
                continue
        except RevocationError as exc:
            res = RevocationResult(RevocationStatus.UNKNOWN, source=name, detail=str(exc))
        if res.status is not RevocationStatus.UNKNOWN:
            return res
        unknown.append(res)
    detail = "; ".join(f"{r.source}: {r.detail}" for r in unknown)
    if p.soft_fail:
        return RevocationResult(
            RevocationStatus.GOOD,
            source="soft-fail",
            detail=f"revocation status NOT established ({detail}); treated as good by soft-fail",
        )
    return RevocationResult(RevocationStatus.UNKNOWN, source=unknown[0].source, detail=detail)
