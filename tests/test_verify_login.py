"""Login challenges: issue, single use across processes, verification with the auth key."""

from __future__ import annotations

import hashlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from forged import AUTH_POLICY, forged
from jpki.cert import CertKind, JpkiCertificate
from jpki.errors import ChallengeError, ChallengeExpired, ChallengeUnknown, UsageError
from jpki.testing.pki import Issued, TestPki, sample_person
from jpki.verify import (
    Challenge,
    ChallengeStore,
    Code,
    LoginVerifier,
    MemoryChallengeStore,
    Policy,
    SqliteChallengeStore,
    Status,
    account_key,
)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def login_policy(test_policy: Policy) -> Policy:
    """The test CAs trusted; the time is the verifier's clock."""
    return replace(test_policy, at=None)


@pytest.fixture(scope="module")
def auth(test_pki: TestPki) -> Issued:
    return test_pki.issue_auth()


def _card_sign(issued: Issued, nonce: bytes) -> bytes:
    return _card_sign_key(issued.key, nonce)


def _card_sign_key(key: rsa.RSAPrivateKey, nonce: bytes) -> bytes:
    # What the card does: PKCS#1 v1.5 over DigestInfo(SHA-256(challenge)).
    return key.sign(nonce, padding.PKCS1v15(), hashes.SHA256())


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ChallengeStore:
    if request.param == "memory":
        return MemoryChallengeStore()
    return SqliteChallengeStore(tmp_path / "challenges.db")


def test_login_ok_then_replay_refused(
    store: ChallengeStore, auth: Issued, login_policy: Policy
) -> None:
    clock = Clock()
    v = LoginVerifier(store, login_policy, clock=clock)
    ch = v.issue()
    assert len(ch.nonce) >= 32 and ch.expires_at == clock.now + timedelta(minutes=5)
    assert "nonce" not in repr(ch)
    sig = _card_sign(auth, ch.nonce)
    r = v.verify(ch.id, sig, auth.der)
    assert r.status is Status.VALID, r.reasons
    spki = auth.cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert r.account_key == hashlib.sha256(spki).hexdigest() == account_key(auth.cert)
    again = v.verify(ch.id, sig, auth.der)
    assert again.status is Status.INVALID
    assert "already used" in again.reasons[0]


def test_expired_and_unknown(store: ChallengeStore, auth: Issued, login_policy: Policy) -> None:
    clock = Clock()
    v = LoginVerifier(store, login_policy, ttl=timedelta(seconds=30), clock=clock)
    ch = v.issue()
    clock.now += timedelta(seconds=31)
    r = v.verify(ch.id, _card_sign(auth, ch.nonce), auth.der)
    assert r.status is Status.INVALID and "expired" in r.reasons[0]
    assert r.reasons[0].code is Code.CHALLENGE_REFUSED
    r2 = v.verify("no-such-id", _card_sign(auth, ch.nonce), auth.der)
    assert r2.status is Status.INVALID and "unknown challenge" in r2.reasons[0]


def test_wrong_signature_uses_up_the_challenge(
    store: ChallengeStore, auth: Issued, login_policy: Policy
) -> None:
    v = LoginVerifier(store, login_policy, clock=Clock())
    ch = v.issue()
    other = v.issue()
    bad = v.verify(ch.id, _card_sign(auth, other.nonce), auth.der)  # signed the wrong nonce
    assert bad.status is Status.INVALID
    assert "different data" in bad.reasons[0]
    retry = v.verify(ch.id, _card_sign(auth, ch.nonce), auth.der)
    assert retry.status is Status.INVALID and "already used" in retry.reasons[0]


def test_signing_certificate_is_refused_for_login(
    test_pki: TestPki, tmp_path: Path, login_policy: Policy
) -> None:
    signing = test_pki.issue_signing(sample_person(0))
    v = LoginVerifier(tmp_path / "c.db", login_policy, clock=Clock())
    ch = v.issue()
    r = v.verify(ch.id, _card_sign(signing, ch.nonce), signing.cert)
    assert r.status is Status.INVALID
    assert "logins need a user-authentication certificate" in " ".join(r.reasons)


