"""The service database: SQLite in a data directory by default, PostgreSQL for a fleet.

One small SQL dialect for both (``?`` placeholders, rewritten for psycopg). Every method is
synchronous and short; the app runs them in threads. State that must hold across a fleet
lives here and nowhere else: challenges (single use), API keys, rate-limit buckets, the audit
record, the CRL evidence archive; the revocation store (jpki.revocation.store) keeps its
tables in the same database. Serialised writers (the audit chain) take one database-wide
lock: ``BEGIN IMMEDIATE`` in SQLite, a transaction-scoped advisory lock in PostgreSQL.

SQLite allows one writer at a time, and a connection that finds the database locked sleeps
in SQLite's busy handler (steps of up to 100 ms), not woken when the lock is freed. So the
writers of one process queue on an in-process lock per database file first (woken at once
when it is released) and meet SQLite's lock only against other processes; every SQLite
write transaction starts ``BEGIN IMMEDIATE`` (no reader-to-writer upgrade that could fail
mid-way). Readers take no lock (WAL: they never wait for a writer).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from jpki._sqlite import connect_sqlite_wal
from jpki.errors import JpkiError, UsageError


class ServiceDbError(JpkiError):
    """The service database is unreachable or unusable."""


_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS svc_challenge (
        id TEXT PRIMARY KEY, nonce {blob} NOT NULL, expires_at DOUBLE PRECISION NOT NULL,
        used INTEGER NOT NULL DEFAULT 0, origin TEXT NOT NULL, result TEXT)""",
    "CREATE INDEX IF NOT EXISTS svc_challenge_expiry ON svc_challenge (expires_at)",
    """CREATE TABLE IF NOT EXISTS svc_api_key (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, key_sha256 TEXT NOT NULL UNIQUE,
        rate_per_minute INTEGER NOT NULL, created_at TEXT NOT NULL, revoked_at TEXT)""",
    # The DER of every CRL the service fed to the revocation store: the evidence an audit
    # record names (issuer key + number) and `jpki audit verify` re-checks offline.
    """CREATE TABLE IF NOT EXISTS svc_crl_archive (
        crl_id TEXT PRIMARY KEY, issuer_key TEXT NOT NULL, number TEXT,
        is_delta INTEGER NOT NULL, issuer TEXT NOT NULL, archived_at TEXT NOT NULL,
        der {blob} NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS svc_crl_archive_key ON svc_crl_archive (issuer_key, number)",
    # One token bucket per API key (or page client), shared by every process on the database.
    """CREATE TABLE IF NOT EXISTS svc_rate (
        bucket TEXT PRIMARY KEY, tat DOUBLE PRECISION NOT NULL,
        seen DOUBLE PRECISION NOT NULL, ok INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS svc_anchor (fingerprint TEXT PRIMARY KEY, der {blob} NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS svc_audit (
        seq BIGINT PRIMARY KEY, at TEXT NOT NULL, body TEXT NOT NULL,
        prev_hash TEXT NOT NULL, hash TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS svc_state (name TEXT PRIMARY KEY, value TEXT NOT NULL)""",
]


_WRITE_LOCKS: dict[str, threading.Lock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def _write_lock(path: Path) -> threading.Lock:
    # One lock per file, shared by every Database object of this process on it.
    key = str(path.resolve())
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(key, threading.Lock())


class _Cursor(Protocol):
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Tx(Protocol):
    """What a transaction body sees: ``execute(sql, params)`` with ``?`` placeholders."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Cursor:
        """Run one statement with ``?`` placeholders inside the transaction; returns its cursor."""
        ...


@dataclass(frozen=True)
class _PgTx:
    conn: Any

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Cursor:
        return self.conn.execute(sql.replace("?", "%s"), tuple(params))  # type: ignore[no-any-return]


class Database:
    """Open the database at ``url``: ``sqlite:///PATH``, a plain path, or ``postgresql://…``."""

    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        self.url = url
        self.is_postgres = url.startswith(("postgresql://", "postgres://"))
        self._pg_pool: Any = None
        self._local = threading.local()
        if self.is_postgres:
            try:
                from psycopg_pool import ConnectionPool
            except ImportError:  # pragma: no cover - the serve extra brings it
                raise UsageError(
                    "PostgreSQL needs psycopg and psycopg-pool (jpki[serve])"
                ) from None
            self._pg_pool = ConnectionPool(
                url, min_size=1, max_size=pool_size, open=False, kwargs={"autocommit": True}
            )
            try:
                self._pg_pool.open(wait=True, timeout=15)
            except Exception as exc:
                raise ServiceDbError(f"cannot reach PostgreSQL: {_one_line(exc)}") from None
        else:
            path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
            self.path = Path(path)
            if not self.path.parent.is_dir():
                raise UsageError(f"database directory {self.path.parent} does not exist")
            self._wlock = _write_lock(self.path)
        self._init_schema()

    @property
    def display(self) -> str:
        """The database URL without its password (for logs and messages)."""
        return display_url(self.url)

    def close(self) -> None:
        """Close the PostgreSQL connection pool, if one was opened."""
        if self._pg_pool is not None:
            self._pg_pool.close()

    def _init_schema(self) -> None:
        blob = "BYTEA" if self.is_postgres else "BLOB"
        # Exclusive: PostgreSQL's CREATE TABLE IF NOT EXISTS races between fleet members.
        with self.transaction(exclusive=True) as tx:
            for stmt in _SCHEMA:
                tx.execute(stmt.format(blob=blob))

    def _sqlite(self, durable: bool = True) -> sqlite3.Connection:
        # One connection per thread: sqlite3 connections must not cross threads, and a
        # thread pool reuses its threads, so this costs one open per thread, not per call.
        name = "conn" if durable else "lax_conn"
        conn: sqlite3.Connection | None = getattr(self._local, name, None)
        if conn is None:
            # The busy timeout now only covers other processes (a CLI command, a second
            # service): long, since giving up means a 503.
            conn = connect_sqlite_wal(self.path)
            # FULL: a committed audit record survives a power cut, not only a process crash.
            # NORMAL (no fsync per commit in WAL mode) for what may be lost: rate counters.
            conn.execute("PRAGMA synchronous=FULL" if durable else "PRAGMA synchronous=NORMAL")
            setattr(self._local, name, conn)
        return conn

    @contextmanager
    def transaction(self, *, exclusive: bool = False, durable: bool = True) -> Iterator[Tx]:
        """One write transaction; ``exclusive`` serialises it against every other exclusive
        one; ``durable=False``: the commit need not reach the disk (a rate-limit counter)."""
        with self._tx(exclusive=exclusive, durable=durable, write=True) as tx:
            yield tx

    @contextmanager
    def _tx(self, *, exclusive: bool, durable: bool, write: bool) -> Iterator[Tx]:
        try:
            if self.is_postgres:
                with self._pg_pool.connection() as conn, conn.transaction():
                    tx = _PgTx(conn)
                    if exclusive:
                        tx.execute("SELECT pg_advisory_xact_lock(?)", (0x6A706B69,))
                    if not durable:
                        tx.execute("SET LOCAL synchronous_commit = off")
                    yield tx
            elif write:
                conn = self._sqlite(durable)
                # SQLite has one writer anyway: every write is exclusive, in this process
                # through the lock, against other processes through BEGIN IMMEDIATE.
                with self._wlock:
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        yield conn
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
                    conn.execute("COMMIT")
            else:
                conn = self._sqlite(durable)
                conn.execute("BEGIN")
                try:
                    yield conn
                finally:
                    conn.execute("ROLLBACK")
        except JpkiError:
            raise
        except (sqlite3.Error, OSError) as exc:
            raise ServiceDbError(f"service database {self.display}: {_one_line(exc)}") from None
        except Exception as exc:
            if type(exc).__module__.startswith("psycopg"):
                raise ServiceDbError(f"service database {self.display}: {_one_line(exc)}") from None
            raise

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """The rows of one read-only statement (no write lock taken)."""
        with self._tx(exclusive=False, durable=True, write=False) as tx:
            return list(tx.execute(sql, params).fetchall())


def display_url(url: str) -> str:
    """A database URL without its password (for logs and messages)."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in creds:
        return url
    return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"


def _one_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
