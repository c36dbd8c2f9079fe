"""Helpers for the `jpki serve` tests: a service in a thread or a subprocess, keys, requests."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from jpki.testing.pki import TestPki

REPO = Path(__file__).resolve().parents[1]
NOW = datetime.now(UTC)

#: One HTTP client for the tests' requests (thread-safe, keep-alive): ``httpx.get``/``post``
#: build a new client, TLS context included (~70 ms), for every call.
HTTP = httpx.Client(timeout=30.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class Pki:
    """The test PKI's CAs written as files (the service's --trust), and CRL helpers."""

    pki: TestPki
    dir: Path

    @property
    def trust(self) -> list[str]:
        return [str(self.dir / "auth-ca.der"), str(self.dir / "sign-ca.der")]

    def anchors(self) -> tuple[bytes, ...]:
        return (self.pki.auth_ca.der, self.pki.sign_ca.der)

    def crl(
        self, ca: str, number: int, revoked: tuple[int, ...] = (), *, stale: bool = False
    ) -> bytes:
        this = NOW - timedelta(days=3 if stale else 0, hours=1)
        nxt = this + timedelta(days=1)
        entries = [(s, None, NOW - timedelta(days=10)) for s in revoked]
        return self.pki.make_crl(ca, entries, this_update=this, next_update=nxt, number=number)  # type: ignore[arg-type]


def make_pki(tmp: Path) -> Pki:
    pki = TestPki()
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "auth-ca.der").write_bytes(pki.auth_ca.der)
    (tmp / "sign-ca.der").write_bytes(pki.sign_ca.der)
    return Pki(pki, tmp)


def login_body(issued: Any, challenge: dict[str, Any]) -> dict[str, str]:
    """What a card would send: the auth certificate and PKCS#1 v1.5 SHA-256 over the nonce."""
    nonce = base64.b64decode(challenge["nonce"])
    sig = issued.key.sign(nonce, padding.PKCS1v15(), hashes.SHA256())
    return {"challenge_id": challenge["id"], "certificate": b64(issued.der), "signature": b64(sig)}


def raw_db_bytes(db: str) -> bytes:
    """The bytes of an SQLite database and its WAL, read by a child process.

    Not ``Path.read_bytes()``: closing any descriptor of the file drops every POSIX lock this
    process holds on it, so a service in this process would lose its locks and the next
    connection to close would checkpoint and delete the WAL under the others' feet.
    """
    files = [f for f in (db, db + "-wal") if Path(f).exists()]
    return subprocess.run(["cat", *files], check=True, capture_output=True).stdout


def add_key(db: str, name: str = "bank", rate: int = 100000) -> str:
    from jpki.service.db import Database
    from jpki.service.state import add_key as _add

    d = Database(db)
    try:
        return _add(d, name, rate)[1]
    finally:
        d.close()


@contextlib.contextmanager
def thread_service(config: Any) -> Iterator[tuple[str, Any]]:
    """The app under uvicorn in a thread of this process: (base URL, app)."""
    import uvicorn

    from jpki.service.app import create_app

    app = create_app(config)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, lambda: t.is_alive())
    try:
        yield base, app
    finally:
        server.should_exit = True
        t.join(30)


def wait_ready(base: str, alive: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError("service exited during start-up")
        try:
            if HTTP.get(base + "/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("service did not start")


def serve_cmd(*args: str) -> list[str]:
    return [sys.executable, "-c", "from jpki.cli import main; main()", "serve", *args]


def jpki_cmd(*args: str) -> list[str]:
    return [sys.executable, "-c", "from jpki.cli import main; main()", *args]


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO / "src") + os.pathsep + e.get("PYTHONPATH", "")
    return e


def spawn_service(
    db: str, trust: list[str], *extra: str, log: Path | None = None
) -> tuple[str, subprocess.Popen[bytes]]:
    """Start `jpki serve` as a subprocess in its own process group (not yet ready)."""
    port = free_port()
    args = [f"--db={db}", *(f"--trust={t}" for t in trust), f"--port={port}", *extra]
    out = log.open("ab") if log else None
    proc = subprocess.Popen(
        serve_cmd(*args),
        env=env(),
        stdout=out or subprocess.DEVNULL,
        stderr=out or subprocess.DEVNULL,
        start_new_session=True,
    )
    if out:
        out.close()
    return f"http://127.0.0.1:{port}", proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # The pool's workers share the group; a SIGKILLed parent leaves them to us.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def process_services(
    db: str, trust: list[str], extras: list[list[str]], log: Path | None = None
) -> Iterator[list[tuple[str, subprocess.Popen[bytes]]]]:
    """Several `jpki serve` processes started together, ready when yielded."""
    started = [spawn_service(db, trust, *x, log=log) for x in extras]
    try:
        for base, proc in started:
            wait_ready(base, lambda p=proc: p.poll() is None)  # type: ignore[misc]
        yield started
    finally:
        for _base, proc in started:
            stop(proc)


def pool_workers(pid: int) -> list[int]:
    """PIDs of the process-pool workers (spawned children) of service process ``pid``."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and b"spawn_main" in cmd:
            out.append(int(d.name))
    return out
