"""OCSP: build a request with a nonce, POST it, and trust the answer only after checking it.

Accepted signers: the issuing CA itself, or a delegated responder certificate issued by that
CA with id-kp-OCSPSigning, valid at the time. The nonce must come back unchanged, and
thisUpdate/nextUpdate must bracket the time within the clock-skew tolerance.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from jpki.errors import OcspError, UsageError
from jpki.revocation.crl import CertLike, as_x509
from jpki.revocation.index import RevocationReason, RevokedEntry, expect, read_header
from jpki.revocation.results import RevocationResult, RevocationStatus, result_from_entry

if TYPE_CHECKING:
    import asyncio

# asyncio and ssl are imported where used: importing jpki.revocation (every CRL check, the
# memory benchmark) should not pay for them.

MAX_RESPONSE = 1 << 20  # an OCSP response is a few KB; refuse to buffer more


def build_request(cert: CertLike, issuer: CertLike, nonce: bytes | None = None) -> bytes:
    """DER OCSPRequest for ``cert`` (SHA-1 CertID, as every responder understands)."""
    b = ocsp.OCSPRequestBuilder().add_certificate(
        as_x509(cert),
        as_x509(issuer),
        hashes.SHA1(),  # noqa: S303 - CertID hash, RFC 6960 default; not a signature
    )
    if nonce is not None:
        b = b.add_extension(x509.OCSPNonce(nonce), critical=False)
    return b.build().public_bytes(serialization.Encoding.DER)


Fetch = Callable[[str, bytes, float], bytes]
"""``(url, DER request, deadline in seconds) -> DER response``; raises OcspError."""
AsyncFetch = Callable[[str, bytes, float], Awaitable[bytes]]


@dataclass(frozen=True)
class _Target:
    tls: bool
    host: str
    port: int
    path: str


def _target(url: str) -> _Target:
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"OCSP URL must be http(s): {url!r}")
    u = urllib.parse.urlsplit(url)
    if not u.hostname:
        raise UsageError(f"OCSP URL has no host: {url!r}")
    try:
        port = u.port or (443 if u.scheme == "https" else 80)
    except ValueError:
        raise UsageError(f"bad port in OCSP URL {url!r}") from None
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    return _Target(u.scheme == "https", u.hostname, port, path)


def _request_bytes(t: _Target, body: bytes) -> bytes:
    host = t.host if ":" not in t.host else f"[{t.host}]"
    head = (
        f"POST {t.path} HTTP/1.1\r\nHost: {host}:{t.port}\r\n"
        "Content-Type: application/ocsp-request\r\nAccept: application/ocsp-response\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class _Response:
    """Incremental HTTP/1.x response parser: feed bytes until ``done``."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.status: int | None = None
        self.length: int | None = None
        self.chunked = False
        self.body_start = 0

    def feed(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) > MAX_RESPONSE + 16384:
            raise OcspError("OCSP response too large")
        if self.status is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            self._head(bytes(self.buf[:end]).decode("latin-1"))
            self.body_start = end + 4

    def _head(self, text: str) -> None:
        lines = text.split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise OcspError("OCSP responder sent a malformed HTTP response")
        self.status = int(parts[1])
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "content-length":
                if not value.isdigit():
                    raise OcspError("OCSP responder sent a bad Content-Length")
                self.length = int(value)
                if self.length > MAX_RESPONSE:
                    raise OcspError("OCSP response too large")
            elif name == "transfer-encoding" and "chunked" in value.lower():
                self.chunked = True

    @property
    def done(self) -> bool:
        if self.status is None:
            return False
        if self.length is not None and not self.chunked:
            return len(self.buf) - self.body_start >= self.length
        if self.chunked:
            return self._dechunk() is not None
        return False  # read to EOF

    def _dechunk(self) -> bytes | None:
        out = bytearray()
        p = self.body_start
        buf = self.buf
        while True:
            eol = buf.find(b"\r\n", p)
            if eol < 0:
                return None
            size_txt = bytes(buf[p:eol]).split(b";")[0].strip()
            try:
                size = int(size_txt, 16)
            except ValueError:
                raise OcspError("OCSP responder sent bad chunked encoding") from None
            if size == 0:
                return bytes(out)
            if eol + 2 + size + 2 > len(buf):
                return None
            out += buf[eol + 2 : eol + 2 + size]
            p = eol + 2 + size + 2

    def body(self, eof: bool) -> bytes:
        if self.status is None:
            raise OcspError("OCSP responder closed the connection without an answer")
        if not 200 <= self.status < 300:
            raise OcspError(f"OCSP responder answered HTTP {self.status}")
        if self.chunked:
            data = self._dechunk()
            if data is None:
                raise OcspError("OCSP response cut short")
            return data
        data = bytes(self.buf[self.body_start :])
        if self.length is not None:
            if len(data) < self.length:
                raise OcspError("OCSP response cut short")
            data = data[: self.length]
        if len(data) > MAX_RESPONSE:
            raise OcspError("OCSP response too large")
        return data


