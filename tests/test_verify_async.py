"""Thread-safe stores and async verifiers: concurrent logins, OCSP that never blocks the loop."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from jpki.errors import OcspError
from jpki.revocation.crl import Crl
from jpki.revocation.policy import RevocationPolicy, RevocationResult, RevocationStatus
from jpki.testing.pki import Issued, TestPki, sample_person
from jpki.verify import (
    ChallengeStore,
    LoginVerifier,
    MemoryChallengeStore,
    Policy,
    SqliteChallengeStore,
    Status,
    async_check_ocsp,
    async_revocation_checker,
    async_validate_chain,
    revocation_checker,
    validate_chain,
)
from ocsp_helpers import key_pem, openssl_responder, write_index

# openssl ocsp stamps responses with the real clock, so this module uses it too.
REAL_NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def pki() -> TestPki:
    return TestPki(now=REAL_NOW - timedelta(days=1))


@dataclass
class Cards:
    good: list[Issued]
    revoked: Issued
    crl: Crl


@pytest.fixture(scope="module")
def cards(pki: TestPki) -> Cards:
    good = [pki.issue_auth(label=f"async-{i}", person=sample_person(0)) for i in range(3)]
    revoked = pki.issue_auth(label="async-revoked", person=sample_person(0))
    crl = Crl.load(
        pki.make_crl(
            "auth",
            [
                (
                    revoked.cert.serial_number,
                    x509.ReasonFlags.key_compromise,
                    REAL_NOW - timedelta(days=1),
                )
            ],
            this_update=REAL_NOW - timedelta(hours=1),
        )
    )
    return Cards(good, revoked, crl)


def _sign(card: Issued, nonce: bytes) -> bytes:
    return card.key.sign(nonce, padding.PKCS1v15(), hashes.SHA256())


@dataclass
class Attempt:
    challenge_id: str
    signature: bytes
    cert: bytes
    expect: Status
    why: str


def _attempts(v: LoginVerifier, pki: TestPki, cards: Cards) -> list[Attempt]:
    """32 logins: good ones, wrong signatures, a revoked card, replays of one challenge."""
    out: list[Attempt] = []
    for i in range(24):
        card = cards.good[i % len(cards.good)]
        ch = v.issue()
        out.append(Attempt(ch.id, _sign(card, ch.nonce), card.der, Status.VALID, "good"))
    for i in range(3):
        card = cards.good[i]
        ch = v.issue()
        sig = _sign(cards.good[(i + 1) % 3], ch.nonce)  # another card's key
        out.append(Attempt(ch.id, sig, card.der, Status.INVALID, "wrong key"))
    for _ in range(2):
        ch = v.issue()
        sig = _sign(cards.revoked, ch.nonce)
        out.append(Attempt(ch.id, sig, cards.revoked.der, Status.INVALID, "REVOKED"))
    ch = v.issue()
    sig = _sign(cards.good[0], ch.nonce)
    for _ in range(3):  # one challenge, three tries at once: exactly one may win
        out.append(Attempt(ch.id, sig, cards.good[0].der, Status.VALID, "replay"))
    assert len(out) == 32
    return out


def _check(attempts: list[Attempt], got: list[tuple[Status, tuple[str, ...]]]) -> None:
    replay_wins = 0
    for a, (status, reasons) in zip(attempts, got, strict=True):
        text = " ".join(reasons)
        if a.why == "replay":
            if status is Status.VALID:
                replay_wins += 1
            else:
                assert "already used" in text, reasons
            continue
        assert status is a.expect, (a.why, reasons)
        if a.why == "REVOKED":
            assert "REVOKED" in text
        if a.why == "wrong key":
            assert "does not belong to this certificate's key" in text
    assert replay_wins == 1


def _stores(tmp_path: Path) -> Iterator[ChallengeStore]:
    yield MemoryChallengeStore()
    yield SqliteChallengeStore(tmp_path / "challenges.db")


def _verifier(store: ChallengeStore, pki: TestPki, cards: Cards, *, aio: bool) -> LoginVerifier:
    rev = (
        async_revocation_checker(crls=[cards.crl]) if aio else revocation_checker(crls=[cards.crl])
    )
    return LoginVerifier(store, Policy(anchors=[pki.auth_ca.jpki], revocation=rev))


def test_32_concurrent_logins_from_threads(pki: TestPki, cards: Cards, tmp_path: Path) -> None:
    for store in _stores(tmp_path):
        v = _verifier(store, pki, cards, aio=False)
        attempts = _attempts(v, pki, cards)
        barrier = threading.Barrier(32)
        with ThreadPoolExecutor(32) as ex:
            got = list(ex.map(_login, [v] * 32, [barrier] * 32, attempts))
        _check(attempts, got)


def _login(
    v: LoginVerifier, barrier: threading.Barrier, a: Attempt
) -> tuple[Status, tuple[str, ...]]:
    barrier.wait()  # all 32 start together
    r = v.verify(a.challenge_id, a.signature, a.cert)
    return r.status, r.reasons


def test_32_concurrent_logins_from_asyncio(pki: TestPki, cards: Cards, tmp_path: Path) -> None:
    async def main(
        v: LoginVerifier, attempts: list[Attempt]
    ) -> list[tuple[Status, tuple[str, ...]]]:
        results = await asyncio.gather(
            *(v.async_verify(a.challenge_id, a.signature, a.cert) for a in attempts)
        )
        return [(r.status, r.reasons) for r in results]

    for store in _stores(tmp_path):
        for aio in (True, False):  # async revocation check, and a plain one off the loop
            v = _verifier(store, pki, cards, aio=aio)
            attempts = _attempts(v, pki, cards)
            _check(attempts, asyncio.run(main(v, attempts)))


def test_sqlite_store_connection_per_thread(tmp_path: Path) -> None:
    store = SqliteChallengeStore(tmp_path / "t.db")
    v = LoginVerifier(store)
    ids = [v.issue().id for _ in range(40)]

    def consume(cid: str) -> bytes:
        return store.consume(cid, datetime.now(UTC))

    with ThreadPoolExecutor(8) as ex:
        nonces = list(ex.map(consume, ids))
    assert len(set(nonces)) == 40


def test_async_chain_equals_sync(pki: TestPki, cards: Cards) -> None:
    at = REAL_NOW
    anchors = [pki.auth_ca.jpki]
    for card in (*cards.good, cards.revoked):
        policy = Policy(anchors=anchors, at=at, purpose="login")
        sync = validate_chain(
            card.jpki, replace(policy, revocation=revocation_checker(crls=[cards.crl]))
        )
        got = asyncio.run(
            async_validate_chain(
                card.jpki, replace(policy, revocation=async_revocation_checker(crls=[cards.crl]))
            )
        )
        assert got == sync


# --- OCSP -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def responder_url(
    tmp_path_factory: pytest.TempPathFactory, pki: TestPki, cards: Cards
) -> Iterator[str]:
    d = tmp_path_factory.mktemp("ocsp-async")
    (d / "ca.pem").write_bytes(pki.auth_ca.pem)
    resp = pki.issue_ocsp_responder("auth")
    (d / "resp.pem").write_bytes(resp.pem)
    (d / "resp.key").write_bytes(key_pem(resp.key))
    (d / "index.txt.attr").write_text("unique_subject = no\n")  # one subject for all rows
    write_index(
        d / "index.txt",
        good=[c.cert.serial_number for c in cards.good],
        revoked=[cards.revoked.cert.serial_number],
    )
    with openssl_responder(d / "index.txt", d / "ca.pem", d / "resp.pem", d / "resp.key") as url:
        yield url


def test_async_ocsp_against_openssl(responder_url: str, pki: TestPki, cards: Cards) -> None:
    ca = pki.auth_ca.jpki
    good = asyncio.run(
        async_check_ocsp(cards.good[0].jpki, ca, responder_url, at=datetime.now(UTC))
    )
    assert good.status is RevocationStatus.GOOD
    check = async_revocation_checker(ocsp_url=responder_url)
    r = asyncio.run(
        async_validate_chain(
            cards.revoked.jpki,
            Policy(anchors=[ca], at=datetime.now(UTC), purpose="login", revocation=check),
        )
    )
    assert r.status is Status.INVALID and any("REVOKED" in x for x in r.reasons)


@pytest.fixture
def hung_responder() -> Iterator[tuple[str, threading.Event]]:
    """A TCP server on 127.0.0.1 that reads the request and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    got_request = threading.Event()
    stop = threading.Event()
    held: list[socket.socket] = []

    def run() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            held.append(conn)
            conn.settimeout(5)
            try:
                if conn.recv(65536):
                    got_request.set()
            except OSError:
                pass

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}/ocsp", got_request
    finally:
        stop.set()
        t.join(timeout=5)
        for c in held:
            c.close()
        srv.close()


