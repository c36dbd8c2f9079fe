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

import hashlib
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
from jpki.errors import (
    ChallengeError,
    ChallengeExpired,
    ChallengeReplayed,
    ChallengeUnknown,
    UsageError,
)
from jpki.policy import Policy, Purpose
from jpki.verify.digest import HashAlgorithm
from jpki.verify.result import Code, Reason, Status, VerificationResult
from jpki.verify.signature import as_certificate, verify_signature

MIN_CHALLENGE_BYTES = 32


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
    """In-process store (one process only; tests, single-worker servers)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, tuple[bytes, datetime, bool]] = {}

    def put(self, challenge: Challenge, now: datetime) -> None:
        with self._lock:
            # Used and expired entries only matter until they expire.
            for k in [k for k, (_n, exp, _u) in self._items.items() if exp < now]:
                del self._items[k]
            self._items[challenge.id] = (challenge.nonce, challenge.expires_at, False)

    def consume(self, challenge_id: str, now: datetime) -> bytes:
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
    serialises writers, so exactly one process can flip ``used`` for a challenge.
    """

    def __init__(self, path: str | PathLike[str], *, timeout: float = 10.0) -> None:
        self.path = Path(path)
        self._timeout = timeout
        with self._session() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS jpki_challenges ("
                " id TEXT PRIMARY KEY, nonce BLOB NOT NULL,"
                " expires_at REAL NOT NULL, used INTEGER NOT NULL DEFAULT 0)"
            )

    @contextmanager
    def _session(self) -> Iterator[sqlite3.Connection]:
        """A connection per operation (safe across threads and forks), always closed.

        A missing directory or a damaged / foreign file is a ChallengeError, not a traceback
        (``verify`` then answers INVALID: no challenge can be confirmed).
        """
        try:
            db = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
            try:
                yield db
            finally:
                db.close()
        except sqlite3.Error as exc:
            raise ChallengeError(f"challenge store {self.path} is unusable: {exc}") from None

    def put(self, challenge: Challenge, now: datetime) -> None:
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
    ``Policy.jlis()``: the J-LIS authentication CAs), revocation and algorithm rule; its
    purpose must be login (the default) or an explicit ``any``. Without anchors a login is
    at best INDETERMINATE: a certificate sent by the client vouches for nobody. The time is
    the ``clock``'s, so a policy with a fixed time is refused.
    """

    def __init__(
        self,
        store: ChallengeStore | str | PathLike[str],
        policy: Policy | None = None,
        *,
        ttl: timedelta = timedelta(minutes=5),
        nonce_bytes: int = MIN_CHALLENGE_BYTES,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
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
        self.policy = pol
        self.clock = clock

    def _now(self) -> datetime:
        now = self.clock()
        if now.tzinfo is None or now.utcoffset() is None:
            raise UsageError("the login clock must return timezone-aware datetimes")
        return now

    def issue(self) -> Challenge:
        now = self._now()
        ch = Challenge(
            id=secrets.token_urlsafe(18),
            nonce=secrets.token_bytes(self.nonce_bytes),
            expires_at=now + self.ttl,
        )
        self.store.put(ch, now)
        return ch

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
        now = self._now()
        cert = as_certificate(certificate)
        key = account_key(cert)
        try:
            nonce = self.store.consume(challenge_id, now)
        except ChallengeError as exc:
            return VerificationResult(
                Status.INVALID,
                (Reason(Code.CHALLENGE_REFUSED, str(exc)),),
                account_key=key,
                certificate_kind=cert.kind.value,
                certificate=cert,
            )
        result = verify_signature(
            cert,
            signature,
            data=nonce,
            hash_alg=HashAlgorithm.SHA256,
            policy=replace(self.policy, at=now),
            intermediates=intermediates,
            default_purpose=Purpose.LOGIN,
        )
        return replace(result, account_key=key)