def _late(timeout: float) -> OcspError:
    return OcspError(f"OCSP responder did not answer within {timeout:g} s")


AddrInfo = tuple[int, int, int, str, tuple[Any, ...]]
Resolver = Callable[[str, int], Sequence[AddrInfo]]
"""``(host, port) -> getaddrinfo() entries``: how a responder's name becomes addresses."""


def getaddrinfo(host: str, port: int) -> Sequence[AddrInfo]:
    """The default :data:`Resolver`: the system resolver, TCP addresses only."""
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)


def _numeric(host: str, port: int) -> Sequence[AddrInfo] | None:
    """The address of an IP literal (nothing to look up), else None."""
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except (OSError, UnicodeError, ValueError):
        return None


def _start_resolving(
    resolve: Resolver, host: str, port: int, done: Callable[[list[AddrInfo] | Exception], None]
) -> None:
    """Run ``resolve`` in a daemon thread and hand its answer (or OSError) to ``done``.

    getaddrinfo cannot be interrupted: a hung resolver keeps its thread, never the caller
    (a daemon thread, so it does not hold up interpreter exit either).
    """

    def run() -> None:
        try:
            answer: list[AddrInfo] | Exception = list(resolve(host, port))
        except Exception as exc:  # OSError: cannot resolve; anything else is re-raised
            answer = exc
        done(answer)

    threading.Thread(target=run, name=f"jpki-ocsp-resolve {host}", daemon=True).start()


def _addresses(answer: list[AddrInfo] | Exception, host: str) -> list[AddrInfo]:
    if isinstance(answer, OSError):
        why = getattr(answer, "strerror", None) or answer
        raise OcspError(f"cannot reach OCSP responder: cannot resolve {host!r}: {why}")
    if isinstance(answer, Exception):
        raise answer
    if not answer:
        raise OcspError(f"cannot reach OCSP responder: {host!r} has no address")
    return answer


def _resolve_within(
    resolve: Resolver, t: _Target, wait: float, timeout: float
) -> Sequence[AddrInfo]:
    """The responder's addresses, looked up within ``wait`` seconds (the deadline's rest)."""
    numeric = _numeric(t.host, t.port)
    if numeric:
        return numeric
    box: list[list[AddrInfo] | Exception] = []
    ready = threading.Event()

    def done(answer: list[AddrInfo] | Exception) -> None:
        box.append(answer)
        ready.set()

    _start_resolving(resolve, t.host, t.port, done)
    if not ready.wait(wait):
        raise _late_name(timeout, t.host)
    return _addresses(box[0], t.host)


def _late_name(timeout: float, host: str) -> OcspError:
    return OcspError(
        f"OCSP responder did not answer within {timeout:g} s (looking up {host!r} took too long)"
    )


def _connect(addrs: Sequence[AddrInfo], left: Callable[[], float]) -> socket.socket:
    """A TCP connection to the first address that accepts, within the deadline."""
    last: OSError | None = None
    for family, kind, proto, _name, addr in addrs:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(left())
            sock.connect(addr)
            return sock
        except TimeoutError:
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            last = exc
        except BaseException:
            sock.close()
            raise
    assert last is not None
    raise last


