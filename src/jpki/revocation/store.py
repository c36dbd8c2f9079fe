"""Revocation store: verified CRLs with their serial index, in SQLite or PostgreSQL.

The store URL picks the database: a path or ``sqlite:///PATH`` (one file, for one machine), or
``postgresql://…`` (shared by verifier processes on several machines). Both hold the same
tables and follow the same rules:

* Issuers are keyed by **key** (SHA-256 of the public key that verified the CRL), not by name:
  CA generations share one DN, each has its own CRL number sequence and a certificate is
  checked against its own generation's CRLs only.
* A load verifies the CRL and builds its index first, then writes a new generation (index in
  chunks + header) and moves the ``crl_current`` pointer in ONE transaction: a reader sees
  the old CRL or the new one, never a mix (each check reads from one snapshot). CRL numbers
  per (issuer key, scope, full/delta) only go up.
* What a CA-signed CRL once declared final stays: when a load replaces a CRL, every final
  revocation of the old one that the new one drops (or turns into a hold/removeFromCRL) is
  kept in ``crl_final_history`` and still answers REVOKED.
* A store object is safe to share between threads: each thread gets its own connection.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import shlex
import sqlite3
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import numpy as np
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from jpki._sqlite import connect_sqlite_wal
from jpki.errors import CrlError, RevocationError, UsageError
from jpki.revocation.crl import CertLike, Crl, as_x509, cert_dp_names, effective_entry, is_final
from jpki.revocation.index import (
    RevokedEntry,
    SerialIndex,
    _magnitude,
    _tlv_at,
    as_array,
    decode_entry,
    prefer_final,
    serial_key_bytes,
)
from jpki.revocation.results import (
    RevocationResult,
    RevocationStatus,
    issued_by,
    result_from_entry,
)

SCHEMA_VERSION = "2"

# {blob} / {id} differ between the dialects; everything else is the same SQL.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS store_meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS store_version (id INTEGER PRIMARY KEY, v BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS crl_generation (
    id {id},
    issuer_key {blob} NOT NULL,
    issuer {blob} NOT NULL,
    scope {blob} NOT NULL,
    is_delta INTEGER NOT NULL,
    number TEXT,
    base_number TEXT,
    this_update TEXT NOT NULL,
    next_update TEXT,
    signer_der {blob} NOT NULL,
    crl_id {blob} NOT NULL,
    entries BIGINT NOT NULL,
    key_width INTEGER NOT NULL,
    loaded_at TEXT NOT NULL
);
-- The index, in chunks of ~256 entries (_CHUNK) sorted by serial key: a lookup finds its chunk
-- through the SQL index on first_key and reads one small row. Each chunk carries the DER of
-- its entries, so dates and reasons are decoded from the store alone.
CREATE TABLE IF NOT EXISTS crl_chunk (
    generation BIGINT NOT NULL,
    first_key {blob} NOT NULL,
    keys {blob} NOT NULL,
    ends {blob} NOT NULL,
    entries {blob} NOT NULL
);
CREATE INDEX IF NOT EXISTS crl_chunk_key ON crl_chunk (generation, first_key);
CREATE TABLE IF NOT EXISTS crl_current (
    issuer_key {blob} NOT NULL,
    scope {blob} NOT NULL,
    is_delta INTEGER NOT NULL,
    generation BIGINT NOT NULL,
    PRIMARY KEY (issuer_key, scope, is_delta)
);
CREATE TABLE IF NOT EXISTS crl_final_history (
    issuer_key {blob} NOT NULL,
    serial_key {blob} NOT NULL,
    entry {blob} NOT NULL,
    crl_number TEXT,
    PRIMARY KEY (issuer_key, serial_key, entry)
);
CREATE TABLE IF NOT EXISTS monitor_reported (
    fingerprint TEXT PRIMARY KEY,
    serial TEXT NOT NULL,
    reason TEXT,
    revoked_at TEXT,
    final INTEGER NOT NULL,
    reported_at TEXT NOT NULL
);
"""

