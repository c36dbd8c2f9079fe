"""The service database under concurrent writers: the audit chain stays one chain."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from pathlib import Path

import pytest

from jpki.service import audit, state
from jpki.service.db import Database

THREADS = 8
PER_THREAD = 25


def _append_many(db: Database, who: str, n: int, errors: list[BaseException]) -> None:
    try:
        for i in range(n):
            audit.append(db, {"time": audit.now_iso(), "who": who, "i": i})
            # Interleave the rate counter, the other writer on every request.
            state.take_token(db, f"bucket:{who}", 10**7, float(i))
    except BaseException as exc:  # reported by the test thread
        errors.append(exc)


@pytest.mark.timeout(120)
def test_threads_appending_keep_one_chain(tmp_path: Path) -> None:
    url = str(tmp_path / "svc.sqlite")
    dbs = [Database(url), Database(url)]  # two objects on one file share the write lock
    errors: list[BaseException] = []
    threads = [
        threading.Thread(
            target=_append_many, args=(dbs[i % 2], f"t{i}", PER_THREAD, errors), daemon=True
        )
        for i in range(THREADS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    n, problems = audit.check_chain(dbs[0])
    assert problems == []
    assert n == THREADS * PER_THREAD
    whos = sorted((r["who"], r["i"]) for r in audit.records(dbs[0]))
    assert whos == sorted((f"t{i}", j) for i in range(THREADS) for j in range(PER_THREAD))


def _proc_append(url: str, who: str, n: int) -> None:
    errors: list[BaseException] = []
    _append_many(Database(url), who, n, errors)
    if errors:
        raise SystemExit(f"{who}: {errors[0]!r}")


@pytest.mark.timeout(180)
def test_processes_appending_keep_one_chain(tmp_path: Path) -> None:
    # Across processes the in-process lock does not apply: BEGIN IMMEDIATE and SQLite's
    # busy handler keep the chain whole.
    url = str(tmp_path / "svc.sqlite")
    Database(url)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_proc_append, args=(url, f"p{i}", 20)) for i in range(3)]
    for p in procs:
        p.start()
    errors: list[BaseException] = []
    _append_many(Database(url), "main", 20, errors)
    for p in procs:
        p.join()
    assert errors == []
    assert [p.exitcode for p in procs] == [0, 0, 0]
    n, problems = audit.check_chain(Database(url))
    assert problems == []
    assert n == 80


def test_failed_write_rolls_back_and_frees_the_lock(tmp_path: Path) -> None:
    db = Database(str(tmp_path / "svc.sqlite"))

    def boom(tx: object, seq: int) -> None:
        raise RuntimeError("after the insert")

    with pytest.raises(RuntimeError):
        audit.append(db, {"time": audit.now_iso()}, also=boom)
    assert audit.check_chain(db) == (0, [])
    # The lock was released: the next writer (another thread) gets through.
    t = threading.Thread(target=audit.append, args=(db, {"time": audit.now_iso()}))
    t.start()
    t.join(timeout=30)
    assert not t.is_alive()
    assert audit.check_chain(db) == (1, [])


def test_reads_do_not_wait_for_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "svc.sqlite"
    db = Database(str(path))
    audit.append(db, {"time": audit.now_iso()})
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holding the write lock
    try:
        assert audit.check_chain(db) == (1, [])
    finally:
        other.execute("ROLLBACK")
        other.close()
