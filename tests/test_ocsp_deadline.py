"""OCSP: one total deadline per request (connect + send + receive), sync and asyncio; the
HTTP fetch is injectable. A trickling or silent responder ends as "unknown" on time.

Elapsed times are only bounded loosely (3x the deadline): the guard is against a check that
a trickling responder stretches without end, not a timing benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from jpki.errors import OcspError
from jpki.revocation.ocsp import OcspSource, check_ocsp_async, post, post_async
from jpki.revocation.policy import RevocationPolicy, RevocationStatus, check_revocation
from jpki.testing.pki import Issued, TestPki, sample_person
from revocation_helpers import NOW

DEADLINE = 1.0


@pytest.fixture(scope="module")
def leaf(pki: TestPki) -> Issued:
    return pki.issue_signing(sample_person(0), label="ocsp-deadline")


def _serve(handler: str) -> Iterator[str]:
    """A 127.0.0.1 server: "trickle" sends a never-ending response a byte per 0.1 s, "silent"
    reads the request and never answers, "slow-accept" never reads at all."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.settimeout(0.1)
    stop = threading.Event()
    conns: list[socket.socket] = []

    def one(conn: socket.socket) -> None:
        conn.settimeout(0.1)
        try:
            if handler != "slow-accept":
                with contextlib.suppress(OSError):
                    conn.recv(65536)
            payload = b"HTTP/1.1 200 OK\r\nContent-Type: application/ocsp-response\r\n"
            if handler == "tls-trickle":  # a TLS handshake record header, then a long body
                conn.sendall(b"\x16\x03\x03\x40\x00")
                payload = b"\x00"
            i = 0
            while not stop.is_set():
                if handler in ("trickle", "tls-trickle"):
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


@pytest.fixture
def trickle() -> Iterator[str]:
    yield from _serve("trickle")


@pytest.fixture
def silent() -> Iterator[str]:
    yield from _serve("silent")


def test_trickling_tls_handshake_hits_the_deadline() -> None:
    for url in _serve("tls-trickle"):
        t0 = time.monotonic()
        with pytest.raises(OcspError, match="did not answer within"):
            post(url.replace("http://", "https://"), b"x", DEADLINE)
        assert time.monotonic() - t0 < 3 * DEADLINE