def post(url: str, body: bytes, timeout: float, *, resolve: Resolver | None = None) -> bytes:
    """HTTP POST with ONE deadline for name lookup + connect + send + receive (a hung
    resolver, a trickling or silent responder cannot stretch it); any network failure is an
    OcspError. ``resolve`` replaces the system resolver (:data:`Resolver`)."""
    import ssl

    t = _target(url)
    deadline = time.monotonic() + timeout

    def left() -> float:
        r = deadline - time.monotonic()
        if r <= 0:
            raise _late(timeout)
        return r

    addrs = _resolve_within(resolve or getaddrinfo, t, left(), timeout)
    try:
        sock = _connect(addrs, left)
    except TimeoutError:
        raise _late(timeout) from None
    except OSError as exc:
        raise OcspError(f"cannot reach OCSP responder: {exc.strerror or exc}") from None
    # Per-operation timeouts bound plain TCP reads; a TLS record that trickles in could still
    # keep one read busy, so a watchdog also shuts the socket down at the deadline.
    current = [sock]  # the TLS wrapper takes over the descriptor: shut that one down
    watchdog = threading.Timer(max(deadline - time.monotonic(), 0.0), _shut, (current,))
    watchdog.daemon = True
    watchdog.start()
    try:
        if t.tls:
            sock.settimeout(left())
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=t.host)
            current[0] = sock
        data = memoryview(_request_bytes(t, body))
        while data:
            sock.settimeout(left())
            n = sock.send(data)
            data = data[n:]
        resp = _Response()
        while not resp.done:
            sock.settimeout(left())
            chunk = sock.recv(65536)
            if not chunk:
                left()  # closed by the watchdog: late, not cut short
                return resp.body(eof=True)
            resp.feed(chunk)
        return resp.body(eof=False)
    except TimeoutError:
        raise _late(timeout) from None
    except ssl.SSLError as exc:
        left()
        raise OcspError(f"TLS with the OCSP responder failed: {exc.reason or exc}") from None
    except OSError as exc:
        left()
        raise OcspError(f"OCSP responder connection failed: {exc.strerror or exc}") from None
    finally:
        watchdog.cancel()
        sock.close()


def _shut(current: list[socket.socket]) -> None:
    with contextlib.suppress(OSError):
        current[0].shutdown(socket.SHUT_RDWR)


async def _resolve_async(resolve: Resolver, t: _Target) -> Sequence[AddrInfo]:
    """The responder's addresses without blocking the loop; cancellable (the caller's
    deadline), unlike ``loop.getaddrinfo`` whose executor thread ``asyncio.run`` waits for."""
    import asyncio

    numeric = _numeric(t.host, t.port)
    if numeric:
        return numeric
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[list[AddrInfo] | Exception] = loop.create_future()

    def settle(answer: list[AddrInfo] | Exception) -> None:
        if not fut.done():
            fut.set_result(answer)

    def done(answer: list[AddrInfo] | Exception) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
            loop.call_soon_threadsafe(settle, answer)

    _start_resolving(resolve, t.host, t.port, done)
    return _addresses(await fut, t.host)


async def post_async(
    url: str, body: bytes, timeout: float, *, resolve: Resolver | None = None
) -> bytes:
    """:func:`post` for asyncio: the same single deadline (name lookup included), never
    blocking the event loop."""
    import asyncio
    import ssl

    t = _target(url)
    loop = asyncio.get_running_loop()
    writer: asyncio.StreamWriter | None = None
    looked_up = False
    try:
        async with asyncio.timeout(timeout):
            addrs = await _resolve_async(resolve or getaddrinfo, t)
            looked_up = True
            last: OSError | None = None
            for family, kind, proto, _name, addr in addrs:
                sock = socket.socket(family, kind, proto)
                sock.setblocking(False)
                try:
                    await loop.sock_connect(sock, addr)
                except OSError as exc:
                    sock.close()
                    last = exc
                    continue
                except BaseException:
                    sock.close()
                    raise
                break
            else:
                assert last is not None
                raise OcspError(f"cannot reach OCSP responder: {last.strerror or last}")
            try:
                reader, writer = await asyncio.open_connection(
                    sock=sock,
                    ssl=ssl.create_default_context() if t.tls else None,
                    server_hostname=t.host if t.tls else None,
                )
            except BaseException:
                sock.close()
                raise
            writer.write(_request_bytes(t, body))
            await writer.drain()
            resp = _Response()
            while not resp.done:
                chunk = await reader.read(65536)
                if not chunk:
                    return resp.body(eof=True)
                resp.feed(chunk)
            return resp.body(eof=False)
    except TimeoutError:
        raise (_late(timeout) if looked_up else _late_name(timeout, t.host)) from None
    except ssl.SSLError as exc:
        raise OcspError(f"TLS with the OCSP responder failed: {exc.reason or exc}") from None
    except OSError as exc:
        raise OcspError(f"OCSP responder connection failed: {exc.strerror or exc}") from None
    finally:
        if writer is not None:
            writer.close()


