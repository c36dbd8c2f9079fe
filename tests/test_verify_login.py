"""Login challenges: issue, single use across processes, verification with the auth key."""

from __future__ import annotations

import hashlib
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from jpki.cert import JpkiCertificate
from jpki.errors import ChallengeError, UsageError
from jpki.testing.pki import Issued, TestPki, sample_person
from jpki.verify import (
    Challenge,
    ChallengeStore,
    LoginVerifier,
    MemoryChallengeStore,
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
def auth(test_pki: TestPki) -> Issued:
    return test_pki.issue_auth()


def _card_sign(issued: Issued, nonce: bytes) -> bytes:
    # What the card does: PKCS#1 v1.5 over DigestInfo(SHA-256(challenge)).
    return issued.key.sign(nonce, padding.PKCS1v15(), hashes.SHA256())


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ChallengeStore:
    if request.param == "memory":
        return MemoryChallengeStore()
    return SqliteChallengeStore(tmp_path / "challenges.db")


def test_login_ok_then_replay_refused(store: ChallengeStore, auth: Issued) -> None:
    clock = Clock()
    v = LoginVerifier(store, clock=clock)
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


def test_expired_and_unknown(store: ChallengeStore, auth: Issued) -> None:
    clock = Clock()
    v = LoginVerifier(store, ttl=timedelta(seconds=30), clock=clock)
    ch = v.issue()
    clock.now += timedelta(seconds=31)
    r = v.verify(ch.id, _card_sign(auth, ch.nonce), auth.der)
    assert r.status is Status.INVALID and "expired" in r.reasons[0]
    r2 = v.verify("no-such-id", _card_sign(auth, ch.nonce), auth.der)
    assert r2.status is Status.INVALID and "unknown challenge" in r2.reasons[0]


def test_wrong_signature_uses_up_the_challenge(store: ChallengeStore, auth: Issued) -> None:
    v = LoginVerifier(store, clock=Clock())
    ch = v.issue()
    other = v.issue()
    bad = v.verify(ch.id, _card_sign(auth, other.nonce), auth.der)  # signed the wrong nonce
    assert bad.status is Status.INVALID
    assert "different data" in bad.reasons[0]
    retry = v.verify(ch.id, _card_sign(auth, ch.nonce), auth.der)
    assert retry.status is Status.INVALID and "already used" in retry.reasons[0]


def test_signing_certificate_is_refused_for_login(test_pki: TestPki, tmp_path: Path) -> None:
    signing = test_pki.issue_signing(sample_person(0))
    v = LoginVerifier(tmp_path / "c.db", clock=Clock())
    ch = v.issue()
    r = v.verify(ch.id, _card_sign(signing, ch.nonce), signing.cert)
    assert r.status is Status.INVALID
    assert "logins need a user-authentication certificate" in " ".join(r.reasons)


def test_chain_checked_with_anchors(
    test_pki: TestPki, test_pki_2015: TestPki, auth: Issued
) -> None:
    anchors = [JpkiCertificate.load(test_pki.auth_ca.der)]
    v = LoginVerifier(MemoryChallengeStore(), trust_anchors=anchors, clock=Clock())
    ch = v.issue()
    r = v.verify(ch.id, _card_sign(auth, ch.nonce), auth.der)
    assert r.status is Status.VALID, r.reasons
    assert any("chains to trusted CA" in x for x in r.reasons)
    old = [JpkiCertificate.load(test_pki_2015.auth_ca.der)]
    v2 = LoginVerifier(MemoryChallengeStore(), trust_anchors=old, clock=Clock())
    ch2 = v2.issue()
    r2 = v2.verify(ch2.id, _card_sign(auth, ch2.nonce), auth.der)
    assert r2.status is Status.INVALID
    assert any("does not chain" in x for x in r2.reasons)


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
    test_pki: TestPki, auth: Issued, tmp_path: Path
) -> None:
    clock = Clock()
    v = LoginVerifier(tmp_path / "k.db", clock=clock)
    chs = [v.issue() for _ in range(50)]
    assert len({c.nonce for c in chs}) == 50 and len({c.id for c in chs}) == 50
    assert all(len(c.nonce) >= 32 for c in chs)
    keys = {v.verify(c.id, _card_sign(auth, c.nonce), auth.der).account_key for c in chs[:3]}
    assert keys == {account_key(auth.cert)}  # the same account on every login
    other = test_pki.issue_auth(label="other-card")
    r = v.verify(chs[3].id, _card_sign(other, chs[3].nonce), other.cert)
    assert r.status is Status.VALID and r.account_key not in keys


def test_signing_certificate_login_only_when_overridden(test_pki: TestPki) -> None:
    signing = test_pki.issue_signing(sample_person(0))
    v = LoginVerifier(MemoryChallengeStore(), clock=Clock())
    ch = v.issue()
    r = v.verify(ch.id, _card_sign(signing, ch.nonce), signing.cert, purpose="any")
    assert r.status is Status.VALID, r.reasons
    assert any("overridden by the caller" in x for x in r.reasons)


def test_memory_store_single_use_across_threads(auth: Issued) -> None:
    from concurrent.futures import ThreadPoolExecutor

    v = LoginVerifier(MemoryChallengeStore(), clock=Clock())
    ch = v.issue()
    sig = _card_sign(auth, ch.nonce)
    with ThreadPoolExecutor(8) as ex:
        results = list(ex.map(lambda _: v.verify(ch.id, sig, auth.der), range(16)))
    assert [r.status for r in results].count(Status.VALID) == 1