def test_trickling_responder_hits_the_deadline(trickle: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(OcspError, match="did not answer within"):
        post(trickle, b"x", DEADLINE)
    elapsed = time.monotonic() - t0
    # per-read timeouts would never fire here: each byte comes well within 0.1 s; and the
    # deadline is not cut short either (monotonic clock: this lower bound cannot flake)
    assert 0.9 * DEADLINE <= elapsed < 3 * DEADLINE, elapsed


@pytest.mark.parametrize("kind", ["trickle", "silent"])
def test_policy_answers_unknown_on_time(
    request: pytest.FixtureRequest, kind: str, pki: TestPki, leaf: Issued
) -> None:
    url = request.getfixturevalue(kind)
    t0 = time.monotonic()
    res = check_revocation(
        leaf.cert,
        pki.sign_ca.cert,
        ocsp_url=url,
        at=NOW,
        policy=RevocationPolicy(ocsp_timeout=DEADLINE),
    )
    assert res.status is RevocationStatus.UNKNOWN and "within" in res.detail
    assert time.monotonic() - t0 < 3 * DEADLINE
    soft = check_revocation(
        leaf.cert,
        pki.sign_ca.cert,
        ocsp_url=url,
        at=NOW,
        policy=RevocationPolicy(ocsp_timeout=DEADLINE, soft_fail=True),
    )
    assert soft.status is RevocationStatus.UNKNOWN and soft.soft_failed and soft.accepted


def test_async_deadline_does_not_block_the_loop(trickle: str, pki: TestPki, leaf: Issued) -> None:
    async def main() -> tuple[BaseException | None, int, float]:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        t = asyncio.create_task(ticker())
        t0 = time.monotonic()
        err: BaseException | None = None
        try:
            await check_ocsp_async(leaf.cert, pki.sign_ca.cert, trickle, at=NOW, timeout=DEADLINE)
        except OcspError as exc:
            err = exc
        elapsed = time.monotonic() - t0
        done.set()
        await t
        return err, ticks, elapsed

    err, ticks, elapsed = asyncio.run(main())
    assert isinstance(err, OcspError) and "within" in str(err)
    assert elapsed < 3 * DEADLINE
    # the loop kept running while the check waited (a blocking call would give ~0 ticks)
    assert ticks >= 10, ticks


def _ocsp_response(pki: TestPki, cert: x509.Certificate, request: bytes) -> bytes:
    req = ocsp.load_der_ocsp_request(request)
    nonce = req.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    ca = pki.sign_ca
    return (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=cert,
            issuer=ca.cert,
            algorithm=hashes.SHA1(),
            cert_status=ocsp.OCSPCertStatus.REVOKED,
            this_update=NOW - timedelta(minutes=1),
            next_update=NOW + timedelta(hours=1),
            revocation_time=NOW - timedelta(days=1),
            revocation_reason=x509.ReasonFlags.key_compromise,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, ca.cert)
        .add_extension(x509.OCSPNonce(nonce), critical=False)
        .sign(ca.key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )


def test_fetch_is_injectable(pki: TestPki, leaf: Issued) -> None:
    calls: list[tuple[str, float]] = []

    def fetch(url: str, body: bytes, deadline: float) -> bytes:
        calls.append((url, deadline))
        return _ocsp_response(pki, leaf.cert, body)

    res = check_revocation(
        leaf.cert,
        pki.sign_ca.cert,
        ocsp_url="http://ocsp.invalid/",
        ocsp_fetch=fetch,
        at=NOW,
        policy=RevocationPolicy(ocsp_timeout=2.5),
    )
    assert res.status is RevocationStatus.REVOKED and res.source == "ocsp:http://ocsp.invalid/"
    assert calls == [("http://ocsp.invalid/", 2.5)]
    src = OcspSource("http://ocsp.invalid/", fetch=fetch)
    assert src.status(leaf.cert, pki.sign_ca.cert, at=NOW).status is RevocationStatus.REVOKED

    async def afetch(url: str, body: bytes, deadline: float) -> bytes:
        await asyncio.sleep(0)
        return _ocsp_response(pki, leaf.cert, body)

    res = asyncio.run(
        check_ocsp_async(leaf.cert, pki.sign_ca.cert, "http://ocsp.invalid/", at=NOW, fetch=afetch)
    )
    assert res.status is RevocationStatus.REVOKED

    # a fetch that fails is an unknown status, never good
    def broken(url: str, body: bytes, deadline: float) -> bytes:
        raise OcspError("network down")

    res = check_revocation(
        leaf.cert, pki.sign_ca.cert, ocsp_url="http://x.invalid/", ocsp_fetch=broken, at=NOW
    )
    assert res.status is RevocationStatus.UNKNOWN and "network down" in res.detail


def test_http_answers_parsed_by_both_clients(pki: TestPki, leaf: Issued) -> None:
    """Content-Length, chunked and read-to-EOF bodies; an HTTP error status is OcspError."""
    bodies = {
        "length": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n",
        "eof": b"HTTP/1.0 200 OK\r\n\r\nhello",
        "error": b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n",
    }
    for kind, raw in bodies.items():
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(4)

        def serve(raw: bytes = raw, srv: socket.socket = srv) -> None:
            for _ in range(2):
                c, _ = srv.accept()
                c.recv(65536)
                c.sendall(raw)
                c.close()

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        url = f"http://127.0.0.1:{srv.getsockname()[1]}/"
        try:
            if kind == "error":
                with pytest.raises(OcspError, match="HTTP 503"):
                    post(url, b"q", 5)
                with pytest.raises(OcspError, match="HTTP 503"):
                    asyncio.run(post_async(url, b"q", 5))
            else:
                assert post(url, b"q", 5) == b"hello"
                assert asyncio.run(post_async(url, b"q", 5)) == b"hello"
        finally:
            t.join(5)
            srv.close()


def test_cli_timeout_is_the_deadline(
    trickle: str, pki: TestPki, leaf: Issued, tmp_path: Path
) -> None:
    cert = tmp_path / "leaf.pem"
    cert.write_bytes(leaf.pem)
    ca = tmp_path / "ca.pem"
    ca.write_bytes(pki.sign_ca.pem)
    cmd = [sys.executable, "-m", "jpki", "revocation", "check", str(cert), "--issuer", str(ca)]
    cmd += ["--ocsp", trickle, "--at", NOW.isoformat(), "--timeout", str(DEADLINE)]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=os.environ.copy())
    elapsed = time.monotonic() - t0
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "unknown" in proc.stdout and "within" in proc.stdout
    assert elapsed < 3 * DEADLINE + 5  # + interpreter start-up