def _key_hash(cert: x509.Certificate, alg: hashes.HashAlgorithm) -> bytes:
    # RFC 6960: hash of the subjectPublicKey BIT STRING value (no tag/length, no unused-bits).
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    buf = memoryview(spki)
    s, e = expect(buf, 0, len(buf), 0x30, "SubjectPublicKeyInfo")
    _, _, p = read_header(buf, s, e)
    bs, be = expect(buf, p, e, 0x03, "subjectPublicKey")
    return hashlib.new(alg.name, bytes(buf[bs + 1 : be])).digest()


def _verify_sig(
    signer: x509.Certificate, sig: bytes, data: bytes, alg: hashes.HashAlgorithm | None
) -> bool:
    key = signer.public_key()
    if alg is None:
        return False
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(sig, data, padding.PKCS1v15(), alg)
            return True
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sig, data, ec.ECDSA(alg))
            return True
    except InvalidSignature:
        return False
    return False


def _responder_matches(resp: ocsp.OCSPResponse, cert: x509.Certificate) -> bool:
    if resp.responder_key_hash is not None:
        return resp.responder_key_hash == _key_hash(cert, hashes.SHA1())  # noqa: S303
    return resp.responder_name == cert.subject


def _find_signer(
    resp: ocsp.OCSPResponse, issuer: x509.Certificate, at: datetime
) -> x509.Certificate:
    if _responder_matches(resp, issuer):
        return issuer
    for cand in resp.certificates:
        if not _responder_matches(resp, cand):
            continue
        if cand.issuer != issuer.subject:
            raise OcspError("delegated OCSP responder certificate not issued by the CA")
        try:
            cand.verify_directly_issued_by(issuer)
        except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
            raise OcspError("delegated OCSP responder certificate not signed by the CA") from None
        try:
            eku = cand.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            eku = None
        if eku is None or ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
            raise OcspError("delegated OCSP responder lacks id-kp-OCSPSigning")
        if not cand.not_valid_before_utc <= at <= cand.not_valid_after_utc:
            raise OcspError("delegated OCSP responder certificate not valid at the time")
        return cand
    raise OcspError("OCSP response not signed by the CA or an authorised responder")


def parse_response(
    data: bytes,
    cert: CertLike,
    issuer: CertLike,
    *,
    at: datetime,
    nonce: bytes | None,
    skew: timedelta = timedelta(minutes=5),
    source: str = "ocsp",
) -> RevocationResult:
    """Verify a DER OCSPResponse for ``cert``; raise OcspError for anything untrustworthy."""
    c, ca = as_x509(cert), as_x509(issuer)
    try:
        resp = ocsp.load_der_ocsp_response(data)
    except ValueError as exc:
        raise OcspError(f"malformed OCSP response: {exc}") from None
    if resp.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise OcspError(f"OCSP responder refused: {resp.response_status.name.lower()}")
    try:
        signer = _find_signer(resp, ca, at)
        if not _verify_sig(
            signer, resp.signature, resp.tbs_response_bytes, resp.signature_hash_algorithm
        ):
            raise OcspError("OCSP response signature does not verify")
        if nonce is not None:
            try:
                got = resp.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
            except x509.ExtensionNotFound:
                raise OcspError("OCSP response carries no nonce") from None
            if got != nonce:
                raise OcspError("OCSP nonce mismatch (replayed or misrouted response)")
        single = None
        for sr in resp.responses:
            if sr.serial_number == c.serial_number and sr.issuer_key_hash == _key_hash(
                ca, sr.hash_algorithm
            ):
                single = sr
                break
        if single is None:
            raise OcspError("OCSP response does not cover the certificate asked about")
        this_update = single.this_update_utc
        next_update = single.next_update_utc
        status = single.certificate_status
        reason_flag = single.revocation_reason if status is ocsp.OCSPCertStatus.REVOKED else None
        revoked_at = single.revocation_time_utc if status is ocsp.OCSPCertStatus.REVOKED else None
    # KeyError / UnsupportedGeneralNameType: cryptography decoding a malformed responder Name
    # or extension (found by tests/fuzz/fuzz_ocsp).
    except (
        ValueError,
        TypeError,
        KeyError,
        UnsupportedAlgorithm,
        x509.UnsupportedGeneralNameType,
    ) as exc:
        raise OcspError(f"malformed OCSP response: {exc!r}") from None
    if this_update > at + skew:
        raise OcspError(f"OCSP response thisUpdate {this_update.isoformat()} is in the future")
    if next_update is not None and next_update < at - skew:
        raise OcspError(f"OCSP response expired (nextUpdate {next_update.isoformat()})")
    if next_update is None and this_update < at - skew and nonce is None:
        raise OcspError("OCSP response has no nextUpdate and is not fresh")
    if status is ocsp.OCSPCertStatus.UNKNOWN:
        return RevocationResult(
            RevocationStatus.UNKNOWN, source=source, detail="responder: unknown"
        )
    if status is ocsp.OCSPCertStatus.GOOD:
        return RevocationResult(RevocationStatus.GOOD, source=source, detail="responder: good")
    assert revoked_at is not None
    reason = RevocationReason(reason_flag.value) if reason_flag is not None else None
    return result_from_entry(RevokedEntry(c.serial_number, revoked_at, reason), at, source)


