"""Revocation policy: which sources to ask, in which order, and what "unknown" means.

Hard-fail by default: without fresh, trusted revocation information the answer is UNKNOWN
(callers treat it as not valid). Soft-fail is applied here and only here
(:func:`not_established`, for :func:`check_revocation` and :func:`check_revocation_async`
alike): the answer stays UNKNOWN, marked ``soft_failed`` (``RevocationResult.accepted`` is
then true), so nothing downstream can mistake it for "not revoked".
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from cryptography import x509

from jpki.errors import CrlError, RevocationError, UsageError
from jpki.revocation.crl import CertLike, Crl, as_x509, is_final, lookup_with_delta, newest_crls
from jpki.revocation.index import RevocationReason
from jpki.revocation.ocsp import AsyncFetch, Fetch, OcspSource
from jpki.revocation.results import (
    UNDOABLE_REASONS,
    RevocationResult,
    RevocationSource,
    RevocationStatus,
    issued_by,
    result_from_entry,
)

if TYPE_CHECKING:
    from jpki.revocation.store import RevocationStore

__all__ = [
    "UNDOABLE_REASONS",
    "CrlFiles",
    "RevocationPolicy",
    "RevocationReason",
    "RevocationResult",
    "RevocationSource",
    "RevocationStatus",
    "check_revocation",
    "check_revocation_async",
    "issued_by",
    "not_established",
    "result_from_entry",
]


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


@functools.lru_cache(maxsize=8)
def _load_cached(der: bytes) -> Crl:
    # Callers (e.g. the path validator) pass the same CRL bytes for every check: index once.
    # (A bytes object caches its hash, so the lookup does not rehash a 300 MB CRL.)
    return Crl.load(der)


class CrlFiles:
    """CRLs given directly (bytes or loaded ``Crl`` objects) as a :class:`RevocationSource`.

    The newest covering full CRL (plus its newest applicable delta) decides, except that a
    final revocation listed in any of them that the issuer signed (fresh or not) always counts:
    a later CRL or a delta's removeFromCRL can release a hold, never undo a final revocation.
    """

    source_name = "crl"

    def __init__(self, crls: Sequence[Crl | bytes]) -> None:
        self.crls = [c if isinstance(c, Crl) else _load_cached(bytes(c)) for c in crls]

    def status(
        self,
        cert: x509.Certificate,
        issuer: x509.Certificate,
        *,
        at: datetime,
        max_age: timedelta | None = None,
    ) -> RevocationResult:
        """The status of ``cert`` at ``at`` from the covering CRLs (UNKNOWN when none is usable)."""
        usable: list[Crl] = []
        signed: list[Crl] = []
        problems: list[str] = []
        for crl in self.crls:
            if not crl.covers(cert):
                continue
            try:
                signer = crl.verified_by
                # Equal certificates have equal keys: skip decoding both keys on every check.
                if signer is None or (
                    signer is not issuer
                    and signer != issuer
                    and signer.public_key() != issuer.public_key()
                ):
                    crl.verify([issuer])
            except CrlError as exc:
                problems.append(str(exc))
                continue
            signed.append(crl)
            try:
                crl.check_fresh(at, max_age=max_age)
            except CrlError as exc:
                problems.append(str(exc))
                continue
            usable.append(crl)
        serial = cert.serial_number
        base, delta = newest_crls(usable)  # each one covers the certificate (checked above)
        if base is None:
            why = (
                "; ".join(problems)
                or "no CRL covers this certificate (issuer / distribution point)"
            )
            result = RevocationResult(RevocationStatus.UNKNOWN, source="crl", detail=why)
        else:
            entry = lookup_with_delta(base, delta, serial)
            source = f"crl#{base.number}" + (f"+delta#{delta.number}" if delta else "")
            result = result_from_entry(entry, at, source)
            if is_final(entry) and result.status is RevocationStatus.REVOKED:
                return result
        # Without a delta the base's own entry decided above: judging it again changes
        # nothing (with one, the delta's entry may have been preferred, so look again).
        decided = base if delta is None else None
        if decided is not None and len(signed) == 1:
            return result
        return _listed_for_good(signed, usable, serial, at, decided) or result


def _listed_for_good(
    crls: Sequence[Crl],
    fresh: Sequence[Crl],
    serial: int,
    at: datetime,
    decided: Crl | None = None,
) -> RevocationResult | None:
    """A final revocation in any CRL the issuer signed counts, fresh or not.

    Freshness protects against missing *new* revocations; an old (or stale delta) CRL that
    already lists the certificate for good is evidence enough, and ignoring it would answer
    GOOD (or let a later CRL that dropped the entry undo it). ``decided``: a CRL whose entry
    the caller already judged alone (a final one answered REVOKED there, or was revoked only
    after ``at``, which judging it again cannot change).
    """
    for crl in sorted(crls, key=lambda c: c.number or -1):
        if crl is decided:
            continue
        entry = crl.lookup(serial)
        if not is_final(entry):
            continue
        note = "" if any(crl is f for f in fresh) else " (not fresh)"
        res = result_from_entry(entry, at, f"crl#{crl.number}{note}")
        if res.status is RevocationStatus.REVOKED:
            return res
    return None


def _sources(
    p: RevocationPolicy,
    crls: Sequence[Crl | bytes] | CrlFiles,
    ocsp_url: str | None,
    store: RevocationStore | None,
    sources: Sequence[RevocationSource],
    ocsp_fetch: Fetch | None = None,
    ocsp_fetch_async: AsyncFetch | None = None,
) -> list[RevocationSource]:
    """The sources to ask, in the policy's order (``sources`` after the named ones)."""
    named: dict[str, RevocationSource] = {}
    if crls:
        named["crl"] = crls if isinstance(crls, CrlFiles) else CrlFiles(crls)
    if store is not None:
        named["store"] = store
    if ocsp_url is not None:
        named["ocsp"] = OcspSource(
            ocsp_url,
            timeout=p.ocsp_timeout,
            skew=p.clock_skew,
            fetch=ocsp_fetch,
            fetch_async=ocsp_fetch_async,
        )
    order = ["crl", "store", "ocsp"] if p.prefer == "crl" else ["ocsp", "crl", "store"]
    ask = [named[n] for n in order if n in named] + list(sources)
    if not ask:
        raise UsageError("no revocation source given (CRL, OCSP URL or store)")
    return ask


