"""Login with the card's user-authentication key: challenge issue, single use, verification.

Flow: ``LoginVerifier.issue()`` gives a fresh challenge (32 random bytes by default, with an
expiry); the client has the card sign it (the card signs DigestInfo(SHA-256(challenge)),
i.e. standard PKCS#1 v1.5 SHA-256 over the challenge bytes); ``LoginVerifier.verify()``
consumes the challenge atomically (a replay, an expired or an unknown challenge is refused),
checks the signature with the authentication certificate, optionally its chain and
revocation, and returns a result carrying ``account_key``.

Account key: SHA-256 over the certificate's SubjectPublicKeyInfo DER, lowercase hex. It is
stable for one certificate (and one key pair), but an authentication certificate is replaced
on renewal (every 5 years, a new card, or after revocation) with a new key: the service must
let an already logged-in user re-bind the new key (e.g. after a signing-certificate check).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import heapq
import os
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from os import PathLike
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from jpki.cert import JpkiCertificate
from jpki.digestinfo import HashAlgorithm
from jpki.errors import (
    ChallengeError,
    ChallengeExpired,
    ChallengeReplayed,
    ChallengeUnknown,
    UsageError,
)
from jpki.policy import Policy, Purpose, check_time
from jpki.verify.flat import CertificateCache, LruCache, certificate_cache
from jpki.verify.path import async_validate_chain, validate_chain
from jpki.verify.result import Code, Reason, Status, VerificationResult
from jpki.verify.signature import as_certificate, combine, signature_check

MIN_CHALLENGE_BYTES = 32
_ID_BYTES = 18  # a challenge id: 144 random bits, 24 URL-safe characters


def account_key(cert: JpkiCertificate | x509.Certificate) -> str:
    """SHA-256 (hex) of the SubjectPublicKeyInfo: stable per key pair, changes on renewal."""
    c = cert.certificate if isinstance(cert, JpkiCertificate) else cert
    spki = c.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


@dataclass(frozen=True)
class Challenge:
    """A login challenge: ``nonce`` is what the card signs; ``id`` is handed back with it."""

    id: str
    nonce: bytes = field(repr=False)
    expires_at: datetime


class ChallengeStore(Protocol):
    """Where issued challenges wait. ``consume`` must be atomic: at most one caller wins."""

    def put(self, challenge: Challenge, now: datetime) -> None:
        """Store a new challenge (and may drop those expired before ``now``)."""
        ...

    def consume(self, challenge_id: str, now: datetime) -> bytes:
        """The nonce, marking it used; ``ChallengeError`` if unknown, used or expired."""
        ...


class MemoryChallengeStore:
    """In-process store (one process only; tests, single-worker servers).

    Safe to share between threads: one lock around every operation. Expired challenges are
    dropped in expiry order (a heap), so ``put`` costs O(log n), not a scan of all entries.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, tuple[bytes, datetime, bool]] = {}
        self._expiry: list[tuple[datetime, str]] = []

    def put(self, challenge: Challenge, now: datetime) -> None:
        """Store a new challenge, dropping expired ones; a reused id is a ``ChallengeError``."""
        with self._lock:
            # Used and expired entries only matter until they expire.
            heap = self._expiry
            while heap and heap[0][0] < now:
                _, old = heapq.heappop(heap)
                item = self._items.get(old)
                if item is not None and item[1] < now:
                    del self._items[old]
            if challenge.id in self._items:
                raise ChallengeError("challenge id already issued")
            self._items[challenge.id] = (challenge.nonce, challenge.expires_at, False)
            heapq.heappush(heap, (challenge.expires_at, challenge.id))

    def consume(self, challenge_id: str, now: datetime) -> bytes:
        """The nonce, marking it used; ``ChallengeError`` if unknown, used or expired."""
        with self._lock:
            item = self._items.get(challenge_id)
            if item is None:
                raise ChallengeUnknown()
            nonce, expires, used = item
            if used:
                raise ChallengeReplayed()
            self._items[challenge_id] = (nonce, expires, True)
            if now >= expires:
                raise ChallengeExpired(expires)
            return nonce


