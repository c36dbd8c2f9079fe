"""Async revocation checks that never block an event loop.

* OCSP uses jpki's own HTTP/1.1 client on asyncio streams with one **total** deadline for the
  name lookup, connecting, sending and reading: a hung resolver or a responder that accepts
  and never answers costs the caller the deadline, never the loop. Request and response
  handling are those of :mod:`jpki.revocation.ocsp` (nonce, signer, freshness checks), the
  CPU part in a thread.
* CRLs and the revocation store are asked in a worker thread, with the order and rules of
  :func:`jpki.revocation.policy.check_revocation` (the async twin,
  :func:`~jpki.revocation.policy.check_revocation_async`, does both); soft-fail is the
  revocation policy's, once: UNKNOWN marked ``soft_failed``, never GOOD.

:func:`async_revocation_checker` gives an ``async def`` check for
:func:`jpki.verify.async_validate_chain` and ``LoginVerifier(revocation=...)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from jpki.cert import JpkiCertificate
from jpki.errors import UsageError
from jpki.revocation.crl import Crl
from jpki.revocation.ocsp import Resolver, check_ocsp_async, post_async
from jpki.revocation.policy import RevocationPolicy, RevocationResult, check_revocation_async
from jpki.verify.path import AsyncRevocationCheck

if TYPE_CHECKING:
    from jpki.revocation.store import RevocationStore

__all__ = ["async_check_ocsp", "async_post", "async_revocation_checker"]


async def async_post(
    url: str, body: bytes, *, deadline: float, resolve: Resolver | None = None
) -> bytes:
    """POST an OCSP request; the whole exchange (name lookup included) must finish within
    ``deadline`` seconds. ``resolve`` replaces the system resolver."""
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"OCSP URL must be http(s): {url!r}")
    if not (math.isfinite(deadline) and 0 < deadline <= 86400):
        raise UsageError("the OCSP deadline must be positive seconds, at most a day")
    return await post_async(url, body, deadline, resolve=resolve)


async def async_check_ocsp(
    cert: JpkiCertificate,
    issuer: JpkiCertificate,
    url: str,
    *,
    at: datetime,
    timeout: float = 10.0,
    skew: timedelta = timedelta(minutes=5),
) -> RevocationResult:
    """Async :func:`jpki.revocation.ocsp.check_ocsp`: fresh nonce, verified answer."""
    return await check_ocsp_async(cert, issuer, url, at=at, timeout=timeout, skew=skew)


def async_revocation_checker(
    *,
    crls: Sequence[Crl | bytes] = (),
    ocsp_url: str | None = None,
    store: RevocationStore | None = None,
    soft_fail: bool = False,
    policy: RevocationPolicy | None = None,
) -> AsyncRevocationCheck:
    """An ``async def`` revocation check (the async twin of ``revocation_checker``).

    Sources are asked in the policy's order (``prefer``); the first GOOD/REVOKED answer
    wins; nothing conclusive is UNKNOWN, marked ``soft_failed`` under soft-fail (``policy``,
    when given, decides; else ``soft_fail``). ``policy.ocsp_timeout`` is the total OCSP
    deadline.
    """
    pol = policy if policy is not None else RevocationPolicy(soft_fail=soft_fail)
    if not crls and ocsp_url is None and store is None:
        raise UsageError("no revocation source given (CRL, OCSP URL or store)")
    sources = tuple(crls)

    async def check(
        cert: JpkiCertificate, issuer: JpkiCertificate, at: datetime
    ) -> RevocationResult:
        return await check_revocation_async(
            cert, issuer, crls=sources, ocsp_url=ocsp_url, store=store, at=at, policy=pol
        )

    return check
