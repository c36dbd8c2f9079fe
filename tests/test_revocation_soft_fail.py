"""Soft-fail is applied once, by the revocation policy, the same way sync and async: the
status stays UNKNOWN, marked ``soft_failed`` (never GOOD); the chain verifiers honour that
mark as the Policy's own soft-fail (VALID with the soft-fail reason), sync and async."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

import pytest

from jpki.cert import JpkiCertificate
from jpki.errors import OcspError
from jpki.revocation.policy import (
    RevocationPolicy,
    RevocationResult,
    RevocationStatus,
    check_revocation,
    check_revocation_async,
)
from jpki.testing.pki import Issued, TestPki, sample_person
from jpki.verify import (
    Code,
    Policy,
    Status,
    VerificationResult,
    async_revocation_checker,
    async_validate_chain,
    revocation_checker,
    validate_chain,
)
from revocation_helpers import NOW


@pytest.fixture(scope="module")
def leaf(pki: TestPki) -> Issued:
    return pki.issue_signing(sample_person(0), label="soft-fail")


@pytest.fixture(scope="module")
def stale(pki: TestPki) -> bytes:
    """A CRL of the signing CA past its nextUpdate at NOW: it cannot vouch for anything."""
    return pki.make_crl(
        "sign", [], this_update=NOW - timedelta(days=5), next_update=NOW - timedelta(days=4)
    )


@pytest.mark.parametrize("soft", [False, True])
def test_async_checker_answers_exactly_as_the_sync_policy(
    pki: TestPki, leaf: Issued, stale: bytes, soft: bool
) -> None:
    ca = pki.sign_ca.jpki
    sync = revocation_checker(crls=[stale], soft_fail=soft)(leaf.jpki, ca, NOW)
    aio = asyncio.run(async_revocation_checker(crls=[stale], soft_fail=soft)(leaf.jpki, ca, NOW))
    assert isinstance(sync, RevocationResult) and isinstance(aio, RevocationResult)
    assert aio.to_json() == sync.to_json()
    assert aio.status is RevocationStatus.UNKNOWN  # never GOOD, soft or not
    assert aio.soft_failed is soft and aio.accepted is soft
    assert ("accepted by soft-fail" in aio.detail) is soft


def test_both_policies_agree_over_every_source(pki: TestPki, leaf: Issued, stale: bytes) -> None:
    """CRL, then OCSP (a failing fetch): the same combined soft-fail answer, both orders."""

    def down(url: str, body: bytes, deadline: float) -> bytes:
        raise OcspError("network down")

    async def adown(url: str, body: bytes, deadline: float) -> bytes:
        raise OcspError("network down")

    for prefer in ("crl", "ocsp"):
        pol = RevocationPolicy(soft_fail=True, prefer="ocsp" if prefer == "ocsp" else "crl")
        url = "http://ocsp.test/"
        c, ca = leaf.cert, pki.sign_ca.cert
        sync = check_revocation(
            c, ca, crls=[stale], ocsp_url=url, ocsp_fetch=down, at=NOW, policy=pol
        )
        aio = asyncio.run(
            check_revocation_async(
                c, ca, crls=[stale], ocsp_url=url, ocsp_fetch=adown, at=NOW, policy=pol
            )
        )
        assert aio == sync
        assert sync.status is RevocationStatus.UNKNOWN and sync.soft_failed
        assert "network down" in sync.detail and "crl:" in sync.detail
        assert sync.source == prefer


def test_wrong_generation_is_never_soft_failed(
    pki: TestPki, pki_2015: TestPki, leaf: Issued, stale: bytes
) -> None:
    other = pki_2015.sign_ca.jpki  # not the key that signed the leaf
    pol = RevocationPolicy(soft_fail=True)
    sync = check_revocation(leaf.jpki, other, crls=[stale], at=NOW, policy=pol)
    aio = asyncio.run(check_revocation_async(leaf.jpki, other, crls=[stale], at=NOW, policy=pol))
    assert aio == sync
    assert sync.status is RevocationStatus.UNKNOWN and not sync.soft_failed
    assert not sync.accepted


def _validate(cert: JpkiCertificate, policy: Policy, aio: bool) -> VerificationResult:
    if aio:
        return asyncio.run(async_validate_chain(cert, policy))
    return validate_chain(cert, policy)


def _soft_verdict(r: VerificationResult) -> str:
    """The one soft-fail reason of a VALID verdict (asserts it is exactly that)."""
    assert r.status is Status.VALID, r.reasons
    assert r.has(Code.REVOCATION_SOFT_FAIL), r.codes
    assert not r.has(Code.REVOCATION_GOOD) and not r.has(Code.REVOCATION_UNKNOWN)
    text = next(x for x in r.reasons if x.code is Code.REVOCATION_SOFT_FAIL)
    assert "not revoked" not in text
    assert text.count("NOT established") == 1, text
    return str(text)


@pytest.mark.parametrize("aio", [False, True])
def test_soft_fail_set_only_on_the_checker_is_honoured(
    pki: TestPki, leaf: Issued, stale: bytes, aio: bool
) -> None:
    make = async_revocation_checker if aio else revocation_checker
    base = Policy(anchors=[pki.sign_ca.jpki], at=NOW)
    on_checker = _validate(
        leaf.jpki,
        Policy(anchors=base.anchors, at=NOW, revocation=make(crls=[stale], soft_fail=True)),
        aio,
    )
    text = _soft_verdict(on_checker)
    assert "nextUpdate" in text or "stale" in text or "expired" in text, text
    on_policy = _validate(
        leaf.jpki,
        Policy(anchors=base.anchors, at=NOW, revocation=make(crls=[stale]), soft_fail=True),
        aio,
    )
    _soft_verdict(on_policy)
    assert on_policy.codes == on_checker.codes
    hard = _validate(
        leaf.jpki, Policy(anchors=base.anchors, at=NOW, revocation=make(crls=[stale])), aio
    )
    assert hard.status is Status.INDETERMINATE and hard.has(Code.REVOCATION_UNKNOWN)


class _S(Enum):
    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


@dataclass
class _Outcome:
    status: _S
    soft_failed: object = False
    source: str = "mine"
    detail: str = "no answer"
    reason: str | None = None
    revoked_at: datetime | None = None


@pytest.mark.parametrize("aio", [False, True])
def test_a_bare_checkers_soft_failed_mark(pki: TestPki, leaf: Issued, aio: bool) -> None:
    """Any checker (plain or ``async def``) may mark its UNKNOWN soft-failed; REVOKED is
    never softened by the mark; only ``True`` counts as the mark."""

    def policy(outcome: _Outcome) -> Policy:
        if aio:

            async def check(c: JpkiCertificate, i: JpkiCertificate, t: datetime) -> _Outcome:
                return outcome

            return Policy(anchors=[pki.sign_ca.jpki], at=NOW, revocation=check)
        return Policy(anchors=[pki.sign_ca.jpki], at=NOW, revocation=lambda c, i, t: outcome)

    soft = _validate(leaf.jpki, policy(_Outcome(_S.UNKNOWN, soft_failed=True)), aio)
    assert "no answer" in _soft_verdict(soft) and "(from mine)" in _soft_verdict(soft)
    # GOOD carrying the mark is a contradiction: read as the weaker claim, never "not revoked"
    _soft_verdict(_validate(leaf.jpki, policy(_Outcome(_S.GOOD, soft_failed=True)), aio))
    revoked = _validate(
        leaf.jpki, policy(_Outcome(_S.REVOKED, soft_failed=True, reason="keyCompromise")), aio
    )
    assert revoked.status is Status.INVALID and revoked.has(Code.REVOCATION_REVOKED)
    for not_a_mark in (False, "yes", 1):
        r = _validate(leaf.jpki, policy(_Outcome(_S.UNKNOWN, soft_failed=not_a_mark)), aio)
        assert r.status is Status.INDETERMINATE and r.has(Code.REVOCATION_UNKNOWN)