class SqliteChallengeStore:
    """SQLite-backed store: replay protection across processes sharing one database file.

    ``consume`` is one ``UPDATE ... WHERE id = ? AND used = 0 AND expires_at > ?``; SQLite
    serialises writers, so exactly one process or thread can flip ``used`` for a challenge.
    Safe to share between threads: each thread (and each forked process) uses its own
    connection, opened on first use and kept.
    """

    def __init__(self, path: str | PathLike[str], *, timeout: float = 10.0) -> None:
        self.path = Path(path)
        self._timeout = timeout
        self._local = threading.local()
        with self._session() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS jpki_challenges ("
                " id TEXT PRIMARY KEY, nonce BLOB NOT NULL,"
                " expires_at REAL NOT NULL, used INTEGER NOT NULL DEFAULT 0)"
            )
            # put() drops expired rows: by index, not by scanning the table.
            db.execute(
                "CREATE INDEX IF NOT EXISTS jpki_challenges_expiry ON jpki_challenges (expires_at)"
            )

    def _connection(self) -> sqlite3.Connection:
        # One connection per thread (sqlite3 objects must stay in their thread) and per
        # process (a connection must not cross fork()); reused, so an operation costs one
        # statement, not an open and close.
        pid = os.getpid()
        held: tuple[int, sqlite3.Connection] | None = getattr(self._local, "db", None)
        if held is not None and held[0] == pid:
            return held[1]
        db = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
        self._local.db = (pid, db)
        return db

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        held = getattr(self._local, "db", None)
        self._local.db = None
        if held is not None and held[0] == os.getpid():
            held[1].close()

    @contextmanager
    def _session(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection; on any SQLite error it is dropped and reopened next time.

        A missing directory or a damaged / foreign file is a ChallengeError, not a traceback
        (``verify`` then answers INVALID: no challenge can be confirmed).
        """
        try:
            yield self._connection()
        except sqlite3.Error as exc:
            self.close()
            raise ChallengeError(f"challenge store {self.path} is unusable: {exc}") from None

    def put(self, challenge: Challenge, now: datetime) -> None:
        """Store a new challenge, deleting those expired before ``now``."""
        with self._session() as db:
            db.execute(
                "DELETE FROM jpki_challenges WHERE expires_at < ?",
                (now.timestamp(),),
            )
            db.execute(
                "INSERT INTO jpki_challenges (id, nonce, expires_at, used) VALUES (?, ?, ?, 0)",
                (challenge.id, challenge.nonce, challenge.expires_at.timestamp()),
            )

    def consume(self, challenge_id: str, now: datetime) -> bytes:
        """The nonce, marking it used (atomic); ``ChallengeError`` if unknown, used or expired."""
        with self._session() as db:
            row = db.execute(
                "UPDATE jpki_challenges SET used = 1 "
                "WHERE id = ? AND used = 0 AND expires_at > ? RETURNING nonce",
                (challenge_id, now.timestamp()),
            ).fetchone()
            if row is not None:
                return bytes(row[0])
            # Lost: find out why, for the message only (the decision is already made).
            why = db.execute(
                "SELECT used, expires_at FROM jpki_challenges WHERE id = ?", (challenge_id,)
            ).fetchone()
        if why is None:
            raise ChallengeUnknown()
        if why[0]:
            raise ChallengeReplayed()
        raise ChallengeExpired(datetime.fromtimestamp(why[1], UTC))


class LoginVerifier:
    """Issue login challenges and verify card signatures over them.

    ``store`` is a :class:`ChallengeStore` or a path (then SQLite, the default choice for
    anything with more than one process). ``policy`` decides the rest: its anchors (e.g.
    ``Policy.jlis("login")``: the J-LIS authentication CAs), revocation (a plain callable or
    an ``async def`` one) and algorithm rule; its purpose must be login (the default) or an
    explicit ``any``. Without anchors a login is at best INDETERMINATE: a certificate sent by
    the client vouches for nobody. The time is the ``clock``'s, so a policy with a fixed time
    is refused.

    One verifier may be shared by many threads and by asyncio tasks: the built-in stores
    are thread-safe, and parsed certificates and chain verdicts are cached per certificate
    (:mod:`jpki.verify.flat`). :meth:`async_issue` / :meth:`async_verify` never block the
    event loop.
    """

    def __init__(
        self,
        store: ChallengeStore | str | PathLike[str],
        policy: Policy | None = None,
        *,
        ttl: timedelta = timedelta(minutes=5),
        nonce_bytes: int = MIN_CHALLENGE_BYTES,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        cache: CertificateCache = certificate_cache,
    ) -> None:
        if nonce_bytes < MIN_CHALLENGE_BYTES:
            raise UsageError(f"a challenge needs at least {MIN_CHALLENGE_BYTES} random bytes")
        if ttl <= timedelta(0):
            raise UsageError("challenge lifetime must be positive")
        pol = policy if policy is not None else Policy()
        if pol.purpose is Purpose.SIGN:
            raise UsageError("a login needs an authentication certificate, not purpose 'sign'")
        if pol.at is not None:
            raise UsageError("a login is verified at the clock's time: give no policy time")
        self.store: ChallengeStore = (
            SqliteChallengeStore(store) if isinstance(store, str | PathLike) else store
        )
        self.ttl = ttl
        self.nonce_bytes = nonce_bytes
        self.policy = replace(pol, purpose=pol.purpose_for(Purpose.LOGIN))
        self.clock = clock
        self.cache = cache
        self._account_keys: LruCache[bytes, str] = LruCache(65536)

    def _now(self) -> datetime:
        now = self.clock()
        if now.tzinfo is None or now.utcoffset() is None:
            raise UsageError("the login clock must return timezone-aware datetimes")
        return check_time(now, "the login clock's time")

    def issue(self) -> Challenge:
        """A fresh random challenge (id, nonce, expiry after ``ttl``), stored for one use."""
        now = self._now()
        # One read from the OS generator for both (as secrets.token_urlsafe/token_bytes).
        raw = secrets.token_bytes(_ID_BYTES + self.nonce_bytes)
        ch = Challenge(
            id=base64.urlsafe_b64encode(raw[:_ID_BYTES]).decode("ascii"),
            nonce=raw[_ID_BYTES:],
            expires_at=now + self.ttl,
        )
        self.store.put(ch, now)
        return ch

    async def async_issue(self) -> Challenge:
        """:meth:`issue` in a worker thread (a SQLite store may wait for its lock)."""
        return await asyncio.to_thread(self.issue)

    def _certificate(
        self, certificate: JpkiCertificate | x509.Certificate | bytes
    ) -> JpkiCertificate:
        if isinstance(certificate, bytes | bytearray | memoryview):
            return self.cache.load(bytes(certificate))
        return self.cache.facts(as_certificate(certificate)).cert

    def _account_key(self, cert: JpkiCertificate) -> str:
        fp = cert.fingerprint_sha256
        key = self._account_keys.get(fp)
        if key is None:
            key = account_key(cert)
            self._account_keys.put(fp, key)
        return key

    def _signature(
        self,
        challenge_id: str,
        signature: bytes,
        certificate: JpkiCertificate | x509.Certificate | bytes,
    ) -> tuple[JpkiCertificate, Policy, Reason | None, VerificationResult | None]:
        """Consume the challenge and check the signature.

        (certificate, the policy at now, why the signature fails or None, a finished result
        when the challenge was refused).
        """
        now = self._now()
        cert = self._certificate(certificate)
        try:
            nonce = self.store.consume(challenge_id, now)
        except ChallengeError as exc:
            failed = VerificationResult(
                Status.INVALID,
                (Reason(Code.CHALLENGE_REFUSED, str(exc)),),
                account_key=self._account_key(cert),
                certificate_kind=cert.kind.value,
                certificate=cert,
            )
            return cert, self.policy, None, failed
        why = signature_check(cert, signature, data=nonce, hash_alg=HashAlgorithm.SHA256)
        return cert, self.policy.with_time(now), why, None

    def _finish(
        self, cert: JpkiCertificate, policy: Policy, why: Reason | None, chain: VerificationResult
    ) -> VerificationResult:
        return combine(
            cert,
            why,
            HashAlgorithm.SHA256.value,
            policy,
            chain,
            account_key=self._account_key(cert),
        )

    def verify(
        self,
        challenge_id: str,
        signature: bytes,
        certificate: JpkiCertificate | x509.Certificate | bytes,
        *,
        intermediates: Sequence[JpkiCertificate] = (),
    ) -> VerificationResult:
        """Consume the challenge, then check signature, certificate and chain by the policy.

        The challenge is used up even if the signature is wrong: one challenge, one attempt.
        """
        cert, policy, why, failed = self._signature(challenge_id, signature, certificate)
        if failed is not None:
            return failed
        chain = validate_chain(cert, policy, intermediates=intermediates)
        return self._finish(cert, policy, why, chain)

    async def async_verify(
        self,
        challenge_id: str,
        signature: bytes,
        certificate: JpkiCertificate | x509.Certificate | bytes,
        *,
        intermediates: Sequence[JpkiCertificate] = (),
    ) -> VerificationResult:
        """:meth:`verify` without blocking the event loop.

        Store access and RSA work run in a worker thread; an ``async def`` revocation check
        (e.g. OCSP over an async HTTP client) is awaited on the loop.
        """
        cert, policy, why, failed = await asyncio.to_thread(
            self._signature, challenge_id, signature, certificate
        )
        if failed is not None:
            return failed
        chain = await async_validate_chain(cert, policy, intermediates=intermediates)
        return self._finish(cert, policy, why, chain)
