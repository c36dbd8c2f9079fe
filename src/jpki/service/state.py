"""Fleet-wide state in the service database: challenges, API keys, rate limits, the CRL
evidence archive, trust anchors. (Current CRLs live in the revocation store.)"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jpki.errors import ChallengeError, UsageError
from jpki.service.db import Database, Tx

# --- challenges -------------------------------------------------------------------------------


def put_challenge(db: Database, cid: str, nonce: bytes, expires: datetime, origin: str) -> None:
    """Store a new login challenge (and drop long-expired ones)."""
    now = datetime.now(UTC).timestamp()
    with db.transaction() as tx:
        # Spent and expired challenges only matter until an hour past expiry (page polling).
        tx.execute("DELETE FROM svc_challenge WHERE expires_at < ?", (now - 3600,))
        tx.execute(
            "INSERT INTO svc_challenge (id, nonce, expires_at, used, origin) "
            "VALUES (?, ?, ?, 0, ?)",
            (cid, nonce, expires.timestamp(), origin),
        )


def consume_challenge(db: Database, cid: str, origin: str | None = None) -> bytes:
    """The nonce, marking the challenge used: one UPDATE, so one winner across the fleet."""
    now = datetime.now(UTC).timestamp()
    with db.transaction() as tx:
        # The origin binds a challenge to the API key (or the page) it was issued for.
        row = tx.execute(
            "UPDATE svc_challenge SET used = 1 WHERE id = ? AND used = 0 AND expires_at > ? "
            "AND (CAST(? AS TEXT) IS NULL OR origin = ?) RETURNING nonce",
            (cid, now, origin, origin),
        ).fetchone()
        if row is not None:
            return bytes(row[0])
        why = tx.execute(
            "SELECT used, expires_at, origin FROM svc_challenge WHERE id = ?", (cid,)
        ).fetchone()
    if why is None or (origin is not None and why[2] != origin):
        raise ChallengeError("unknown challenge (never issued here, or long expired)")
    if why[0]:
        raise ChallengeError("challenge already used (replay refused)")
    raise ChallengeError("challenge expired")


def page_challenge(db: Database, cid: str) -> tuple[bytes, datetime, bool, str | None] | None:
    """(nonce, expiry, used, result JSON) of a login-page challenge, or None."""
    rows = db.query(
        "SELECT nonce, expires_at, used, result FROM svc_challenge "
        "WHERE id = ? AND origin = 'page'",
        (cid,),
    )
    if not rows:
        return None
    n, exp, used, result = rows[0]
    return bytes(n), datetime.fromtimestamp(float(exp), UTC), bool(used), result


def set_result(tx: Tx, cid: str, result_json: str) -> None:
    """Record the verdict of challenge ``cid`` (read by the polling login page)."""
    tx.execute("UPDATE svc_challenge SET result = ? WHERE id = ?", (result_json, cid))


# --- API keys ---------------------------------------------------------------------------------

KEY_PREFIX = "jpk_"


@dataclass(frozen=True)
class ApiKey:
    """An API key's public record (the secret itself is stored only hashed)."""

    id: str
    name: str
    rate_per_minute: int
    created_at: str
    revoked_at: str | None

    def to_json(self) -> dict[str, Any]:
        """The JSON form: id, name, rate limit and times (never the secret)."""
        return {
            "id": self.id,
            "name": self.name,
            "rate_per_minute": self.rate_per_minute,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


def _key_hash(key: str) -> str:
    # The key is 32 random bytes: a plain SHA-256 cannot be brute-forced, so no slow KDF.
    return hashlib.sha256(key.encode()).hexdigest()


def add_key(db: Database, name: str, rate_per_minute: int = 600) -> tuple[ApiKey, str]:
    """A new key: (its record, the key itself — shown once, stored only as a hash)."""
    if not name or len(name) > 100 or not name.isprintable():
        raise UsageError("a key name is 1-100 printable characters")
    if not 1 <= rate_per_minute <= 10**7:
        raise UsageError("rate limit must be 1-10000000 requests per minute")
    kid = secrets.token_hex(6)
    key = f"{KEY_PREFIX}{kid}_{secrets.token_urlsafe(32)}"
    created = datetime.now(UTC).isoformat(timespec="seconds")
    with db.transaction() as tx:
        tx.execute(
            "INSERT INTO svc_api_key (id, name, key_sha256, rate_per_minute, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (kid, name, _key_hash(key), rate_per_minute, created),
        )
    return ApiKey(kid, name, rate_per_minute, created, None), key


def list_keys(db: Database) -> list[ApiKey]:
    """Every API key, oldest first."""
    rows = db.query(
        "SELECT id, name, rate_per_minute, created_at, revoked_at FROM svc_api_key "
        "ORDER BY created_at, id"
    )
    return [ApiKey(r[0], r[1], int(r[2]), r[3], r[4]) for r in rows]


def revoke_key(db: Database, key_id: str) -> ApiKey:
    """Mark API key ``key_id`` revoked now; ``UsageError`` if there is none."""
    when = datetime.now(UTC).isoformat(timespec="seconds")
    with db.transaction() as tx:
        row = tx.execute(
            "UPDATE svc_api_key SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ? "
            "RETURNING id, name, rate_per_minute, created_at, revoked_at",
            (when, key_id),
        ).fetchone()
    if row is None:
        raise UsageError(f"no API key with id {key_id!r}")
    return ApiKey(row[0], row[1], int(row[2]), row[3], row[4])


def find_key(db: Database, presented: str) -> ApiKey | None:
    """The live key matching ``presented``, or None (unknown, malformed or revoked)."""
    if not presented.startswith(KEY_PREFIX) or len(presented) > 200:
        return None
    kid = presented[len(KEY_PREFIX) :].split("_", 1)[0]
    rows = db.query(
        "SELECT id, name, rate_per_minute, created_at, revoked_at, key_sha256 "
        "FROM svc_api_key WHERE id = ?",
        (kid,),
    )
    if not rows or rows[0][4] is not None:
        return None
    r = rows[0]
    if not hmac.compare_digest(str(r[5]), _key_hash(presented)):
        return None
    return ApiKey(r[0], r[1], int(r[2]), r[3], None)


# --- rate limits -------------------------------------------------------------------------------


def take_token(db: Database, bucket: str, per_minute: int, now: float) -> float:
    """One request against ``bucket``'s shared limit: 0 if allowed, else the seconds until
    one would be.

    GCRA (a token bucket kept as one "theoretical arrival time" per bucket): up to
    ``per_minute`` requests at once, refilled at ``per_minute`` a minute. The row is updated
    by one atomic upsert, so every process on the database (SQLite, or a PostgreSQL fleet)
    counts against the same limit. ``now`` is the caller's wall clock.
    """
    step = 60.0 / per_minute
    burst = 60.0 - step
    # In both dialects every SET expression reads the row as it was before the update.
    with db.transaction(durable=False) as tx:
        row = tx.execute(
            "INSERT INTO svc_rate (bucket, tat, seen, ok) VALUES (?, ?, ?, 1) "
            "ON CONFLICT (bucket) DO UPDATE SET "
            "ok = CASE WHEN (CASE WHEN svc_rate.tat > excluded.seen THEN svc_rate.tat "
            "ELSE excluded.seen END) - excluded.seen <= ? THEN 1 ELSE 0 END, "
            "tat = CASE WHEN (CASE WHEN svc_rate.tat > excluded.seen THEN svc_rate.tat "
            "ELSE excluded.seen END) - excluded.seen <= ? THEN (CASE WHEN svc_rate.tat > "
            "excluded.seen THEN svc_rate.tat ELSE excluded.seen END) + ? ELSE svc_rate.tat END, "
            "seen = excluded.seen "
            "RETURNING tat, ok",
            (bucket, now + step, now, burst, burst, step),
        ).fetchone()
    if row is None or int(row[1]):
        return 0.0
    return max(float(row[0]) - now - burst, 0.001)


# --- CRL evidence archive and anchors ------------------------------------------------------


def archive_crl(db: Database, issuer_key: str, number: int | None, is_delta: bool, crl_id: str,
                issuer: str, der: bytes) -> bool:  # fmt: skip
    """Keep a verified CRL's DER for ``jpki audit verify``; True if it was not kept yet."""
    with db.transaction() as tx:
        row = tx.execute(
            "INSERT INTO svc_crl_archive (crl_id, issuer_key, number, is_delta, issuer, "
            "archived_at, der) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (crl_id) DO NOTHING "
            "RETURNING crl_id",
            (
                crl_id,
                issuer_key,
                str(number) if number is not None else None,
                1 if is_delta else 0,
                issuer,
                datetime.now(UTC).isoformat(),
                der,
            ),
        ).fetchone()
    return row is not None


def unarchive_crl(db: Database, crl_id: str) -> None:
    """Drop an archived CRL the revocation store refused (it never answered anything)."""
    with db.transaction() as tx:
        tx.execute("DELETE FROM svc_crl_archive WHERE crl_id = ?", (crl_id,))


def archived_crls(db: Database, issuer_key: str, number: int | None) -> list[bytes]:
    """The archived DER of the CRLs of ``issuer_key`` with CRL number ``number``."""
    rows = db.query(
        "SELECT der FROM svc_crl_archive WHERE issuer_key = ? AND number IS NOT DISTINCT FROM ? "
        "ORDER BY crl_id",
        (issuer_key, str(number) if number is not None else None),
    )
    return [bytes(r[0]) for r in rows]


def issuer_names(db: Database) -> dict[str, str]:
    """Issuer key (hex) -> issuer name, from the archive (for /v1/revocation and metrics)."""
    return {
        str(k): str(n)
        for k, n in db.query("SELECT DISTINCT issuer_key, issuer FROM svc_crl_archive")
    }


def save_anchors(db: Database, anchors: list[tuple[str, bytes]]) -> None:
    """Store trust anchors (fingerprint, DER) so pool workers can load them."""
    with db.transaction() as tx:
        for fp, der in anchors:
            tx.execute(
                "INSERT INTO svc_anchor (fingerprint, der) VALUES (?, ?) "
                "ON CONFLICT (fingerprint) DO NOTHING",
                (fp, der),
            )


def anchors_by_fingerprint(db: Database, fps: list[str]) -> dict[str, bytes]:
    """The stored DER of each trust anchor named by its fingerprint."""
    out: dict[str, bytes] = {}
    for fp in fps:
        rows = db.query("SELECT der FROM svc_anchor WHERE fingerprint = ?", (fp,))
        if rows:
            der = bytes(rows[0][0])
            if hashlib.sha256(der).hexdigest() == fp:
                out[fp] = der
    return out
