"""Fleet-wide state in the service database: challenges, API keys, CRLs, trust anchors."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jpki.errors import ChallengeError, CrlError, UsageError
from jpki.service.db import Database, Tx

# --- challenges -------------------------------------------------------------------------------


def put_challenge(db: Database, cid: str, nonce: bytes, expires: datetime, origin: str) -> None:
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
    tx.execute("UPDATE svc_challenge SET result = ? WHERE id = ?", (result_json, cid))


# --- API keys ---------------------------------------------------------------------------------

KEY_PREFIX = "jpk_"


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    rate_per_minute: int
    created_at: str
    revoked_at: str | None

    def to_json(self) -> dict[str, Any]:
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
    rows = db.query(
        "SELECT id, name, rate_per_minute, created_at, revoked_at FROM svc_api_key "
        "ORDER BY created_at, id"
    )
    return [ApiKey(r[0], r[1], int(r[2]), r[3], r[4]) for r in rows]


def revoke_key(db: Database, key_id: str) -> ApiKey:
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


# --- CRLs and anchors ---------------------------------------------------------------------


@dataclass(frozen=True)
class CurrentCrl:
    sha256: str
    issuer: str
    issuer_key_id: str
    is_delta: bool
    number: int | None
    this_update: datetime
    next_update: datetime | None
    entries: int
    loaded_at: str

    def stale_at(self, at: datetime) -> bool:
        return self.next_update is None or at >= self.next_update

    def to_json(self, at: datetime) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "issuer": self.issuer,
            "issuer_key_id": self.issuer_key_id,
            "delta": self.is_delta,
            "number": self.number,
            "this_update": self.this_update.isoformat(),
            "next_update": self.next_update.isoformat() if self.next_update else None,
            "entries": self.entries,
            "loaded_at": self.loaded_at,
            "age_seconds": round((at - self.this_update).total_seconds(), 3),
            "stale": self.stale_at(at),
        }


def store_crl(db: Database, meta: Any, der: bytes) -> tuple[bool, int | None]:
    """Make a verified CRL current for its slot, atomically: (changed, previous number).

    Numbers only go forward; the same CRL again is a no-op; a different CRL with the same
    number is refused. Old CRLs stay archived: audit records name them as evidence.
    """
    loaded = datetime.now(UTC).isoformat()
    with db.transaction(exclusive=True) as tx:
        row = tx.execute(
            "SELECT c.sha256, k.number FROM svc_crl_current c "
            "JOIN svc_crl k ON k.sha256 = c.sha256 WHERE c.slot = ?",
            (meta.slot,),
        ).fetchone()
        previous = int(row[1]) if row is not None and row[1] is not None else None
        if row is not None:
            if row[0] == meta.sha256:
                return False, previous
            if meta.number is None or previous is None or meta.number < previous:
                raise CrlError(
                    f"refusing to go backwards: current CRL number {previous}, new {meta.number}"
                )
            if meta.number == previous:
                raise CrlError(f"a different CRL with the same number {previous} is current")
        tx.execute(
            "INSERT INTO svc_crl (sha256, slot, issuer, issuer_key_id, is_delta, number, "
            "this_update, next_update, entries, loaded_at, der) VALUES (?,?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT (sha256) DO NOTHING",
            (
                meta.sha256,
                meta.slot,
                meta.issuer,
                meta.issuer_key_id,
                1 if meta.is_delta else 0,
                str(meta.number) if meta.number is not None else None,
                meta.this_update.isoformat(),
                meta.next_update.isoformat() if meta.next_update else None,
                meta.entries,
                loaded,
                der,
            ),
        )
        tx.execute(
            "INSERT INTO svc_crl_current (slot, sha256) VALUES (?, ?) "
            "ON CONFLICT (slot) DO UPDATE SET sha256 = excluded.sha256",
            (meta.slot, meta.sha256),
        )
    return True, previous


def current_crls(db: Database) -> list[CurrentCrl]:
    rows = db.query(
        "SELECT k.sha256, k.issuer, k.issuer_key_id, k.is_delta, k.number, k.this_update, "
        "k.next_update, k.entries, k.loaded_at FROM svc_crl_current c "
        "JOIN svc_crl k ON k.sha256 = c.sha256 ORDER BY k.issuer, k.sha256"
    )
    return [
        CurrentCrl(
            r[0],
            r[1],
            r[2],
            bool(r[3]),
            int(r[4]) if r[4] is not None else None,
            datetime.fromisoformat(r[5]),
            datetime.fromisoformat(r[6]) if r[6] else None,
            int(r[7]),
            r[8],
        )
        for r in rows
    ]


def crl_ders(db: Database, shas: list[str]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for sha in shas:
        rows = db.query("SELECT der FROM svc_crl WHERE sha256 = ?", (sha,))
        if rows:
            out[sha] = bytes(rows[0][0])
    return out


def save_anchors(db: Database, anchors: list[tuple[str, bytes]]) -> None:
    with db.transaction() as tx:
        for fp, der in anchors:
            tx.execute(
                "INSERT INTO svc_anchor (fingerprint, der) VALUES (?, ?) "
                "ON CONFLICT (fingerprint) DO NOTHING",
                (fp, der),
            )


def anchors_by_fingerprint(db: Database, fps: list[str]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for fp in fps:
        rows = db.query("SELECT der FROM svc_anchor WHERE fingerprint = ?", (fp,))
        if rows:
            der = bytes(rows[0][0])
            if hashlib.sha256(der).hexdigest() == fp:
                out[fp] = der
    return out