def test_event_loop_stays_responsive_while_ocsp_hangs(
    hung_responder: tuple[str, threading.Event], pki: TestPki, cards: Cards
) -> None:
    url, got_request = hung_responder
    ca = pki.auth_ca.jpki
    check = async_revocation_checker(ocsp_url=url, policy=RevocationPolicy(ocsp_timeout=2.0))

    async def main() -> None:
        task = asyncio.create_task(
            async_validate_chain(
                cards.good[0].jpki,
                Policy(anchors=[ca], at=datetime.now(UTC), purpose="login", revocation=check),
            )
        )
        # The loop keeps serving other coroutines while the responder sits on the request:
        # a blocking implementation would only return here after the whole deadline.
        while not got_request.is_set():
            await asyncio.sleep(0.005)
        for _ in range(10):
            await asyncio.sleep(0)
        reader, writer = await asyncio.open_connection("127.0.0.1", _echo_port)
        writer.write(b"ping")
        await writer.drain()
        assert await reader.read(4) == b"ping"
        writer.close()
        assert not task.done(), "the verification finished before the loop got a turn"
        r = await task
        assert r.status is Status.INDETERMINATE
        assert any("did not answer within 2 s" in x for x in r.reasons), r.reasons

    echo = _EchoServer()
    _echo_port = echo.port
    try:
        asyncio.run(main())
    finally:
        echo.close()


class _EchoServer:
    """A thread echoing what it reads (a second, independent service for the loop to use)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            data = conn.recv(4)
            conn.sendall(data)

    def close(self) -> None:
        self.sock.close()
        self.thread.join(timeout=5)


def test_async_ocsp_deadline_and_errors(
    hung_responder: tuple[str, threading.Event], pki: TestPki, cards: Cards
) -> None:
    url, _ = hung_responder
    ca = pki.auth_ca.jpki
    with pytest.raises(OcspError, match=r"did not answer within 0\.3 s"):
        asyncio.run(
            async_check_ocsp(cards.good[0].jpki, ca, url, at=datetime.now(UTC), timeout=0.3)
        )
    soft = async_revocation_checker(
        ocsp_url=url, policy=RevocationPolicy(soft_fail=True, ocsp_timeout=0.3)
    )

    async def ask() -> object:
        return await soft(cards.good[0].jpki, ca, datetime.now(UTC))

    res = asyncio.run(ask())
    assert isinstance(res, RevocationResult)
    # the revocation policy's soft-fail: still UNKNOWN, accepted, never GOOD (as in the sync path)
    assert res.status is RevocationStatus.UNKNOWN and res.soft_failed and res.accepted
    assert "NOT established" in res.detail and "did not answer within 0.3 s" in res.detail
