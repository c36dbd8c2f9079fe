"""SQLite connections the way every jpki store opens them (revocation store, service)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path


def connect_sqlite_wal(
    path: str | Path, *, timeout: float = 30.0, check_same_thread: bool = True
) -> sqlite3.Connection:
    """An autocommit SQLite connection in WAL mode, waiting up to ``timeout`` s for locks.

    Raises ``sqlite3.Error`` (the caller words it).
    """
    raw = sqlite3.connect(
        str(path), timeout=timeout, isolation_level=None, check_same_thread=check_same_thread
    )
    # Switching a new database to WAL needs an exclusive lock, and SQLite answers "database
    # is locked" at once instead of waiting in its busy handler: two processes or threads
    # opening the same new store race here. Wait for it as the busy timeout would.
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            raw.execute("PRAGMA journal_mode=WAL")
            return raw
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raw.close()
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