def _wrong_issuer() -> RevocationResult:
    # CA generations share a DN: the other generation's (fresh, verified) CRL would answer
    # "not listed" for a certificate it never covered. Never accepted, even soft.
    return RevocationResult(
        RevocationStatus.UNKNOWN,
        source="issuer",
        detail="the given issuer certificate did not sign this certificate "
        "(wrong CA generation?): revocation status NOT established",
    )


def _cannot_say(src: RevocationSource, exc: RevocationError) -> RevocationResult:
    return RevocationResult(RevocationStatus.UNKNOWN, source=src.source_name, detail=str(exc))


def not_established(
    unknown: Sequence[RevocationResult], policy: RevocationPolicy
) -> RevocationResult:
    """The policy's answer when no source could tell: UNKNOWN, and under soft-fail marked
    ``soft_failed`` (accepted, never GOOD). The one place soft-fail is applied."""
    if not unknown:
        raise UsageError("no revocation source was asked")
    detail = "; ".join(f"{r.source}: {r.detail}" for r in unknown)
    if policy.soft_fail:
        return RevocationResult(
            RevocationStatus.UNKNOWN,
            source=unknown[0].source,
            detail=f"revocation status NOT established ({detail}); accepted by soft-fail",
            soft_failed=True,
        )
    return RevocationResult(RevocationStatus.UNKNOWN, source=unknown[0].source, detail=detail)


def check_revocation(
    cert: CertLike,
    issuer: CertLike,
    *,
    crls: Sequence[Crl | bytes] | CrlFiles = (),
    ocsp_url: str | None = None,
    store: RevocationStore | None = None,
    sources: Sequence[RevocationSource] = (),
    ocsp_fetch: Fetch | None = None,
    at: datetime,
    policy: RevocationPolicy | None = None,
) -> RevocationResult:
    """Ask the given sources in policy order; the first GOOD/REVOKED answer wins.

    ``crls`` may be a ready :class:`CrlFiles` (a checker asked on every login makes it once).
    ``sources`` are asked after the named ones, in their order. ``ocsp_fetch`` replaces the
    HTTP POST of the OCSP source (``(url, body, deadline seconds) -> bytes``). Nothing
    conclusive: :func:`not_established`.
    """
    p = policy or RevocationPolicy()
    if at.tzinfo is None:
        raise UsageError("the validation time must be timezone-aware")
    ask = _sources(p, crls, ocsp_url, store, sources, ocsp_fetch=ocsp_fetch)
    c, ca = as_x509(cert), as_x509(issuer)
    if not issued_by(c, ca):
        return _wrong_issuer()
    unknown: list[RevocationResult] = []
    for src in ask:
        try:
            res = src.status(c, ca, at=at, max_age=p.max_crl_age)
        except RevocationError as exc:
            res = _cannot_say(src, exc)
        if res.status is not RevocationStatus.UNKNOWN:
            return res
        unknown.append(res)
    return not_established(unknown, p)


async def check_revocation_async(
    cert: CertLike,
    issuer: CertLike,
    *,
    crls: Sequence[Crl | bytes] = (),
    ocsp_url: str | None = None,
    store: RevocationStore | None = None,
    sources: Sequence[RevocationSource] = (),
    ocsp_fetch: AsyncFetch | None = None,
    at: datetime,
    policy: RevocationPolicy | None = None,
) -> RevocationResult:
    """:func:`check_revocation` for asyncio, with the same order and rules.

    OCSP is awaited on the loop (one total deadline); CRL files, the store and other sources
    are asked in a worker thread. ``ocsp_fetch``: an ``async`` replacement for the HTTP POST.
    """
    import asyncio

    p = policy or RevocationPolicy()
    if at.tzinfo is None:
        raise UsageError("the validation time must be timezone-aware")
    if all(isinstance(c, Crl) for c in crls):
        ask = _sources(p, crls, ocsp_url, store, sources, ocsp_fetch_async=ocsp_fetch)
    else:  # CRL bytes are parsed and indexed (once, cached): not on the loop
        ask = await asyncio.to_thread(
            _sources, p, crls, ocsp_url, store, sources, ocsp_fetch_async=ocsp_fetch
        )
    c, ca = as_x509(cert), as_x509(issuer)
    if not issued_by(c, ca):  # cached per pair: one RSA verify the first time
        return _wrong_issuer()
    unknown: list[RevocationResult] = []
    for src in ask:
        try:
            if isinstance(src, OcspSource):
                res = await src.status_async(c, ca, at=at, max_age=p.max_crl_age)
            else:
                res = await asyncio.to_thread(src.status, c, ca, at=at, max_age=p.max_crl_age)
        except RevocationError as exc:
            res = _cannot_say(src, exc)
        if res.status is not RevocationStatus.UNKNOWN:
            return res
        unknown.append(res)
    return not_established(unknown, p)