_DIALECT_TYPES = {
    "sqlite": {"blob": "BLOB", "id": "INTEGER PRIMARY KEY AUTOINCREMENT"},
    "postgresql": {"blob": "BYTEA", "id": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"},
}


def _scope_blob(names: Iterable[x509.Name]) -> bytes:
    """Canonical scope: the sorted DER of the IDP directoryNames (empty = whole issuer)."""
    ders = sorted(n.public_bytes() for n in names)
    return b"".join(len(d).to_bytes(4, "big") + d for d in ders)


def _scope_names(blob: bytes) -> frozenset[bytes]:
    out: set[bytes] = set()
    p = 0
    while p < len(blob):
        n = int.from_bytes(blob[p : p + 4], "big")
        out.add(blob[p + 4 : p + 4 + n])
        p += 4 + n
    return frozenset(out)


def issuer_key_id(cert: CertLike) -> bytes:
    """The store's issuer key: SHA-256 of the CA certificate's SubjectPublicKeyInfo."""
    spki = (
        as_x509(cert)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return hashlib.sha256(spki).digest()


def crl_identity(crl: Crl) -> bytes:
    """The store's name for a CRL: SHA-256 over its TBS digest and signature value."""
    return hashlib.sha256(crl.tbs_digest() + crl.layout.signature).digest()


_CHUNK = 256


def _chunks(
    index: SerialIndex, a: np.ndarray[Any, Any]
) -> Iterator[tuple[bytes, bytes, bytes, bytes]]:
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


def _chunk_entries(
    keys: bytes, ends: bytes, entries: bytes, w: int, key: bytes
) -> list[RevokedEntry]:
    """Binary-search one chunk for ``key``; decode every entry carrying it."""
    count = len(keys) // w
    lo, hi = 0, count
    while lo < hi:
        mid = (lo + hi) // 2
        if keys[mid * w : mid * w + w] < key:
            lo = mid + 1
        else:
            hi = mid
    out = []
    view = memoryview(entries)
    i = lo
    while i < count and keys[i * w : i * w + w] == key:
        start = int.from_bytes(ends[4 * i - 4 : 4 * i], "little") if i else 0
        end = int.from_bytes(ends[4 * i : 4 * i + 4], "little")
        out.append(decode_entry(view[start:end], 0, end - start))
        i += 1
    return out


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _db_errors(
    fn: Callable[Concatenate[RevocationStore, _P], _R],
) -> Callable[Concatenate[RevocationStore, _P], _R]:
    """A damaged, foreign or unreachable database is a RevocationError (one line)."""

    @functools.wraps(fn)
    def wrapper(self: RevocationStore, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return fn(self, *args, **kwargs)
        except self._errors as exc:
            raise RevocationError(f"revocation store {self.display} is unusable: {exc}") from None

    return wrapper


def _num(v: str | None) -> int | None:
    return None if v is None else int(v)


@dataclass(frozen=True)
class StoredCrl:
    """One CRL as the store keeps it: generation, issuer, number, scope and index."""

    generation: int
    issuer_key: bytes
    issuer: bytes
    scope: bytes
    is_delta: bool
    number: int | None
    base_number: int | None
    this_update: datetime
    next_update: datetime | None
    entries: int
    key_width: int
    #: SHA-256 over the CRL's TBS digest and signature: names this CRL in evidence.
    crl_id: bytes = b""

    @property
    def signer_spki_sha256(self) -> bytes:
        """SHA-256 of the signing CA's SubjectPublicKeyInfo (the store's issuer key)."""
        return self.issuer_key

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
class CrlEvidence:
    """A CRL an answer of the store rests on: issuer key and number (``is_delta`` and
    ``crl_id`` are None for a replaced CRL known only through the final-revocation history)."""

    issuer_key: bytes
    number: int | None
    is_delta: bool | None
    crl_id: bytes | None

    def to_json(self) -> dict[str, Any]:
        """JSON form (hex keys) as audit records keep it."""
        return {
            "issuer_key": self.issuer_key.hex(),
            "number": self.number,
            "delta": self.is_delta,
            "crl_id": self.crl_id.hex() if self.crl_id is not None else None,
            "history": self.crl_id is None,
        }


@dataclass(frozen=True)
class LoadResult:
    """What ``RevocationStore.load`` made current (``to_json`` for the CLI)."""

    generation: int
    issuer: str
    number: int | None
    entries: int
    is_delta: bool
    replaced: int | None  # previous CRL number, if any
    kept_final: int = 0  # final revocations the new CRL dropped, kept in the history


# --- connections ---------------------------------------------------------------------------------


class _Conn:
    """One database connection (one thread) with the few operations the store needs."""

    dialect: str
    raw: Any

    def q(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        rows = self.q(sql, params)
        return rows[0] if rows else None

    def x(self, sql: str, params: Sequence[Any] = ()) -> None:
        raise NotImplementedError

    def many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        raise NotImplementedError

    def insert_chunks(self, rows: Iterable[tuple[int, bytes, bytes, bytes, bytes]]) -> None:
        self.many(
            "INSERT INTO crl_chunk (generation, first_key, keys, ends, entries) VALUES (?,?,?,?,?)",
            rows,
        )

    def begin_read(self) -> None:
        raise NotImplementedError

    def begin_write(self) -> None:
        raise NotImplementedError

    def script(self, sql: str) -> None:
        raise NotImplementedError

    def tables(self) -> set[str]:
        raise NotImplementedError

    def close(self) -> None:
        self.raw.close()

    @contextmanager
    def read(self) -> Iterator[_Conn]:
        """One snapshot for all the queries inside (nested: the outer one)."""
        if getattr(self, "_depth", 0):
            yield self
            return
        self.begin_read()
        self._depth = 1
        try:
            yield self
        finally:
            self._depth = 0
            self.x("COMMIT")

    @contextmanager
    def write(self, *, bump: bool = True) -> Iterator[_Conn]:
        """An exclusive write transaction (loads are serialised store-wide). ``bump``: the
        CRL data changes, so every reader's cached list of current CRLs must be re-read."""
        self.begin_write()
        self._depth = 1
        try:
            if bump:
                self.x("UPDATE store_version SET v = v + 1 WHERE id = 1")
            yield self
        except BaseException:
            self._depth = 0
            self.x("ROLLBACK")
            raise
        self._depth = 0
        self.x("COMMIT")


class _SqliteConn(_Conn):
    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        # check_same_thread off only so close() may run on another thread; each connection
        # is used by the one thread that opened it.
        self.raw = connect_sqlite_wal(path, check_same_thread=False)

    def q(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = self.raw.execute(sql, params).fetchall()
        return rows

    def x(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.raw.execute(sql, params)

    def many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.raw.executemany(sql, rows)

    def begin_read(self) -> None:
        self.raw.execute("BEGIN")

    def begin_write(self) -> None:
        self.raw.execute("BEGIN IMMEDIATE")

    def script(self, sql: str) -> None:
        self.raw.executescript(sql)

    def tables(self) -> set[str]:
        return {r[0] for r in self.q("SELECT name FROM sqlite_master WHERE type='table'")}


class _PgConn(_Conn):
    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        import psycopg

        self.raw = psycopg.connect(url, autocommit=True, connect_timeout=30)

    def q(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self.raw.execute(sql.replace("?", "%s"), params)
        return cur.fetchall() if cur.description is not None else []

    def x(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.raw.execute(sql.replace("?", "%s"), params)

    def many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.raw.cursor() as cur:
            cur.executemany(sql.replace("?", "%s"), list(rows))

    def insert_chunks(self, rows: Iterable[tuple[int, bytes, bytes, bytes, bytes]]) -> None:
        with (
            self.raw.cursor() as cur,
            cur.copy(
                "COPY crl_chunk (generation, first_key, keys, ends, entries) FROM STDIN"
            ) as copy,
        ):
            for row in rows:
                copy.write_row(row)

    def begin_read(self) -> None:
        self.raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def begin_write(self) -> None:
        self.raw.execute("BEGIN")
        # One row lock serialises loads across processes and machines.
        self.raw.execute("SELECT v FROM store_version WHERE id = 1 FOR UPDATE")

    def script(self, sql: str) -> None:
        with self.raw.transaction():
            # concurrent CREATE TABLE IF NOT EXISTS can still collide: one creator at a time
            self.raw.execute("SELECT pg_advisory_xact_lock(7305813)")
            for stmt in sql.split(";"):
                if stmt.strip():
                    self.raw.execute(stmt)

    def tables(self) -> set[str]:
        rows = self.q(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
        return {str(r[0]) for r in rows}


def _parse_url(url: str | Path) -> tuple[str, str]:
    """(dialect, target): a path / ``sqlite:///PATH``, or a ``postgresql://`` URL."""
    if isinstance(url, Path):
        return "sqlite", str(url)
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql", url
    if url.startswith("sqlite:///"):
        return "sqlite", url[len("sqlite:///") :]
    if "://" in url:
        raise UsageError(
            f"unsupported revocation store URL scheme {url.split('://')[0]!r} "
            "(use a path, sqlite:///PATH or postgresql://...)"
        )
    return "sqlite", url


def _redact(url: str) -> str:
    """The URL without a password (for messages)."""
    u = urllib.parse.urlsplit(url)
    if u.password is None:
        return url
    netloc = f"{u.username}:***@{u.hostname}" + (f":{u.port}" if u.port else "")
    return urllib.parse.urlunsplit((u.scheme, netloc, u.path, u.query, u.fragment))


def _reload_hint(dialect: str, display: str) -> str:
    """What an operator does with a store this version cannot use: the exact commands."""
    if dialect == "sqlite":
        q = shlex.quote(display)
        where = f"move it aside (mv {q} {shlex.quote(display + '.old')}) and load"
        target = q
    else:
        where = "load"
        target = "postgresql://.../NEW_DATABASE"
    return (
        f"To go on, {where} the current CRLs into a new store: jpki revocation store load "
        f"{target} CRL... --issuer CA... (every CA generation's certificate). The new store "
        "starts without the old one's monitor state: the next 'jpki revocation monitor' "
        "reports every revoked certificate once more"
    )


# --- the store -----------------------------------------------------------------------------------


class RevocationStore:
    """Open (creating the tables if needed) the store at ``url``: a path or ``sqlite:///…``
    (SQLite), or ``postgresql://…`` (PostgreSQL). Safe to share between threads."""

    source_name = "store"

    def __init__(self, url: str | Path) -> None:
        self.dialect, self._target = _parse_url(url)
        self.path: Path | None = Path(self._target) if self.dialect == "sqlite" else None
        self.display = str(self.path) if self.path is not None else _redact(self._target)
        self._errors: tuple[type[BaseException], ...] = (sqlite3.Error,)
        if self.dialect == "postgresql":
            try:
                import psycopg
            except ImportError:
                raise UsageError(
                    "a PostgreSQL revocation store needs psycopg (pip install 'jpki[pg]')"
                ) from None
            self._errors = (sqlite3.Error, psycopg.Error)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[_Conn] = []
        self._closed = False
        # current() as of the store version (bumped by every load, from any process): a
        # monitor run checks thousands of certificates against the same CRLs.
        self._cache: tuple[int, list[tuple[StoredCrl, frozenset[bytes]]]] | None = None
        try:
            db = self._c()
            existing = db.tables()
            if "crl_generation" in existing and "store_meta" not in existing:
                self.close()
                raise RevocationError(
                    f"revocation store {self.display} was made by an older jpki (schema 1, "
                    "CRLs keyed by issuer name) and cannot be converted (it does not record "
                    f"which CA key signed each CRL). {_reload_hint(self.dialect, self.display)}"
                )
            ddl = _SCHEMA.format(**_DIALECT_TYPES[self.dialect])
            db.script(ddl)
            db.x("INSERT INTO store_version (id, v) VALUES (1, 0) ON CONFLICT DO NOTHING")
            db.x(
                "INSERT INTO store_meta (k, v) VALUES ('schema', ?) ON CONFLICT DO NOTHING",
                (SCHEMA_VERSION,),
            )
            row = db.one("SELECT v FROM store_meta WHERE k = 'schema'")
            db.q("SELECT issuer_key, crl_id FROM crl_generation LIMIT 0")
            db.q("SELECT final FROM monitor_reported LIMIT 0")
        except self._errors as exc:
            self.close()
            raise RevocationError(f"cannot open revocation store {self.display}: {exc}") from None
        except OSError as exc:
            self.close()
            raise RevocationError(f"cannot open revocation store {self.display}: {exc}") from None
        if row is None or row[0] != SCHEMA_VERSION:
            self.close()
            raise RevocationError(
                f"revocation store {self.display} has schema {row[0] if row else '?'}, "
                f"this version uses {SCHEMA_VERSION}. {_reload_hint(self.dialect, self.display)}"
            )

    def _c(self) -> _Conn:
        """This thread's connection (opened on first use)."""
        conn: _Conn | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise RevocationError(f"revocation store {self.display} is closed")
            conn = (
                _SqliteConn(Path(self._target))
                if self.dialect == "sqlite"
                else _PgConn(self._target)
            )
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    @property
    def _db(self) -> Any:
        """This thread's raw driver connection (sqlite3 / psycopg), for tests and tools."""
        return self._c().raw

    def close(self) -> None:
        """Close every connection this store opened; a later call is a ``RevocationError``."""
        with self._lock:
            self._closed = True
            conns, self._conns = self._conns, []
        for c in conns:
            with contextlib.suppress(Exception):  # a broken connection: nothing to save
                c.close()

    def __enter__(self) -> RevocationStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- loading ------------------------------------------------------------------------------

    @_db_errors
    def load(
        self,
        crl: Crl | bytes,
        issuers: Iterable[CertLike],
        *,
        progress: Callable[[int, int], None] | None = None,
        _hook: Callable[[str], None] | None = None,
        _fail_before_commit: bool = False,
    ) -> LoadResult:
        """Verify ``crl`` against ``issuers``, index it, and make it current for its scope.

        ``progress(entries written, entries)`` is called as the index is written.
        ``_hook(stage)`` (tests) runs inside the transaction at "chunks", "current", "commit".
        """
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
        key = issuer_key_id(signer)
        issuer = c.issuer.public_bytes()
        scope = _scope_blob(c.idp_names)
        is_delta = 1 if c.is_delta else 0
        width = 8 * len(index.columns)
        crl_id = crl_identity(c)
        a = as_array(c.buffer)
        hook = _hook or (lambda stage: None)
        db = self._c()
        with db.write():
            row = db.one(
                "SELECT g.id, g.number, g.crl_id FROM crl_current c JOIN crl_generation g "
                "ON g.id = c.generation WHERE c.issuer_key=? AND c.scope=? AND c.is_delta=?",
                (key, scope, is_delta),
            )
            previous: int | None = None
            if row is not None:
                previous = _num(row[1])
                if c.number is None or previous is None or c.number < previous:
                    raise CrlError(
                        f"refusing to go backwards: stored CRL number {previous}, "
                        f"new CRL number {c.number}"
                    )
                if c.number == previous and bytes(row[2]) != crl_id:
                    raise CrlError(f"a different CRL with the same number {previous} is stored")
            gen_row = db.one(
                "INSERT INTO crl_generation (issuer_key, issuer, scope, is_delta, number, "
                "base_number, this_update, next_update, signer_der, crl_id, entries, "
                "key_width, loaded_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
                (
                    key,
                    issuer,
                    scope,
                    is_delta,
                    None if c.number is None else str(c.number),
                    None if c.base_number is None else str(c.base_number),
                    c.this_update.isoformat(),
                    c.next_update.isoformat() if c.next_update else None,
                    signer.public_bytes(serialization.Encoding.DER),
                    crl_id,
                    len(index),
                    width,
                    datetime.now(UTC).isoformat(),
                ),
            )
            assert gen_row is not None
            gen = int(gen_row[0])
            db.insert_chunks(_with_progress(gen, _chunks(index, a), len(index), progress))
            hook("chunks")
            replaced: list[int] = []
            if row is not None:
                replaced.append(int(row[0]))
            if not is_delta:
                # A new base makes the current delta inapplicable: its finals count too.
                d = db.one(
                    "SELECT generation FROM crl_current WHERE issuer_key=? AND scope=? "
                    "AND is_delta=1",
                    (key, scope),
                )
                if d is not None:
                    replaced.append(int(d[0]))
            kept = sum(self._keep_finals(db, old, key, index) for old in replaced)
            hook("current")
            db.x(
                "INSERT INTO crl_current (issuer_key, scope, is_delta, generation) "
                "VALUES (?,?,?,?) ON CONFLICT (issuer_key, scope, is_delta) "
                "DO UPDATE SET generation=excluded.generation",
                (key, scope, is_delta, gen),
            )
            if row is not None:
                # The replaced generation is no longer reachable (a reader inside an older
                # snapshot still sees it until its read ends).
                db.x("DELETE FROM crl_chunk WHERE generation=?", (int(row[0]),))
                db.x("DELETE FROM crl_generation WHERE id=?", (int(row[0]),))
            hook("commit")
            if _fail_before_commit:  # test hook: simulate a crash mid-load
                raise RevocationError("simulated crash before commit")
        return LoadResult(
            gen, c.issuer.rfc4514_string(), c.number, len(index), c.is_delta, previous, kept
        )

    def _keep_finals(self, db: _Conn, old: int, key: bytes, new: SerialIndex) -> int:
        """Copy into the history each final entry of generation ``old`` that ``new`` does not
        list as final (dropped, or turned into a hold / removeFromCRL). Returns how many.

        Keys are compared in bulk, chunk by chunk of the old index; only the old entries whose
        key the new CRL lacks (or lists as undoable) are decoded.
        """
        meta = db.one("SELECT number, key_width FROM crl_generation WHERE id=?", (old,))
        if meta is None:
            return 0
        number, w = meta[0], int(meta[1])
        cols = new.columns
        undo = new.undoable_keys()
        single = len(cols) == 1 and w == 8 and not isinstance(undo, set)
        new_keys = cols[0] if single else None
        new_set: set[bytes] = set()
        undo_set: set[bytes] = set()
        if not single:
            width = 8 * len(cols)
            new_set = {
                _magnitude(b"".join(int(c[i]).to_bytes(8, "big") for c in cols)[-width:])
                for i in range(len(new))
            }
            undo_set = (
                undo
                if isinstance(undo, set)
                else {_magnitude(int(v).to_bytes(8, "big")) for v in undo.tolist()}
            )
        rows: list[tuple[bytes, bytes, bytes, str | None]] = []
        for first_key, keys in db.q(
            "SELECT first_key, keys FROM crl_chunk WHERE generation=?", (old,)
        ):
            kb = bytes(keys)
            if new_keys is not None:
                assert not isinstance(undo, set)
                k = np.frombuffer(kb, ">u8").astype(np.uint64)
                gone = ~_member(k, new_keys) | _member(k, undo)
                miss_keys = {int(v).to_bytes(8, "big") for v in k[gone].tolist()}
            else:
                miss_keys = set()
                for i in range(0, len(kb), w):
                    mk = _magnitude(kb[i : i + w])
                    if mk not in new_set or mk in undo_set:
                        miss_keys.add(kb[i : i + w])
            if not miss_keys:
                continue
            chunk = db.one(
                "SELECT keys, ends, entries FROM crl_chunk WHERE generation=? AND first_key=?",
                (old, first_key),
            )
            assert chunk is not None
            ck, ce, cd = bytes(chunk[0]), bytes(chunk[1]), bytes(chunk[2])
            for mk in sorted(miss_keys):
                rows.extend(
                    self._history_row_entry(key, e, number)
                    for e in _chunk_entries(ck, ce, cd, w, mk)
                    if is_final(e) and not self._still_final(new, e.serial)
                )
        if rows:
            db.many(
                "INSERT INTO crl_final_history (issuer_key, serial_key, entry, crl_number) "
                "VALUES (?,?,?,?) ON CONFLICT DO NOTHING",
                rows,
            )
        return len(rows)

    @staticmethod
    def _still_final(new: SerialIndex, serial: int) -> bool:
        # a key listed as undoable may still carry a final entry too (listed twice), or be a
        # negative/positive serial twin of the undoable one
        return is_final(new.lookup(serial))

    @staticmethod
    def _history_row_entry(
        key: bytes, e: RevokedEntry, number: str | None
    ) -> tuple[bytes, bytes, bytes, str | None]:
        return (key, _magnitude(serial_key_bytes(e.serial)), _entry_der(e), number)

    # --- queries ------------------------------------------------------------------------------

    _CURRENT_SQL = (
        "SELECT g.id, g.issuer_key, g.issuer, g.scope, g.is_delta, g.number, g.base_number, "
        "g.this_update, g.next_update, g.entries, g.key_width, g.crl_id "
        "FROM crl_current c JOIN crl_generation g ON g.id = c.generation ORDER BY g.id"
    )

    @staticmethod
    def _stored(r: tuple[Any, ...]) -> StoredCrl:
        return StoredCrl(
            int(r[0]),
            bytes(r[1]),
            bytes(r[2]),
            bytes(r[3]),
            bool(r[4]),
            _num(r[5]),
            _num(r[6]),
            datetime.fromisoformat(r[7]),
            datetime.fromisoformat(r[8]) if r[8] else None,
            int(r[9]),
            int(r[10]),
            bytes(r[11]),
        )

    @_db_errors
    def current(self) -> list[StoredCrl]:
        """The CRL generations currently in force (full and delta), oldest first."""
        db = self._c()
        with db.read():
            return [s for s, _ in self._current_cached(db)]

    @_db_errors
    def signers(self) -> list[x509.Certificate]:
        """The CA certificates that signed the current CRLs (one per key)."""
        rows = self._c().q(
            "SELECT DISTINCT g.signer_der FROM crl_current c JOIN crl_generation g "
            "ON g.id = c.generation"
        )
        return [x509.load_der_x509_certificate(bytes(r[0])) for r in rows]

    def _current_cached(self, db: _Conn) -> list[tuple[StoredCrl, frozenset[bytes]]]:
        """current() with each scope's names, re-read only after a load (inside a read)."""
        row = db.one("SELECT v FROM store_version WHERE id = 1")
        version = int(row[0]) if row else 0
        cache = self._cache
        if cache is None or cache[0] != version:
            rows = [self._stored(r) for r in db.q(self._CURRENT_SQL)]
            cache = (version, [(s, _scope_names(s.scope)) for s in rows])
            self._cache = cache
        return cache[1]

    def _lookup_gen(self, db: _Conn, generation: int, w: int, serial: int) -> list[RevokedEntry]:
        raw = _magnitude(serial_key_bytes(serial))
        if len(raw) > w:
            return []
        key = raw.rjust(w, b"\x00")
        row = db.one(
            "SELECT keys, ends, entries FROM crl_chunk WHERE generation=? AND first_key<=? "
            "ORDER BY first_key DESC LIMIT 1",
            (generation, key),
        )
        if row is None:
            return []
        found = _chunk_entries(bytes(row[0]), bytes(row[1]), bytes(row[2]), w, key)
        # Keys are value bytes: a negative serial shares a key with a positive one.
        return [e for e in found if e.serial == serial]

    @_db_errors
    def lookup(self, stored: StoredCrl, serial: int) -> RevokedEntry | None:
        """The deciding entry for ``serial`` in a stored CRL (a final reason wins)."""
        if stored.entries == 0:
            return None
        return prefer_final(
            self._lookup_gen(self._c(), stored.generation, stored.key_width, serial)
        )

    def _history(self, db: _Conn, key: bytes, serial: int) -> list[tuple[RevokedEntry, str | None]]:
        rows = db.q(
            "SELECT entry, crl_number FROM crl_final_history WHERE issuer_key=? AND serial_key=?",
            (key, _magnitude(serial_key_bytes(serial))),
        )
        out = []
        for entry, number in rows:
            der = bytes(entry)
            e = decode_entry(der, 0, len(der))
            if e.serial == serial:
                out.append((e, number))
        return out

    def status(
        self,
        cert: x509.Certificate,
        issuer: x509.Certificate,
        *,
        at: datetime,
        max_age: timedelta | None = None,
    ) -> RevocationResult:
        """:class:`~jpki.revocation.results.RevocationSource` interface (same as check)."""
        return self.check(cert, issuer, at=at, max_age=max_age)

    def check(
        self, cert: CertLike, issuer: CertLike, *, at: datetime, max_age: timedelta | None = None
    ) -> RevocationResult:
        """The status of ``cert`` at ``at`` from the stored CRLs of ``issuer``."""
        return self.check_with_evidence(cert, issuer, at=at, max_age=max_age)[0]

    @_db_errors
    def check_with_evidence(
        self, cert: CertLike, issuer: CertLike, *, at: datetime, max_age: timedelta | None = None
    ) -> tuple[RevocationResult, list[CrlEvidence]]:
        """:meth:`check`, plus the CRLs (issuer key, number) consulted, read from the same
        snapshot: every current CRL of the issuer key covering the certificate, and each
        replaced CRL whose final revocation of it the history keeps."""
        used: list[CrlEvidence] = []
        return self._check(cert, issuer, at, max_age, used), used

    def _check(
        self,
        cert: CertLike,
        issuer: CertLike,
        at: datetime,
        max_age: timedelta | None,
        used: list[CrlEvidence],
    ) -> RevocationResult:
        c, ca = as_x509(cert), as_x509(issuer)
        if not issued_by(c, ca):
            return RevocationResult(
                RevocationStatus.UNKNOWN,
                source="store",
                detail="the given issuer certificate did not sign this certificate",
            )
        key = issuer_key_id(ca)
        name = c.issuer.public_bytes()
        dps = {n.public_bytes() for n in cert_dp_names(c)}
        db = self._c()
        with db.read():
            covering = [
                s
                for s, names in self._current_cached(db)
                if s.issuer_key == key and s.issuer == name and (not s.scope or bool(names & dps))
            ]
            used.extend(CrlEvidence(s.issuer_key, s.number, s.is_delta, s.crl_id) for s in covering)
            history = self._history(db, key, c.serial_number)
            used.extend(
                CrlEvidence(key, _num(number), None, None)
                for number in sorted({n for _, n in history if n is not None}, key=int)
            )
            bases = [s for s in covering if not s.is_delta]
            if not bases:
                result = RevocationResult(
                    RevocationStatus.UNKNOWN,
                    source="store",
                    detail="no stored CRL from this issuer key covers the certificate",
                )
                final = False
            else:
                result, final = self._check_bases(db, c, covering, bases, at, max_age)
            if final and result.status is RevocationStatus.REVOKED:
                return result
            # What a CA-signed CRL once declared final counts: current but out-of-date CRLs,
            # and the history of replaced ones.
            finals: list[tuple[RevokedEntry, str]] = []
            for s in covering:
                if s.check_fresh(at, max_age) is None:
                    continue
                for e in self._lookup_gen(db, s.generation, s.key_width, c.serial_number):
                    if is_final(e):
                        finals.append((e, f"store:crl#{s.number} (not fresh)"))
            for e, number in history:
                finals.append((e, f"store:history (crl#{number})"))
        best = prefer_final(e for e, _ in finals)
        if best is not None:
            src = next(s for e, s in finals if e is best)
            listed = result_from_entry(best, at, src)
            if listed.status is RevocationStatus.REVOKED:
                return listed
        return result

    def _check_bases(
        self,
        db: _Conn,
        c: x509.Certificate,
        covering: list[StoredCrl],
        bases: list[StoredCrl],
        at: datetime,
        max_age: timedelta | None,
    ) -> tuple[RevocationResult, bool]:
        problems = []
        serial = c.serial_number
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
            b = prefer_final(self._lookup_gen(db, base.generation, base.key_width, serial))
            if is_final(b):
                return result_from_entry(b, at, source), True
            if deltas:
                delta = max(deltas, key=lambda d: d.number or 0)
                source += f"+delta#{delta.number}"
                d = prefer_final(self._lookup_gen(db, delta.generation, delta.key_width, serial))
                if d is not None:  # the delta's entry wins over a hold, removeFromCRL included
                    return result_from_entry(effective_entry(d), at, source), is_final(d)
            return result_from_entry(effective_entry(b), at, source), False
        return (
            RevocationResult(RevocationStatus.UNKNOWN, source="store", detail="; ".join(problems)),
            False,
        )

    # --- monitoring bookkeeping -----------------------------------------------------------------

    @_db_errors
    def reported_state(self, fingerprint: str) -> str | None:
        """None (never reported), "hold" (reported while on hold) or "final"."""
        row = self._c().one(
            "SELECT final FROM monitor_reported WHERE fingerprint=?", (fingerprint,)
        )
        if row is None:
            return None
        return "final" if int(row[0]) else "hold"

    def already_reported(self, fingerprint: str, *, final: bool = True) -> bool:
        """Was this state (final, or at least a hold) reported before?"""
        state = self.reported_state(fingerprint)
        return state == "final" or (state == "hold" and not final)

    @_db_errors
    def clear_reported(self, fingerprint: str) -> None:
        """Forget a notice (a certificate released from hold)."""
        db = self._c()
        with db.write(bump=False):
            db.x("DELETE FROM monitor_reported WHERE fingerprint=?", (fingerprint,))

    @_db_errors
    def mark_reported(
        self,
        fingerprint: str,
        serial: int,
        reason: str | None,
        revoked_at: datetime | None,
        *,
        final: bool = True,
    ) -> None:
        """Record that the monitor reported this revocation (an entry only ever becomes final)."""
        db = self._c()
        with db.write(bump=False):
            db.x(
                "INSERT INTO monitor_reported "
                "(fingerprint, serial, reason, revoked_at, final, reported_at) "
                "VALUES (?,?,?,?,?,?) ON CONFLICT (fingerprint) DO UPDATE SET "
                "reason=excluded.reason, revoked_at=excluded.revoked_at, "
                "final=excluded.final, reported_at=excluded.reported_at "
                "WHERE monitor_reported.final < excluded.final",
                (
                    fingerprint,
                    f"{serial:x}",
                    reason,
                    revoked_at.isoformat() if revoked_at else None,
                    1 if final else 0,
                    datetime.now(UTC).isoformat(),
                ),
            )


def _member(k: np.ndarray[Any, Any], sorted_keys: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Which of ``k`` are in ``sorted_keys`` (a sorted uint64 array)."""
    if len(sorted_keys) == 0:
        return np.zeros(len(k), bool)
    pos = np.minimum(np.searchsorted(sorted_keys, k), len(sorted_keys) - 1)
    return np.asarray(sorted_keys[pos] == k)


def _with_progress(
    gen: int,
    chunks: Iterator[tuple[bytes, bytes, bytes, bytes]],
    total: int,
    progress: Callable[[int, int], None] | None,
) -> Iterator[tuple[int, bytes, bytes, bytes, bytes]]:
    done = 0
    for first, keys, ends, entries in chunks:
        yield gen, first, keys, ends, entries
        done += len(ends) // 4
        if progress is not None:
            progress(done, total)


def _entry_der(e: RevokedEntry) -> bytes:
    """Re-encode a decoded entry (history rows): serial, revocationDate, reason, invalidity."""
    from jpki.revocation.crl import tlv

    def gtime(t: datetime) -> bytes:
        if 1950 <= t.year < 2050:
            return tlv(0x17, t.strftime("%y%m%d%H%M%SZ").encode())
        return tlv(0x18, t.strftime("%Y%m%d%H%M%SZ").encode())

    exts = b""
    if e.reason is not None:
        exts += tlv(
            0x30, tlv(0x06, bytes.fromhex("551d15")) + tlv(0x04, tlv(0x0A, bytes([e.reason.code])))
        )
    if e.invalidity_date is not None:
        t = tlv(0x18, e.invalidity_date.strftime("%Y%m%d%H%M%SZ").encode())
        exts += tlv(0x30, tlv(0x06, bytes.fromhex("551d18")) + tlv(0x04, t))
    body = tlv(0x02, serial_key_bytes(e.serial)) + gtime(e.revocation_date)
    if exts:
        body += tlv(0x30, exts)
    return tlv(0x30, body)
