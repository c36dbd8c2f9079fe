"""OCSP: one total deadline per request (connect + send + receive), sync and asyncio; the
HTTP fetch is injectable. A trickling or silent responder ends as "unknown" on time.

Elapsed times are only bounded loosely (3x the deadline): the guard is against a check that
a trickling responder stretches without end, not a timing benchmark.
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from jpki.errors import OcspError
from jpki.revocation.ocsp import (
    AddrInfo,
    OcspSource,
    Resolver,
    check_ocsp_async,
    post,
    post_async,
)
from jpki.revocation.policy import (
    RevocationPolicy,
    RevocationResult,
    RevocationStatus,
    check_revocation,
    check_revocation_async,
)
from jpki.testing.pki import Issued, TestPki, sample_person
from jpki.verify.aio import async_post
from ocsp_helpers import free_port, request_nonce, revoked_response, stalling_server
from revocation_helpers import NOW

DEADLINE = 1.0


@pytest.fixture(scope="module")
def leaf(pki: TestPki) -> Issued:
    return pki.issue_signing(sample_person(0), label="ocsp-deadline")


@pytest.fixture
def trickle() -> Iterator[str]:
    with stalling_server("trickle") as url:
        yield url


@pytest.fixture
def silent() -> Iterator[str]:
    with stalling_server("silent") as url:
        yield url


def test_trickling_tls_handshake_hits_the_deadline() -> None:
    with stalling_server("tls-trickle") as url:
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
    return revoked_response(
        pki, cert, request_nonce(request), now=NOW, reason=x509.ReasonFlags.key_compromise
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


# --- the name lookup is inside the deadline -------------------------------------------------


@pytest.fixture
def hung_resolver() -> Iterator[tuple[Resolver, list[tuple[str, int]]]]:
    """A resolver that never answers (until the test ends); records what it was asked."""
    release = threading.Event()
    asked: list[tuple[str, int]] = []

    def resolve(host: str, port: int) -> list[AddrInfo]:
        asked.append((host, port))
        release.wait(60)
        raise socket.gaierror(socket.EAI_AGAIN, "still resolving")

    yield resolve, asked
    release.set()


@pytest.mark.timeout(30)
def test_hung_resolver_sync_gives_unknown_with_the_deadline(
    hung_resolver: tuple[Resolver, list[tuple[str, int]]], pki: TestPki, leaf: Issued
) -> None:
    resolve, asked = hung_resolver
    with pytest.raises(OcspError, match=r"did not answer within 1 s \(looking up 'ocsp\.test'"):
        post("http://ocsp.test:8080/ocsp", b"q", DEADLINE, resolve=resolve)
    assert asked == [("ocsp.test", 8080)]
    for soft in (False, True):
        res = check_revocation(
            leaf.cert,
            pki.sign_ca.cert,
            ocsp_url="http://ocsp.test/",
            ocsp_fetch=functools.partial(post, resolve=resolve),
            at=NOW,
            policy=RevocationPolicy(ocsp_timeout=DEADLINE, soft_fail=soft),
        )
        assert res.status is RevocationStatus.UNKNOWN and res.soft_failed is soft
        assert "did not answer within 1 s" in res.detail and "looking up" in res.detail


@pytest.mark.timeout(30)
def test_hung_resolver_async_gives_unknown_with_the_deadline(
    hung_resolver: tuple[Resolver, list[tuple[str, int]]], pki: TestPki, leaf: Issued
) -> None:
    resolve, asked = hung_resolver

    async def main() -> tuple[OcspError | None, RevocationResult, int]:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        t = asyncio.create_task(ticker())
        err = None
        try:
            await async_post("https://ocsp.test/", b"q", deadline=DEADLINE, resolve=resolve)
        except OcspError as exc:
            err = exc
        res = await check_revocation_async(
            leaf.cert,
            pki.sign_ca.cert,
            ocsp_url="http://ocsp.test/",
            ocsp_fetch=functools.partial(post_async, resolve=resolve),
            at=NOW,
            policy=RevocationPolicy(ocsp_timeout=DEADLINE),
        )
        done.set()
        await t
        return err, res, ticks

    # asyncio.run returns although the resolver thread is still stuck (it is not the loop's)
    err, res, ticks = asyncio.run(main())
    assert err is not None and "did not answer within 1 s (looking up 'ocsp.test'" in str(err)
    assert asked == [("ocsp.test", 443), ("ocsp.test", 80)]
    assert res.status is RevocationStatus.UNKNOWN and not res.soft_failed
    assert "did not answer within 1 s" in res.detail and "looking up" in res.detail
    assert ticks >= 10, ticks  # the loop kept running while the name was being looked up


def test_the_injected_resolver_decides_where_to_connect(pki: TestPki, leaf: Issued) -> None:
    """The resolver's answer is what is connected to (sync and async); its failure is a
    clear OcspError, an IP literal is never looked up."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = srv.getsockname()[1]

    def serve() -> None:
        for _ in range(2):
            c, _ = srv.accept()
            c.recv(65536)
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
            c.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    asked: list[tuple[str, int]] = []

    def to_local(host: str, port: int) -> list[AddrInfo]:
        asked.append((host, port))
        return socket.getaddrinfo("127.0.0.1", port, type=socket.SOCK_STREAM)

    url = f"http://responder.test:{port}/"
    try:
        assert post(url, b"q", 5, resolve=to_local) == b"hello"
        assert asyncio.run(post_async(url, b"q", 5, resolve=to_local)) == b"hello"
    finally:
        t.join(5)
        srv.close()
    assert asked == [("responder.test", port)] * 2

    def fails(host: str, port: int) -> list[AddrInfo]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(OcspError, match=r"cannot resolve 'nowhere\.test'"):
        post("http://nowhere.test/", b"q", 5, resolve=fails)
    with pytest.raises(OcspError, match=r"cannot resolve 'nowhere\.test'"):
        asyncio.run(post_async("http://nowhere.test/", b"q", 5, resolve=fails))

    def never(host: str, port: int) -> list[AddrInfo]:
        raise AssertionError("an IP literal was looked up")

    with pytest.raises(OcspError, match="cannot reach"):
        post(f"http://127.0.0.1:{free_port()}/", b"q", 5, resolve=never)
    with pytest.raises(OcspError, match="cannot reach"):
        asyncio.run(post_async(f"http://127.0.0.1:{free_port()}/", b"q", 5, resolve=never))
