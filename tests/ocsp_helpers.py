"""OCSP test helpers shared by the OCSP, deadline and verify tests: a real `openssl ocsp`
responder on 127.0.0.1, servers that stall, and responses built with cryptography."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import ocsp

from jpki.testing.pki import Issued, TestPki


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


def request_nonce(request: bytes) -> bytes:
    """The nonce of a DER OCSP request."""
    req = ocsp.load_der_ocsp_request(request)
    return req.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce


def revoked_response(
    pki: TestPki,
    cert: x509.Certificate,
    nonce: bytes,
    *,
    now: datetime,
    reason: x509.ReasonFlags,
    signer: Issued | None = None,
) -> bytes:
    """A DER OCSP response saying ``cert`` (of the signing CA) was revoked a day before
    ``now`` for ``reason``, fresh at ``now``, carrying ``nonce``; signed by the CA or
    ``signer`` (then included as the responder certificate)."""
    ca = pki.sign_ca
    signer = signer or ca
    b = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=cert,
            issuer=ca.cert,
            algorithm=hashes.SHA1(),
            cert_status=ocsp.OCSPCertStatus.REVOKED,
            this_update=now - timedelta(minutes=1),
            next_update=now + timedelta(hours=1),
            revocation_time=now - timedelta(days=1),
            revocation_reason=reason,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, signer.cert)
        .add_extension(x509.OCSPNonce(nonce), critical=False)
    )
    if signer is not ca:
        b = b.certificates([signer.cert])
    return b.sign(signer.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


@contextmanager
def stalling_server(kind: str) -> Iterator[str]:
    """A 127.0.0.1 server that never gives a whole answer; yields its URL.

    "trickle" sends a never-ending response a byte per 0.1 s, "silent" reads the request and
    never answers, "slow-accept" accepts and never reads, "tls-trickle" sends a TLS record
    header and then a byte per 0.1 s.
    """
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.settimeout(0.1)
    stop = threading.Event()
    conns: list[socket.socket] = []

    def one(conn: socket.socket) -> None:
        conn.settimeout(0.1)
        try:
            if kind != "slow-accept":
                with contextlib.suppress(OSError):
                    conn.recv(65536)
            payload = b"HTTP/1.1 200 OK\r\nContent-Type: application/ocsp-response\r\n"
            if kind == "tls-trickle":  # a TLS handshake record header, then a long body
                conn.sendall(b"\x16\x03\x03\x40\x00")
                payload = b"\x00"
            i = 0
            while not stop.is_set():
                if kind in ("trickle", "tls-trickle"):
                    conn.sendall(payload[i % len(payload) : i % len(payload) + 1])
                    i += 1
                time.sleep(0.1)
        except OSError:
            pass

    def run() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            conns.append(conn)
            threading.Thread(target=one, args=(conn,), daemon=True).start()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}/ocsp"
    finally:
        stop.set()
        t.join(2)
        for c in conns:
            c.close()
        srv.close()