def test_chain_checked_with_anchors(
    test_pki: TestPki, test_pki_2015: TestPki, auth: Issued
) -> None:
    anchors = [JpkiCertificate.load(test_pki.auth_ca.der)]
    v = LoginVerifier(MemoryChallengeStore(), Policy(anchors=anchors), clock=Clock())
    ch = v.issue()
    r = v.verify(ch.id, _card_sign(auth, ch.nonce), auth.der)
    assert r.status is Status.VALID, r.reasons
    assert any("chains to trusted CA" in x for x in r.reasons)
    old = [JpkiCertificate.load(test_pki_2015.auth_ca.der)]
    v2 = LoginVerifier(MemoryChallengeStore(), Policy(anchors=old), clock=Clock())
    ch2 = v2.issue()
    r2 = v2.verify(ch2.id, _card_sign(auth, ch2.nonce), auth.der)
    assert r2.status is Status.INVALID
    assert any("does not chain" in x for x in r2.reasons)


def test_forged_certificate_never_logs_in(store: ChallengeStore, login_policy: Policy) -> None:
    # A self-signed certificate with the JPKI auth policy OID: the signature matches its key.
    key, cert = forged(AUTH_POLICY)
    assert cert.kind is CertKind.AUTHENTICATION
    no_trust = LoginVerifier(store, clock=Clock())
    ch = no_trust.issue()
    r = no_trust.verify(ch.id, _card_sign_key(key, ch.nonce), cert.der)
    assert r.status is Status.INDETERMINATE, r.reasons
    assert r.reasons[0].code is Code.SIGNATURE_OK and r.has(Code.CHAIN_NOT_VALIDATED)
    trusted = LoginVerifier(store, login_policy, clock=Clock())
    ch = trusted.issue()
    r2 = trusted.verify(ch.id, _card_sign_key(key, ch.nonce), cert.der)
    assert r2.status is Status.INVALID and r2.has(Code.CHAIN_UNTRUSTED)
    # Trusting the forged certificate itself does not help: a leaf is never an anchor.
    itself = LoginVerifier(store, Policy(anchors=[cert]), clock=Clock())
    ch = itself.issue()
    r3 = itself.verify(ch.id, _card_sign_key(key, ch.nonce), cert.der)
    assert r3.status is Status.INDETERMINATE and r3.has(Code.ANCHOR_REFUSED)


def test_challenge_errors_carry_their_fields(store: ChallengeStore) -> None:
    clock = Clock()
    ch = Challenge("x", b"n" * 32, clock.now + timedelta(seconds=5))
    store.put(ch, clock.now)
    with pytest.raises(ChallengeExpired) as info:
        store.consume("x", clock.now + timedelta(seconds=6))
    assert info.value.expired_at == ch.expires_at
    with pytest.raises(ChallengeUnknown):
        store.consume("nope", clock.now)


def test_login_policy_must_be_for_logins(tmp_path: Path, test_policy: Policy) -> None:
    with pytest.raises(UsageError, match="authentication certificate"):
        LoginVerifier(MemoryChallengeStore(), Policy(purpose="sign"))
    with pytest.raises(UsageError, match="clock"):
        LoginVerifier(MemoryChallengeStore(), test_policy)  # a fixed time


