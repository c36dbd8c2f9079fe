"""A real `openssl ocsp` responder on 127.0.0.1 for tests (shared by the OCSP and verify tests)."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def serial_hex(serial: int) -> str:
    h = f"{serial:X}"
    return h if len(h) % 2 == 0 else "0" + h


def write_index(path: Path, good: Iterable[int] = (), revoked: Iterable[int] = ()) -> None:
    """An openssl CA index: ``good`` serials valid, ``revoked`` ones revoked on 2025-01-01
    (affiliationChanged); any other serial is answered ``unknown``."""
    subj = "/C=JP/CN=x"
    lines = [f"V\t301231000000Z\t\t{serial_hex(s)}\tunknown\t{subj}\n" for s in good]
    lines += [
        f"R\t301231000000Z\t250101000000Z,affiliationChanged\t{serial_hex(s)}\tunknown\t{subj}\n"
        for s in revoked
    ]
    path.write_text("".join(lines))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    # openssl announces the listening socket on stderr. (A probe connection would block its
    # single-threaded accept loop, so none is made.)
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    seen = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 0.1)
        if ready:
            chunk = os.read(proc.stderr.fileno(), 4096)
            if not chunk:
                break
            seen += chunk
            if b"waiting for OCSP client connections" in seen:
                return
    raise RuntimeError(f"openssl ocsp did not start: {seen!r}")


@contextmanager
def openssl_responder(
    index: Path, ca: Path, rsigner: Path, rkey: Path, port: int | None = None
) -> Iterator[str]:
    """Run ``openssl ocsp`` on 127.0.0.1 (``port``, or a free one: certificates naming the
    responder in their AIA need the port first); yields its URL; killed on exit."""
    port = port or free_port()
    proc = subprocess.Popen(
        [
            *("openssl", "ocsp", "-index", str(index), "-CA", str(ca)),
            *("-rsigner", str(rsigner), "-rkey", str(rkey)),
            *("-port", str(port), "-nmin", "30"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_listening(proc)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.kill()
        proc.wait(timeout=10)
