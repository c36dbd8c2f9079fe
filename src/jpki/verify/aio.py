"""Async revocation checks that never block an event loop.

* OCSP goes over ``httpx.AsyncClient`` with one **total** deadline for connecting, sending and
  reading (``asyncio.timeout``): a responder that accepts and never answers costs the caller
  the deadline, never the loop. Request and response handling are the synchronous code of
  :mod:`jpki.revocation.ocsp` (nonce, signer, freshness checks), the CPU part in a thread.
* CRLs and the revocation store are asked in a worker thread (``asyncio.to_thread``), with
  the same rules as :func:`jpki.revocation.policy.check_revocation`.

:func:`async_revocation_checker` gives an ``async def`` check for
:func:`jpki.verify.async_validate_chain` and ``LoginVerifier(revocation=...)``.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from jpki.cert import JpkiCertificate
from jpki.errors import OcspError, RevocationError, UsageError
from jpki.revocation.crl import Crl, as_x509
from jpki.revocation.ocsp import MAX_RESPONSE, build_request, parse_response
from jpki.revocation.policy import (
    RevocationPolicy,
    RevocationResult,
    RevocationStatus,
    check_revocation,
    issued_by,
)
from jpki.verify.path import AsyncRevocationCheck

if TYPE_CHECKING:
    from jpki.revocation.store import RevocationStore

__all__ = ["async_check_ocsp", "async_post", "async_revocation_checker"]


async def async_post(url: str, body: bytes, *, deadline: float) -> bytes:
    """POST an OCSP request; the whole exchange must finish within ``deadline`` seconds."""
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"OCSP URL must be http(s): {url!r}")
    if not (math.isfinite(deadline) and 0 < deadline <= 86400):
        raise UsageError("the OCSP deadline must be positive seconds, at most a day")
    import httpx

    try:
        async with asyncio.timeout(deadline):
            async with httpx.AsyncClient(timeout=deadline, trust_env=False) as client:
                headers = {"Content-Type": "application/ocsp-request"}
                async with client.stream("POST", url, content=body, headers=headers) as resp:
                    if resp.status_code != 200:
                        raise OcspError(f"OCSP responder answered HTTP {resp.status_code}")
                    data = bytearray()
                    async for chunk in resp.aiter_bytes():
                        data += chunk
                        if len(data) > MAX_RESPONSE:
                            raise OcspError("OCSP response too large")
                    return bytes(data)
    except TimeoutError:
        raise OcspError(f"OCSP responder did not answer within {deadline:g} s") from None
    except httpx.TimeoutException:
        raise OcspError(f"OCSP responder did not answer within {deadline:g} s") from None
    except httpx.HTTPError as exc:
        raise OcspError(f"cannot reach OCSP responder: {exc or type(exc).__name__}") from None


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
    nonce = os.urandom(16)
    request = build_request(cert, issuer, nonce)
    data = await async_post(url, request, deadline=timeout)
    return await asyncio.to_thread(
        parse_response, data, cert, issuer, at=at, nonce=nonce, skew=skew, source=f"ocsp:{url}"
    )


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
    wins; nothing conclusive is UNKNOWN (hard-fail) or, with ``soft_fail``, GOOD marked
    "NOT established". ``policy.ocsp_timeout`` is the total OCSP deadline.
    """
    if policy is None:
        policy = RevocationPolicy(soft_fail=soft_fail)
    if not crls and ocsp_url is None and store is None:
        raise UsageError("no revocation source given (CRL, OCSP URL or store)")
    pol = policy
    local = RevocationPolicy(
        soft_fail=False,
        max_crl_age=pol.max_crl_age,
        ocsp_timeout=pol.ocsp_timeout,
        clock_skew=pol.clock_skew,
    )

    def offline(cert: JpkiCertificate, issuer: JpkiCertificate, at: datetime) -> RevocationResult:
        return check_revocation(cert, issuer, crls=crls, store=store, at=at, policy=local)

    async def online(
        cert: JpkiCertificate, issuer: JpkiCertificate, at: datetime
    ) -> RevocationResult:
        assert ocsp_url is not None
        try:
            return await async_check_ocsp(
                cert, issuer, ocsp_url, at=at, timeout=pol.ocsp_timeout, skew=pol.clock_skew
            )
        except RevocationError as exc:
            return RevocationResult(RevocationStatus.UNKNOWN, source="ocsp", detail=str(exc))

    async def check(
        cert: JpkiCertificate, issuer: JpkiCertificate, at: datetime
    ) -> RevocationResult:
        if at.tzinfo is None:
            raise UsageError("the validation time must be timezone-aware")
        if not issued_by(as_x509(cert), as_x509(issuer)):
            return RevocationResult(
                RevocationStatus.UNKNOWN,
                source="issuer",
                detail="the given issuer certificate did not sign this certificate "
                "(wrong CA generation?): revocation status NOT established",
            )
        steps = ["offline", "ocsp"] if pol.prefer == "crl" else ["ocsp", "offline"]
        unknown: list[RevocationResult] = []
        for step in steps:
            if step == "offline" and (crls or store is not None):
                res = await asyncio.to_thread(offline, cert, issuer, at)
            elif step == "ocsp" and ocsp_url is not None:
                res = await online(cert, issuer, at)
            else:
                continue
            if res.status is not RevocationStatus.UNKNOWN:
                return res
            unknown.append(res)
        detail = "; ".join(f"{r.source}: {r.detail}" for r in unknown)
        if pol.soft_fail:
            return RevocationResult(
                RevocationStatus.GOOD,
                source="soft-fail",
                detail=f"revocation status NOT established ({detail}); treated as good by "
                "soft-fail",
            )
        return RevocationResult(RevocationStatus.UNKNOWN, source=unknown[0].source, detail=detail)

    return check