def test_parameters_checked(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        LoginVerifier(tmp_path / "x.db", nonce_bytes=16)
    with pytest.raises(UsageError):
        LoginVerifier(tmp_path / "x.db", ttl=timedelta(0))
    naive = LoginVerifier(MemoryChallengeStore(), clock=lambda: datetime(2026, 6, 1, 9, 0))
    with pytest.raises(UsageError, match="timezone-aware"):
        naive.issue()
    with pytest.raises(UsageError, match="timezone-aware"):
        naive.verify("any", b"", b"")


def _consume(args: tuple[str, str]) -> bytes | None:
    path, cid = args
    try:
        return SqliteChallengeStore(path).consume(cid, datetime.now(UTC))
    except ChallengeError:
        return None


def test_sqlite_single_use_across_processes(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    store = SqliteChallengeStore(db)
    chs = [
        Challenge(f"c{i}", bytes([i]) * 32, datetime.now(UTC) + timedelta(minutes=1))
        for i in range(5)
    ]
    for ch in chs:
        store.put(ch, datetime.now(UTC))
    jobs = [(str(db), ch.id) for ch in chs for _ in range(6)]
    with ProcessPoolExecutor(2) as ex:
        got = list(ex.map(_consume, jobs))
    for i, ch in enumerate(chs):
        wins = [g for g in got[i * 6 : (i + 1) * 6] if g is not None]
        assert wins == [ch.nonce]  # exactly one process consumed each challenge


def test_sqlite_persists_between_instances(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    ch = LoginVerifier(db).issue()
    assert SqliteChallengeStore(db).consume(ch.id, datetime.now(UTC)) == ch.nonce
    with pytest.raises(ChallengeError, match="already used"):
        SqliteChallengeStore(db).consume(ch.id, datetime.now(UTC))


def test_sqlite_store_unusable_is_challenge_error(tmp_path: Path, auth: Issued) -> None:
    with pytest.raises(ChallengeError, match="unusable"):
        SqliteChallengeStore(tmp_path / "missing-dir" / "c.db")
    db = tmp_path / "c.db"
    v = LoginVerifier(db)
    ch = v.issue()
    db.write_bytes(b"not a database" * 300)  # damaged after the store was opened
    with pytest.raises(ChallengeError, match="unusable"):
        v.issue()
    r = v.verify(ch.id, _card_sign(auth, ch.nonce), auth.der)
    assert r.status is Status.INVALID and "unusable" in r.reasons[0]


def test_challenges_are_random_and_account_key_stable(
    test_pki: TestPki, auth: Issued, tmp_path: Path, login_policy: Policy
) -> None:
    clock = Clock()
    v = LoginVerifier(tmp_path / "k.db", login_policy, clock=clock)
    chs = [v.issue() for _ in range(50)]
    assert len({c.nonce for c in chs}) == 50 and len({c.id for c in chs}) == 50
    assert all(len(c.nonce) >= 32 for c in chs)
    keys = {v.verify(c.id, _card_sign(auth, c.nonce), auth.der).account_key for c in chs[:3]}
    assert keys == {account_key(auth.cert)}  # the same account on every login
    other = test_pki.issue_auth(label="other-card")
    r = v.verify(chs[3].id, _card_sign(other, chs[3].nonce), other.cert)
    assert r.status is Status.VALID and r.account_key not in keys


def test_signing_certificate_login_only_when_overridden(
    test_pki: TestPki, login_policy: Policy
) -> None:
    signing = test_pki.issue_signing(sample_person(0))
    v = LoginVerifier(MemoryChallengeStore(), replace(login_policy, purpose="any"), clock=Clock())
    ch = v.issue()
    r = v.verify(ch.id, _card_sign(signing, ch.nonce), signing.cert)
    assert r.status is Status.VALID, r.reasons
    assert any("overridden by the caller" in x for x in r.reasons)


def test_memory_store_single_use_across_threads(auth: Issued, login_policy: Policy) -> None:
    from concurrent.futures import ThreadPoolExecutor

    v = LoginVerifier(MemoryChallengeStore(), login_policy, clock=Clock())
    ch = v.issue()
    sig = _card_sign(auth, ch.nonce)
    with ThreadPoolExecutor(8) as ex:
        results = list(ex.map(lambda _: v.verify(ch.id, sig, auth.der), range(16)))
    assert [r.status for r in results].count(Status.VALID) == 1