def check_ocsp(
    cert: CertLike,
    issuer: CertLike,
    url: str,
    *,
    at: datetime,
    timeout: float = 10.0,
    skew: timedelta = timedelta(minutes=5),
    fetch: Fetch | None = None,
) -> RevocationResult:
    """Ask ``url`` about ``cert`` with a fresh nonce and return the verified answer.

    ``timeout`` is the whole request's deadline; ``fetch`` replaces the HTTP POST.
    """
    nonce = os.urandom(16)
    data = (fetch or post)(url, build_request(cert, issuer, nonce), timeout)
    return parse_response(data, cert, issuer, at=at, nonce=nonce, skew=skew, source=f"ocsp:{url}")


async def check_ocsp_async(
    cert: CertLike,
    issuer: CertLike,
    url: str,
    *,
    at: datetime,
    timeout: float = 10.0,
    skew: timedelta = timedelta(minutes=5),
    fetch: AsyncFetch | None = None,
) -> RevocationResult:
    """:func:`check_ocsp` for asyncio: the network wait never blocks the event loop, and the
    answer's checks (signatures) run in a worker thread."""
    import asyncio

    nonce = os.urandom(16)
    data = await (fetch or post_async)(url, build_request(cert, issuer, nonce), timeout)
    return await asyncio.to_thread(
        parse_response, data, cert, issuer, at=at, nonce=nonce, skew=skew, source=f"ocsp:{url}"
    )


class OcspSource:
    """An OCSP responder as a :class:`~jpki.revocation.results.RevocationSource`.

    A network failure, a late or untrustworthy answer is UNKNOWN (raised as OcspError, which
    the policy turns into UNKNOWN); ``fetch`` / ``fetch_async`` are injectable for tests and
    other transports. :meth:`status_async` is the asyncio form.
    """

    source_name = "ocsp"

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        skew: timedelta = timedelta(minutes=5),
        fetch: Fetch | None = None,
        fetch_async: AsyncFetch | None = None,
    ) -> None:
        _target(url)  # a bad URL is a usage error now, not at the first check
        self.url = url
        self.timeout = timeout
        self.skew = skew
        self.fetch = fetch
        self.fetch_async = fetch_async

    def status(
        self,
        cert: x509.Certificate,
        issuer: x509.Certificate,
        *,
        at: datetime,
        max_age: timedelta | None = None,
    ) -> RevocationResult:
        """Ask the responder about ``cert`` at ``at`` (``max_age`` unused: OCSP has its own)."""
        return check_ocsp(
            cert, issuer, self.url, at=at, timeout=self.timeout, skew=self.skew, fetch=self.fetch
        )

    async def status_async(
        self,
        cert: x509.Certificate,
        issuer: x509.Certificate,
        *,
        at: datetime,
        max_age: timedelta | None = None,
    ) -> RevocationResult:
        """:meth:`status` on asyncio (the same single deadline; the loop never blocks)."""
        return await check_ocsp_async(
            cert,
            issuer,
            self.url,
            at=at,
            timeout=self.timeout,
            skew=self.skew,
            fetch=self.fetch_async,
        )
