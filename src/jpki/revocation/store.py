"""SQLite revocation store: verified CRLs with their serial index, swapped in atomically.

A load verifies the CRL and builds the index first, then writes a new generation row (index
blobs + the DER) and moves the ``crl_current`` pointer in the same transaction: readers see the
old CRL until the commit, and a crash before it leaves the old one in place. CRL numbers per
(issuer, scope, full/delta) only go forward. The index is stored in chunks of sorted keys with
their entries' DER: a lookup reads one small row, so a new process answers without loading
anything.
"""

from __future__ import annotations

import functools
import hashlib
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

import numpy as np
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from jpki.errors import CrlError, RevocationError
from jpki.revocation.crl import CertLike, Crl, as_x509, cert_dp_names, effective_entry
from jpki.revocation.index import (
    RevokedEntry,
    SerialIndex,
    _magnitude,
    _tlv_at,
    as_array,
    decode_entry,
    serial_key_bytes,
)
from jpki.revocation.policy import (
    UNDOABLE_REASONS,
    RevocationResult,
    RevocationStatus,
    issued_by,
    result_from_entry,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS crl_generation (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    issuer BLOB NOT NULL,
    scope BLOB NOT NULL,
    is_delta INTEGER NOT NULL,
    number INTEGER,
    base_number INTEGER,
    this_update TEXT NOT NULL,
    next_update TEXT,
    signer_spki_sha256 BLOB NOT NULL,
    signer_der BLOB NOT NULL,
    crl_sha256 BLOB NOT NULL,
    entries INTEGER NOT NULL,
    key_width INTEGER NOT NULL,
    region_end INTEGER NOT NULL,
    loaded_at TEXT NOT NULL
);
-- The index, in chunks of ~256 entries (_CHUNK) sorted by serial key: a lookup finds its chunk
-- through the SQL index on first_key and reads one small row. (Offsets into one big blob would
-- not do: SQLite walks a blob's overflow pages from the start on every read.) Each chunk
-- carries the DER of its entries, so dates and reasons are decoded from the store alone.
CREATE TABLE IF NOT EXISTS crl_chunk (
    generation INTEGER NOT NULL REFERENCES crl_generation(id),
    first_key BLOB NOT NULL,
    keys BLOB NOT NULL,
    ends BLOB NOT NULL,
    entries BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS crl_chunk_key ON crl_chunk (generation, first_key);
CREATE TABLE IF NOT EXISTS crl_current (
    issuer BLOB NOT NULL,
    scope BLOB NOT NULL,
    is_delta INTEGER NOT NULL,
    generation INTEGER NOT NULL REFERENCES crl_generation(id),
    PRIMARY KEY (issuer, scope, is_delta)
);
CREATE TABLE IF NOT EXISTS monitor_reported (
    fingerprint TEXT PRIMARY KEY,
    serial TEXT NOT NULL,
    reason TEXT,
    revoked_at TEXT,
    reported_at TEXT NOT NULL
);
"""


def _scope_blob(names: Iterable[x509.Name]) -> bytes:
    """Canonical scope: the sorted DER of the IDP directoryNames (empty = whole issuer)."""
    ders = sorted(n.public_bytes() for n in names)
    return b"".join(len(d).to_bytes(4, "big") + d for d in ders)


def _scope_names(blob: bytes) -> set[bytes]:
    out: set[bytes] = set()
    p = 0
    while p < len(blob):
        n = int.from_bytes(blob[p : p + 4], "big")
        out.add(blob[p + 4 : p + 4 + n])
        p += 4 + n
    return out


def _spki_hash(cert: x509.Certificate) -> bytes:
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).digest()


_CHUNK = 256


def _chunks(index: SerialIndex, der: bytes) -> Iterator[tuple[bytes, bytes, bytes, bytes]]:
    """(first key, keys, entry end offsets, entries DER) per chunk of the sorted index."""
    n = len(index)
    if n == 0:
        return
    cols = index.columns
    w = 8 * len(cols)
    rows = np.empty((n, len(cols)), dtype=">u8")  # big-endian: byte order = numeric order
    for i, col in enumerate(cols):
        rows[:, i] = col
    keys = rows.view(np.uint8).reshape(n, w)
    a = as_array(der)
    offs = index.offsets.astype(np.int64)
    hdr, length = _tlv_at(a, offs)
    lens = (hdr + length).astype(np.int64)
    start = 0
    while start < n:
        end = min(n, start + _CHUNK)
        # equal keys (duplicate or negative/positive twins) stay in one chunk
        while end < n and bool((keys[end] == keys[end - 1]).all()):
            end += 1
        ln = lens[start:end]
        ends = np.cumsum(ln)
        firsts = ends - ln
        idx = np.repeat(offs[start:end] - firsts, ln) + np.arange(int(ends[-1]))
        yield (
            keys[start].tobytes(),
            keys[start:end].tobytes(),
            ends.astype("<u4").tobytes(),
            a[idx].tobytes(),
        )
        start = end


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _db_errors(
    fn: Callable[Concatenate[RevocationStore, _P], _R],
) -> Callable[Concatenate[RevocationStore, _P], _R]:
    """A damaged or foreign database file is a RevocationError (one line), not a traceback.

    Opening only reads the first page: corruption further in shows up on the first query.
    """

    @functools.wraps(fn)
    def wrapper(self: RevocationStore, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return fn(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise RevocationError(f"revocation store {self.path} is unusable: {exc}") from None

    return wrapper


@dataclass(frozen=True)
class StoredCrl:
    """One CRL as the store keeps it: generation, issuer, number, scope and index."""

    generation: int
    issuer: bytes
    scope: bytes
    is_delta: bool
    number: int | None
    base_number: int | None
    this_update: datetime
    next_update: datetime | None
    signer_spki_sha256: bytes
    entries: int
    key_width: int
    region_end: int

    def check_fresh(self, at: datetime, max_age: timedelta | None) -> str | None:
        """Why this CRL is unusable at ``at``, or None."""
        if self.this_update > at:
            return "stored CRL not yet valid"
        if self.next_update is not None and at >= self.next_update:
            return f"stored CRL is stale (nextUpdate {self.next_update.isoformat()})"
        if max_age is not None and at - self.this_update > max_age:
            return f"stored CRL older than the maximum age {max_age}"
        if self.next_update is None and max_age is None:
            return "stored CRL has no nextUpdate and no maximum age was set"
        return None


@dataclass(frozen=True)
class LoadResult:
    """What ``RevocationStore.load`` made current (``to_json`` for the CLI)."""

    generation: int
    issuer: str
    number: int | None
    entries: int
    is_delta: bool
    replaced: int | None  # previous CRL number, if any


class RevocationStore:
    """Open (creating if needed) the SQLite store at ``path``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise RevocationError(f"cannot open revocation store {self.path}: {exc}") from None
        # current() as of a PRAGMA data_version (which changes when another connection
        # commits): a monitor run checks thousands of certificates against the same CRLs.
        self._current: tuple[int, list[tuple[StoredCrl, set[bytes]]]] | None = None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> RevocationStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # --- loading ------------------------------------------------------------------------------

    @_db_errors
    def load(
        self, crl: Crl | bytes, issuers: Iterable[CertLike], *, _fail_before_commit: bool = False
    ) -> LoadResult:
        """Verify ``crl`` against ``issuers``, index it, and make it current for its scope."""
        c = crl if isinstance(crl, Crl) else Crl.load(crl)
        idp = c.idp
        if idp is not None:
            # The store's scope is the IDP's directoryNames (JPKI's partitioning) and the
            # issuer: refuse what it could not represent rather than widen the CRL's scope.
            if (idp.full_name is not None or idp.relative_name is not None) and not c.idp_names:
                raise CrlError("the store takes CRLs partitioned by directoryName only")
            if idp.only_contains_ca_certs or idp.only_contains_attribute_certs:
                raise CrlError("the store takes CRLs for end-entity certificates only")
        signer = c.verify(issuers)
        index = c.index
        issuer = c.issuer.public_bytes()
        scope = _scope_blob(c.idp_names)
        is_delta = 1 if c.is_delta else 0
        width = 8 * len(index.columns)
        der = c.der
        with self._tx() as db:
            row = db.execute(
                "SELECT g.number, g.crl_sha256 FROM crl_current c JOIN crl_generation g "
                "ON g.id = c.generation WHERE c.issuer=? AND c.scope=? AND c.is_delta=?",
                (issuer, scope, is_delta),
            ).fetchone()
            digest = hashlib.sha256(der).digest()
            previous: int | None = None
            if row is not None:
                previous = row[0]
                if c.number is None or previous is None or c.number < previous:
                    raise CrlError(
                        f"refusing to go backwards: stored CRL number {previous}, "
                        f"new CRL number {c.number}"
                    )
                if c.number == previous and row[1] != digest:
                    raise CrlError(f"a different CRL with the same number {previous} is stored")
            cur = db.execute(
                "INSERT INTO crl_generation (issuer, scope, is_delta, number, base_number, "
                "this_update, next_update, signer_spki_sha256, signer_der, crl_sha256, entries, "
                "key_width, region_end, loaded_at) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    issuer,
                    scope,
                    is_delta,
                    c.number,
                    c.base_number,
                    c.this_update.isoformat(),
                    c.next_update.isoformat() if c.next_update else None,
                    _spki_hash(signer),
                    signer.public_bytes(serialization.Encoding.DER),
                    digest,
                    len(index),
                    width,
                    index.region_end,
                    datetime.now(UTC).isoformat(),
                ),
            )
            gen = int(cur.lastrowid or 0)
            db.executemany(
                "INSERT INTO crl_chunk (generation, first_key, keys, ends, entries) "
                "VALUES (?,?,?,?,?)",
                ((gen, *chunk) for chunk in _chunks(index, der)),
            )
            if _fail_before_commit:  # test hook: simulate a crash mid-load
                raise RevocationError("simulated crash before commit")
            db.execute(
                "INSERT INTO crl_current (issuer, scope, is_delta, generation) VALUES (?,?,?,?) "
                "ON CONFLICT (issuer, scope, is_delta) "
                "DO UPDATE SET generation=excluded.generation",
                (issuer, scope, is_delta, gen),
            )
            self._current = None  # our own commits do not change our data_version
            # Old generations are no longer reachable: drop them in the same transaction.
            db.execute(
                "DELETE FROM crl_chunk WHERE generation NOT IN (SELECT generation FROM crl_current)"
            )
            db.execute(
                "DELETE FROM crl_generation WHERE id NOT IN (SELECT generation FROM crl_current)"
            )
        return LoadResult(
            gen, c.issuer.rfc4514_string(), c.number, len(index), c.is_delta, previous
        )

    # --- queries ------------------------------------------------------------------------------

    @_db_errors
    def current(self) -> list[StoredCrl]:
        rows = self._db.execute(
            "SELECT g.id, g.issuer, g.scope, g.is_delta, g.number, g.base_number, g.this_update, "
            "g.next_update, g.signer_spki_sha256, g.entries, g.key_width, g.region_end "
            "FROM crl_current c JOIN crl_generation g ON g.id = c.generation ORDER BY g.id"
        ).fetchall()
        return [
            StoredCrl(
                r[0],
                r[1],
                r[2],
                bool(r[3]),
                r[4],
                r[5],
                datetime.fromisoformat(r[6]),
                datetime.fromisoformat(r[7]) if r[7] else None,
                r[8],
                r[9],
                r[10],
                r[11],
            )
            for r in rows
        ]

    @_db_errors
    def signers(self) -> list[x509.Certificate]:
        """The CA certificates that signed the current CRLs (one per key)."""
        rows = self._db.execute(
            "SELECT DISTINCT g.signer_der FROM crl_current c JOIN crl_generation g "
            "ON g.id = c.generation"
        ).fetchall()
        return [x509.load_der_x509_certificate(r[0]) for r in rows]

    def _current_cached(self) -> list[tuple[StoredCrl, set[bytes]]]:
        """current(), each with its scope's names, re-read only after a commit."""
        version = int(self._db.execute("PRAGMA data_version").fetchone()[0])
        if self._current is None or self._current[0] != version:
            self._current = (version, [(s, _scope_names(s.scope)) for s in self.current()])
        return self._current[1]

    def _covering(self, cert: x509.Certificate) -> list[StoredCrl]:
        issuer = cert.issuer.public_bytes()
        dps = {n.public_bytes() for n in cert_dp_names(cert)}
        return [
            s
            for s, names in self._current_cached()
            if s.issuer == issuer and (not s.scope or bool(names & dps))
        ]

    @_db_errors
    def lookup(self, stored: StoredCrl, serial: int) -> RevokedEntry | None:
        """Find the chunk through the SQL index, binary-search it, decode the hit's DER."""
        raw = _magnitude(serial_key_bytes(serial))
        w = stored.key_width
        if len(raw) > w or stored.entries == 0:
            return None
        key = raw.rjust(w, b"\x00")
        row = self._db.execute(
            "SELECT keys, ends, entries FROM crl_chunk WHERE generation=? AND first_key<=? "
            "ORDER BY first_key DESC LIMIT 1",
            (stored.generation, key),
        ).fetchone()
        if row is None:
            return None
        keys, ends, entries = bytes(row[0]), bytes(row[1]), memoryview(bytes(row[2]))
        count = len(keys) // w
        lo, hi = 0, count
        while lo < hi:
            mid = (lo + hi) // 2
            if keys[mid * w : mid * w + w] < key:
                lo = mid + 1
            else:
                hi = mid
        i = lo
        while i < count and keys[i * w : i * w + w] == key:
            start = int.from_bytes(ends[4 * i - 4 : 4 * i], "little") if i else 0
            end = int.from_bytes(ends[4 * i : 4 * i + 4], "little")
            e = decode_entry(entries[start:end], 0, end - start)
            # Keys are value bytes: a negative serial shares a key with a positive one.
            if e.serial == serial:
                return e
            i += 1
        return None

    @_db_errors
    def check(
        self, cert: CertLike, issuer: CertLike, *, at: datetime, max_age: timedelta | None = None
    ) -> RevocationResult:
        c = as_x509(cert)
        if not issued_by(c, as_x509(issuer)):
            return RevocationResult(
                RevocationStatus.UNKNOWN,
                source="store",
                detail="the given issuer certificate did not sign this certificate",
            )
        want = _spki_hash(as_x509(issuer))
        covering = [s for s in self._covering(c) if s.signer_spki_sha256 == want]
        bases = [s for s in covering if not s.is_delta]
        if not bases:
            return RevocationResult(
                RevocationStatus.UNKNOWN,
                source="store",
                detail="no stored CRL from this issuer key covers the certificate",
            )
        result = self._check_bases(c, covering, bases, at, max_age)
        if result.status is RevocationStatus.REVOKED:
            return result
        # An out-of-date stored CRL cannot vouch for "not revoked", but a final revocation it
        # lists still counts (as in policy.check_revocation with CRL files).
        for s in covering:
            if s.check_fresh(at, max_age) is None:
                continue
            hit = self.lookup(s, c.serial_number)
            if hit is None or hit.reason in UNDOABLE_REASONS:
                continue
            listed = result_from_entry(hit, at, f"store:crl#{s.number} (not fresh)")
            if listed.status is RevocationStatus.REVOKED:
                return listed
        return result

    def _check_bases(
        self,
        c: x509.Certificate,
        covering: list[StoredCrl],
        bases: list[StoredCrl],
        at: datetime,
        max_age: timedelta | None,
    ) -> RevocationResult:
        problems = []
        for base in sorted(bases, key=lambda s: s.number or -1, reverse=True):
            why = base.check_fresh(at, max_age)
            if why:
                problems.append(why)
                continue
            deltas = [
                d
                for d in covering
                if d.is_delta
                and d.scope == base.scope
                and d.base_number is not None
                and base.number is not None
                and d.base_number <= base.number
                and (d.number or 0) > base.number
                and d.check_fresh(at, max_age) is None
            ]
            source = f"store:crl#{base.number}"
            if deltas:
                delta = max(deltas, key=lambda d: d.number or 0)
                source += f"+delta#{delta.number}"
                hit = self.lookup(delta, c.serial_number)
                if hit is not None:  # the delta's entry wins, removeFromCRL included
                    return result_from_entry(effective_entry(hit), at, source)
            hit = effective_entry(self.lookup(base, c.serial_number))
            return result_from_entry(hit, at, source)
        return RevocationResult(
            RevocationStatus.UNKNOWN, source="store", detail="; ".join(problems)
        )

    # --- monitoring bookkeeping -----------------------------------------------------------------

    @_db_errors
    def already_reported(self, fingerprint: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM monitor_reported WHERE fingerprint=?", (fingerprint,)
        ).fetchone()
        return row is not None

    @_db_errors
    def mark_reported(
        self, fingerprint: str, serial: int, reason: str | None, revoked_at: datetime | None
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO monitor_reported VALUES (?,?,?,?,?)",
                (
                    fingerprint,
                    f"{serial:x}",
                    reason,
                    revoked_at.isoformat() if revoked_at else None,
                    datetime.now(UTC).isoformat(),
                ),
            )
