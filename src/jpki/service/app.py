"""The ASGI app of ``jpki serve`` (FastAPI): versioned JSON API, login page, health, metrics.

Request path of a verification: authenticate the API key (401 leaves only a log line on the
``jpki.service.access`` logger), rate-limit it fleet-wide (429: one token bucket per key in
the service database), decode and check the input (400 with a
reason), consume the challenge fleet-wide for logins, run the CPU-bound check in the process
pool (the event loop keeps answering /healthz; revocation comes from the revocation store,
then OCSP), append the audit record and only then answer.
If the record cannot be committed the answer is 503: never a verdict without its record.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import multiprocessing
import secrets
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jpki import __version__
from jpki.errors import ChallengeError, JpkiError
from jpki.service import adapter, audit, jobs, state
from jpki.service.adapter import RevocationStore, StoredCrl
from jpki.service.audit import b64
from jpki.service.crlwatch import CrlWatcher
from jpki.service.db import Database, ServiceDbError, Tx
from jpki.service.metrics import Metrics
from jpki.service.page import LOGIN_PAGE, qr_svg

log = logging.getLogger("jpki.service")
access_log = logging.getLogger("jpki.service.access")

PAGE_KEY_ID = "login-page"


@dataclass(frozen=True)
class ServiceConfig:
    """Everything ``jpki serve`` decides at start-up."""

    db_url: str
    anchors: tuple[bytes, ...]
    crl_dir: Path | None = None
    workers: int = 2
    soft_fail: bool = False
    max_body: int = 1 << 20
    challenge_ttl: timedelta = timedelta(minutes=5)
    crl_poll_seconds: float = 2.0
    crl_refresh_seconds: float = 1.0
    #: OCSP, asked when the revocation store cannot tell: this responder for every
    #: certificate, else (``ocsp_aia``) the certificate's own OCSP AIA.
    ocsp_url: str | None = None
    ocsp_aia: bool = True
    ocsp_timeout: float = 10.0
    page_rate_per_minute: int = 120
    #: Niceness added to the verification workers, so the event loop wins the cores.
    worker_nice: int = 5
    key_cache_seconds: float = 5.0


# --- request bodies -------------------------------------------------------------------------


class LoginIn(BaseModel):
    """POST /v1/login body: the challenge answered by the card."""

    challenge_id: str = Field(max_length=100)
    certificate: str = Field(description="authentication certificate, base64 DER or PEM")
    signature: str = Field(description="base64 PKCS#1 v1.5 signature over the nonce")


class PageLoginIn(BaseModel):
    """The login page's answer: certificate and signature for its challenge."""

    certificate: str
    signature: str


class SignatureIn(BaseModel):
    """POST /v1/verify/signature body: a raw signature or a CMS blob."""

    certificate: str | None = Field(None, description="signer certificate (raw mode)")
    signature: str | None = Field(None, description="base64 signature (raw mode)")
    data: str | None = Field(None, description="base64 signed data (raw mode)")
    digest: str | None = Field(None, description="hex or base64 digest of the data (raw mode)")
    hash: str = "sha256"
    purpose: str = Field("sign", pattern="^(sign|login|any)$")
    cms: str | None = Field(None, description="base64 DER or PEM CMS SignedData (CMS mode)")
    content: str | None = Field(None, description="base64 content of a detached CMS")


class DocumentIn(BaseModel):
    """Request body of ``POST /v1/documents``: a signed PDF."""

    pdf: str = Field(description="base64 of the signed PDF")


class StatusIn(BaseModel):
    """POST /v1/status body: certificates whose revocation status is asked."""

    certificates: list[str] = Field(min_length=1, max_length=1000)


class ChallengeOut(BaseModel):
    """A new login challenge: its id, nonce and expiry."""

    id: str
    nonce: str
    expires_at: str


class CrlOut(BaseModel):
    """One current CRL of the revocation store (one per issuer key, scope and full/delta)."""

    issuer_key: str = Field(description="SHA-256 (hex) of the CA public key that signed it")
    issuer: str
    crl_id: str
    delta: bool
    number: int | None
    base_number: int | None
    this_update: str
    next_update: str | None
    entries: int
    age_seconds: float
    stale: bool


class OcspOut(BaseModel):
    """When the service asks OCSP (after the store could not tell)."""

    url: str | None = Field(description="configured responder, used for every certificate")
    aia: bool = Field(description="else the certificate's own OCSP AIA")
    timeout: float = Field(description="total deadline of one request, seconds")


class RevocationOut(BaseModel):
    """GET /v1/revocation: the revocation data the answers come from."""

    hard_fail: bool
    crls: list[CrlOut]
    stale: bool = Field(description="some current CRL is past its nextUpdate")
    ocsp: OcspOut


# --- helpers --------------------------------------------------------------------------------


def _bad(reason: str) -> HTTPException:
    return HTTPException(status_code=400, detail=reason)


def _b64(name: str, value: str) -> bytes:
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise _bad(f"{name} is not base64") from None


def _cert(name: str, value: str) -> bytes:
    raw = value.encode("utf-8", "replace") if value.lstrip().startswith("-----BEGIN") else None
    data = raw if raw is not None else _b64(name, value)
    try:
        return adapter.certificate_der(data)
    except JpkiError as exc:
        raise _bad(f"{name}: {exc}") from None


def _digest(value: str) -> bytes:
    try:
        return bytes.fromhex(value)
    except ValueError:
        return _b64("digest", value)


@dataclass
class _Runtime:
    config: ServiceConfig
    db: Database
    metrics: Metrics
    anchor_fps: list[str]
    pool: ProcessPoolExecutor | None = None
    pool_lock: threading.Lock = field(default_factory=threading.Lock)
    store: RevocationStore | None = None
    crls: list[StoredCrl] = field(default_factory=list)
    issuers: dict[bytes, str] = field(default_factory=dict)  # issuer key -> CA name
    crls_at: float = 0.0
    keys: dict[str, tuple[float, state.ApiKey | None]] = field(default_factory=dict)
    watcher: CrlWatcher | None = None

    @property
    def ocsp(self) -> adapter.OcspConfig:
        c = self.config
        return adapter.OcspConfig(c.ocsp_url, c.ocsp_aia, c.ocsp_timeout)

    def new_pool(self) -> ProcessPoolExecutor:
        # spawn: the parent runs threads and an event loop; forking those is unsafe.
        return ProcessPoolExecutor(
            max_workers=self.config.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=jobs.worker_init,
            initargs=(self.config.db_url, list(self.config.anchors), self.config.worker_nice),
        )

    def replace_pool(self, broken: ProcessPoolExecutor) -> None:
        with self.pool_lock:
            if self.pool is broken:
                log.warning("a verification worker died; starting a new process pool")
                broken.shutdown(wait=False, cancel_futures=True)
                self.pool = self.new_pool()

    async def current_crls(self, *, fresh: bool = False) -> list[StoredCrl]:
        """The revocation store's current CRLs (re-read at most every crl_refresh_seconds)."""
        now = time.monotonic()
        if fresh or now - self.crls_at > self.config.crl_refresh_seconds:
            assert self.store is not None
            self.crls, self.issuers = await asyncio.to_thread(adapter.current_crls, self.store)
            self.crls_at = now
        return self.crls

    def crl_json(self, c: StoredCrl, at: datetime) -> dict[str, Any]:
        """One current CRL for /v1/revocation: issuer key, number, dates, staleness."""
        return {
            "issuer_key": c.issuer_key.hex(),
            "issuer": self.issuers.get(c.issuer_key, ""),
            "crl_id": c.crl_id.hex(),
            "delta": c.is_delta,
            "number": c.number,
            "base_number": c.base_number,
            "this_update": c.this_update.isoformat(),
            "next_update": c.next_update.isoformat() if c.next_update else None,
            "entries": c.entries,
            "age_seconds": round((at - c.this_update).total_seconds(), 3),
            "stale": _stale(c, at),
        }


def _stale(c: StoredCrl, at: datetime) -> bool:
    return c.next_update is None or at >= c.next_update


def _rt(request: Request) -> _Runtime:
    rt: _Runtime = request.app.state.rt
    return rt


async def api_key(request: Request) -> state.ApiKey:
    """The caller's live API key (``X-API-Key`` or ``Authorization: Bearer``), else 401/429."""
    rt = _rt(request)
    presented = request.headers.get("x-api-key") or ""
    auth = request.headers.get("authorization") or ""
    if not presented and auth.lower().startswith("bearer "):
        presented = auth[7:].strip()
    key: state.ApiKey | None = None
    if presented:
        digest = hashlib.sha256(presented.encode()).hexdigest()
        cached = rt.keys.get(digest)
        if cached is not None and time.monotonic() - cached[0] < rt.config.key_cache_seconds:
            key = cached[1]
        else:
            key = await asyncio.to_thread(state.find_key, rt.db, presented)
            rt.keys[digest] = (time.monotonic(), key)
    client = request.client.host if request.client else "-"
    if key is None:
        # The one trace an unauthenticated request leaves: a log line, no record.
        access_log.warning(
            "401 %s %s from %s (%s)",
            request.method,
            request.url.path,
            client,
            "invalid API key" if presented else "no API key",
        )
        raise HTTPException(
            status_code=401,
            detail="a valid API key is required (X-API-Key header)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    await _rate(rt, f"key:{key.id}", key.rate_per_minute)
    return key


_Key = Annotated[state.ApiKey, Depends(api_key)]


async def _rate(rt: _Runtime, bucket: str, per_minute: int) -> None:
    """429 beyond ``per_minute``: the bucket is shared by every process on the database."""
    wait = await asyncio.to_thread(state.take_token, rt.db, bucket, per_minute, time.time())
    if wait:
        raise HTTPException(
            status_code=429,
            detail="rate limit exceeded for this API key",
            headers={"Retry-After": str(max(1, round(wait)))},
        )


async def _run(rt: _Runtime, job: dict[str, Any]) -> dict[str, Any]:
    """Run a job in the pool; a worker killed mid-job costs one retry in a new pool."""
    loop = asyncio.get_running_loop()
    for attempt in (1, 2):
        pool = rt.pool
        assert pool is not None
        try:
            out = await loop.run_in_executor(pool, jobs.worker_run, job)
            out.pop("worker_pid", None)
            if "unavailable" in out:
                log.error("revocation store unavailable in a worker: %s", out["unavailable"])
                raise HTTPException(
                    status_code=503,
                    detail="the revocation store is unavailable; nothing was decided",
                )
            return out
        except BrokenProcessPool:
            rt.replace_pool(pool)
            if attempt == 2:
                break
    return {
        "result": {
            "status": "indeterminate",
            "reasons": ["the verification worker failed twice; nothing was decided"],
        },
        "revocation": [],
        "evidence": {"crls": [], "ocsp": []},
    }


async def _verify_and_record(
    request: Request,
    key_id: str,
    job: dict[str, Any],
    cert: bytes | None,
    *,
    outcome: dict[str, Any] | None = None,
    also: Callable[[Tx, int, dict[str, Any]], None] | None = None,
) -> JSONResponse:
    """Run ``job``, append its record, then answer (``cert``: the one the record sums up)."""
    rt = _rt(request)
    job = {
        **job,
        "time": datetime.now(UTC).isoformat(),
        "soft_fail": rt.config.soft_fail,
        "ocsp": rt.ocsp.to_json(),
    }
    if outcome is None:
        outcome = await _run(rt, job)
    if "error" in outcome:
        rt.metrics.inc("jpki_verdicts_total", kind=job["kind"], status="bad-input")
        raise _bad(outcome["error"])
    # The worker parses the certificate for its summary; only the refusals that never
    # reach a worker parse it here, in a thread (never on the event loop).
    summary = outcome.pop("summary", None)
    if summary is None and cert is not None:
        summary = await asyncio.to_thread(adapter.certificate_summary, cert)
    body = {
        "time": job["time"],
        "api_key_id": key_id,
        "kind": job["kind"],
        "request_sha256": request.state.body_sha256,
        "job": job,
        "certificate": summary,
        "verdict": outcome["result"],
        "revocation": outcome["revocation"],
        # What the answers rest on: the CRLs (issuer key + number) the store consulted, and
        # each OCSP exchange (request and response); `jpki audit verify` replays them.
        "evidence": outcome["evidence"],
        "anchors": rt.anchor_fps,
    }
    hook = None
    if also is not None:
        hook_fn = also

        def hook(tx: Tx, seq: int) -> None:
            hook_fn(tx, seq, outcome)

    try:
        seq, h = await asyncio.to_thread(audit.append, rt.db, body, also=hook)
    except JpkiError as exc:
        log.error("audit record not written: %s", exc)
        raise HTTPException(
            status_code=503, detail="the audit record could not be written; nothing was decided"
        ) from None
    rt.metrics.inc("jpki_verdicts_total", kind=job["kind"], status=outcome["result"]["status"])
    # A JSONResponse of the JSON-ready dict: FastAPI's own encoder (jsonable_encoder) would
    # walk it again on the event loop for nothing.
    return JSONResponse(
        {
            **outcome["result"],
            "revocation": outcome["revocation"],
            "certificate": summary,
            "record": {"seq": seq, "hash": h},
        }
    )


# --- middleware -------------------------------------------------------------------------------


class _Guard:
    """Body size limit (413), request digest, metrics, and JSON for unexpected errors."""

    def __init__(self, app: ASGIApp, max_body: int, metrics: Metrics) -> None:
        self.app, self.max_body, self.metrics = app, max_body, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}
        route = scope["path"] if scope["path"] in _PLAIN_ROUTES else _route_label(scope["path"])

        async def send_wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            length = dict(scope.get("headers") or []).get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > self.max_body):
                await _json(
                    send_wrapped, 413, {"error": "payload too large", "limit": self.max_body}
                )
                return
            chunks: list[bytes] = []
            size = 0
            more = True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_body:
                    await _json(
                        send_wrapped, 413, {"error": "payload too large", "limit": self.max_body}
                    )
                    return
                chunks.append(chunk)
                more = message.get("more_body", False)
            body = b"".join(chunks)
            scope.setdefault("state", {})["body_sha256"] = hashlib.sha256(body).hexdigest()
            sent = False

            async def replay() -> Message:
                nonlocal sent
                if not sent:
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send_wrapped)
        except Exception:
            log.exception("unexpected error on %s", scope["path"])
            if status["code"] == 500:
                await _json(send_wrapped, 500, {"error": "internal error (logged by the service)"})
        finally:
            self.metrics.inc("jpki_requests_total", route=route, code=str(status["code"]))
            self.metrics.observe(time.perf_counter() - start, route=route)


_PLAIN_ROUTES = {
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/login",
    "/login/challenges",
    "/v1/challenges",
    "/v1/logins",
    "/v1/signatures",
    "/v1/status-checks",
    "/v1/documents",
    "/v1/revocation",
}


def _route_label(path: str) -> str:
    if path.startswith("/login/c/"):
        return "/login/c/{id}/events" if path.endswith("/events") else "/login/c/{id}"
    return "other"


async def _json(
    send: Callable[[Message], Awaitable[None]], code: int, body: dict[str, Any]
) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


# --- the app -----------------------------------------------------------------------------------

_HEALTHZ = b'{"status":"ok"}'


class _ServiceApp(FastAPI):
    """FastAPI with ``GET /healthz`` answered before any middleware or routing.

    Liveness must answer within 50 ms while the loop is busy with verification requests:
    the fewer loop steps it takes, the sooner it is through (the FastAPI route stays for
    the OpenAPI schema).
    """

    metrics: Metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer ``GET /healthz`` at once; every other request goes to FastAPI."""
        if scope["type"] == "http" and scope["path"] == "/healthz" and scope["method"] == "GET":
            start = time.perf_counter()
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(_HEALTHZ)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": _HEALTHZ})
            self.metrics.inc("jpki_requests_total", route="/healthz", code="200")
            self.metrics.observe(time.perf_counter() - start, route="/healthz")
            return
        await super().__call__(scope, receive, send)


def create_app(config: ServiceConfig) -> FastAPI:
    """The ASGI app; the database, pool and CRL watcher start with its lifespan."""
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = await asyncio.to_thread(Database, config.db_url)
        fps = [hashlib.sha256(a).hexdigest() for a in config.anchors]
        await asyncio.to_thread(state.save_anchors, db, list(zip(fps, config.anchors, strict=True)))
        store = await asyncio.to_thread(RevocationStore, config.db_url)
        rt = _Runtime(config, db, metrics, fps, store=store)
        rt.pool = rt.new_pool()
        # Start every worker now (and import the verifiers there), not on the first request.
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(rt.pool, jobs.worker_ping) for _ in range(config.workers))
        )
        if config.crl_dir is not None:
            rt.watcher = CrlWatcher(db, store, config.crl_dir, config.anchors)
            await asyncio.to_thread(rt.watcher.scan)
        await rt.current_crls(fresh=True)
        app.state.rt = rt
        task = asyncio.create_task(_watch(rt, config.crl_poll_seconds)) if rt.watcher else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
            if rt.pool is not None:
                rt.pool.shutdown(wait=True, cancel_futures=True)
            store.close()
            db.close()

    app = _ServiceApp(
        title="jpki verification service",
        version=__version__,
        description="JPKI (公的個人認証) logins, signatures, status checks; all recorded.",
        lifespan=lifespan,
    )
    app.metrics = metrics
    app.add_middleware(_Guard, max_body=config.max_body, metrics=metrics)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        reasons = [
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg')}"
            for e in exc.errors()
        ]
        return JSONResponse({"error": "bad request", "reasons": reasons}, status_code=400)

    @app.exception_handler(ServiceDbError)
    async def _db_down(request: Request, exc: ServiceDbError) -> JSONResponse:
        log.error("%s", exc)
        return JSONResponse(
            {"error": "the service database is unavailable; nothing was decided"}, status_code=503
        )

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """Liveness: answered by the event loop alone."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    async def readyz(request: Request) -> JSONResponse:
        """Ready unless revocation data is missing or stale under hard-fail."""
        rt = _rt(request)
        try:
            crls = await rt.current_crls(fresh=True)
        except JpkiError as exc:
            return JSONResponse({"ready": False, "reasons": [str(exc)]}, status_code=503)
        now = datetime.now(UTC)
        reasons = []
        if not rt.config.soft_fail:
            if not crls and not rt.config.ocsp_url:
                reasons.append("no CRL loaded (hard-fail: no certificate can be good)")
            reasons += [
                f"CRL of {rt.issuers.get(c.issuer_key, c.issuer_key.hex()[:16])} #{c.number} "
                "is stale"
                for c in crls
                if _stale(c, now)
            ]
        return JSONResponse(
            {"ready": not reasons, "reasons": reasons, "hard_fail": not rt.config.soft_fail},
            status_code=200 if not reasons else 503,
        )

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    async def metrics_ep(request: Request) -> PlainTextResponse:
        rt = _rt(request)
        now = datetime.now(UTC)
        gauges: dict[str, list[tuple[dict[str, str], float]]] = {
            "jpki_crl_age_seconds": [
                (_crl_labels(rt, c), (now - c.this_update).total_seconds()) for c in rt.crls
            ],
            "jpki_crl_stale": [(_crl_labels(rt, c), float(_stale(c, now))) for c in rt.crls],
            "jpki_workers": [({}, float(rt.config.workers))],
        }
        return PlainTextResponse(
            metrics.render(gauges), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    async def _issue(rt: _Runtime, origin: str) -> tuple[str, bytes, datetime]:
        cid = secrets.token_urlsafe(18)
        nonce = secrets.token_bytes(32)
        expires = datetime.now(UTC) + rt.config.challenge_ttl
        await asyncio.to_thread(state.put_challenge, rt.db, cid, nonce, expires, origin)
        return cid, nonce, expires

    @app.post("/v1/challenges", tags=["login"], response_model=ChallengeOut)
    async def challenges(request: Request, key: _Key) -> ChallengeOut:
        """A fresh login challenge: the card signs ``nonce`` (base64) with its auth key."""
        cid, nonce, expires = await _issue(_rt(request), f"key:{key.id}")
        return ChallengeOut(id=cid, nonce=b64(nonce), expires_at=expires.isoformat())

    async def _login(
        request: Request,
        key_id: str,
        cid: str,
        origin: str,
        cert_text: str,
        sig_text: str,
    ) -> JSONResponse:
        rt = _rt(request)
        cert = _cert("certificate", cert_text)
        sig = _b64("signature", sig_text)
        job: dict[str, Any] = {
            "kind": "login",
            "challenge_id": cid,
            "certificate": b64(cert),
            "signature": b64(sig),
        }
        outcome = None
        try:
            nonce = await asyncio.to_thread(state.consume_challenge, rt.db, cid, origin)
            job["nonce"] = b64(nonce)
        except ChallengeError as exc:
            job["nonce"] = None
            outcome = {
                "result": {"status": "invalid", "reasons": [str(exc)]},
                "revocation": [],
                "evidence": {"crls": [], "ocsp": []},
            }

        def publish(tx: Tx, seq: int, out: dict[str, Any]) -> None:
            # The page learns the result in the transaction that records it.
            if origin == "page" and job["nonce"] is not None:
                res = out["result"]
                state.set_result(
                    tx,
                    cid,
                    json.dumps(
                        {
                            "status": res["status"],
                            "account_key": res.get("account_key"),
                            "reasons": res.get("reasons", []),
                            "record": seq,
                        }
                    ),
                )

        return await _verify_and_record(request, key_id, job, cert, outcome=outcome, also=publish)

    @app.post("/v1/logins", tags=["login"], response_model=dict[str, Any])
    async def logins(body: LoginIn, request: Request, key: _Key) -> JSONResponse:
        """Verify a login: consumes the challenge (once, fleet-wide), then checks the signature,
        the chain to the J-LIS authentication CA and revocation. ``account_key`` names the user."""
        return await _login(
            request, key.id, body.challenge_id, f"key:{key.id}", body.certificate, body.signature
        )

    @app.post("/v1/signatures", tags=["signatures"], response_model=dict[str, Any])
    async def signatures(body: SignatureIn, request: Request, key: _Key) -> JSONResponse:
        """A raw signature (certificate + signature + data or digest) or a CMS SignedData."""
        if body.cms is not None:
            if body.certificate or body.signature or body.data or body.digest:
                raise _bad("give either cms (and content) or the raw fields, not both")
            cms = (
                body.cms.encode()
                if body.cms.lstrip().startswith("-----")
                else _b64("cms", body.cms)
            )
            job: dict[str, Any] = {
                "kind": "cms",
                "cms": b64(cms),
                "content": b64(_b64("content", body.content)) if body.content is not None else None,
                "purpose": body.purpose,
            }
            return await _verify_and_record(request, key.id, job, None)
        if body.certificate is None or body.signature is None:
            raise _bad("raw mode needs certificate and signature (or give cms)")
        if (body.data is None) == (body.digest is None):
            raise _bad("give exactly one of data or digest")
        if body.hash not in ("sha1", "sha256", "sha384", "sha512"):
            raise _bad("hash must be sha1, sha256, sha384 or sha512")
        cert = _cert("certificate", body.certificate)
        job = {
            "kind": "signature",
            "certificate": b64(cert),
            "signature": b64(_b64("signature", body.signature)),
            "data": b64(_b64("data", body.data)) if body.data is not None else None,
            "digest": b64(_digest(body.digest)) if body.digest is not None else None,
            "hash": body.hash,
            "purpose": body.purpose,
        }
        return await _verify_and_record(request, key.id, job, cert)

    if adapter.pdf_available():

        @app.post("/v1/documents", tags=["signatures"], response_model=dict[str, Any])
        async def documents(body: DocumentIn, request: Request, key: _Key) -> JSONResponse:
            """A signed PDF: every signature (integrity, coverage, later changes, chain,
            revocation), with each signer's basic 4 information. Needs ``jpki[pdf]``."""
            pdf = _b64("pdf", body.pdf)
            if not pdf.startswith(b"%PDF-"):
                raise _bad("pdf is not a PDF file (no %PDF- header)")
            job = {"kind": "document", "pdf": b64(pdf)}
            return await _verify_and_record(request, key.id, job, None)

    @app.post("/v1/status-checks", tags=["revocation"], response_model=dict[str, Any])
    async def status_checks(body: StatusIn, request: Request, key: _Key) -> JSONResponse:
        """現況確認: each certificate good / revoked / unknown, with the reason."""
        # Up to 1000 certificates to decode and parse: in a thread, not in one loop step.
        certs = await asyncio.to_thread(
            lambda: [b64(_cert(f"certificates[{i}]", c)) for i, c in enumerate(body.certificates)]
        )
        job = {"kind": "status-check", "certificates": certs}
        return await _verify_and_record(request, key.id, job, None)

    @app.get("/v1/revocation", tags=["revocation"], response_model=RevocationOut)
    async def revocation(request: Request, key: _Key) -> dict[str, Any]:
        """The CRLs in use per issuer key: numbers, nextUpdate, age and staleness."""
        rt = _rt(request)
        crls = await rt.current_crls(fresh=True)
        now = datetime.now(UTC)
        return {
            "hard_fail": not rt.config.soft_fail,
            "crls": [rt.crl_json(c, now) for c in crls],
            "stale": any(_stale(c, now) for c in crls),
            "ocsp": rt.ocsp.to_json(),
        }

    # --- login page -----------------------------------------------------------------------

    @app.get("/login", response_class=HTMLResponse, tags=["login page"])
    async def login_page() -> HTMLResponse:
        return HTMLResponse(LOGIN_PAGE)

    @app.post("/login/challenges", tags=["login page"])
    async def page_challenge(request: Request) -> dict[str, Any]:
        """A challenge for the page (no API key: the id is the capability), QR code included."""
        rt = _rt(request)
        await _rate(
            rt,
            "page:" + (request.client.host if request.client else "-"),
            rt.config.page_rate_per_minute,
        )
        cid, _nonce, expires = await _issue(rt, "page")
        link = str(request.url_for("page_link", cid=cid))
        return {"id": cid, "link": link, "expires_at": expires.isoformat(), "qr_svg": qr_svg(link)}

    @app.get("/login/c/{cid}", name="page_link", tags=["login page"])
    async def page_link(cid: str, request: Request) -> dict[str, Any]:
        """What the card side needs (the nonce) and, once done, the result."""
        found = await asyncio.to_thread(state.page_challenge, _rt(request).db, cid)
        if found is None:
            raise HTTPException(status_code=404, detail="unknown login challenge")
        nonce, expires, used, result = found
        return {
            "id": cid,
            "nonce": b64(nonce),
            "expires_at": expires.isoformat(),
            "used": used,
            "result": json.loads(result) if result else None,
        }

    @app.post("/login/c/{cid}", tags=["login page"], response_model=dict[str, Any])
    async def page_login(cid: str, body: PageLoginIn, request: Request) -> JSONResponse:
        """The card side's answer to a page challenge (recorded like any login)."""
        rt = _rt(request)
        await _rate(
            rt,
            "page:" + (request.client.host if request.client else "-"),
            rt.config.page_rate_per_minute,
        )
        return await _login(request, PAGE_KEY_ID, cid, "page", body.certificate, body.signature)

    @app.get("/login/c/{cid}/events", tags=["login page"])
    async def page_events(cid: str, request: Request) -> StreamingResponse:
        """Server-sent events: one ``result`` event when the login is recorded."""
        rt = _rt(request)

        async def stream() -> AsyncIterator[str]:
            deadline = time.monotonic() + rt.config.challenge_ttl.total_seconds() + 5
            yield ": waiting\n\n"
            while time.monotonic() < deadline:
                if await request.is_disconnected():
                    return
                found = await asyncio.to_thread(state.page_challenge, rt.db, cid)
                if found is None:
                    yield 'event: error\ndata: {"error": "unknown login challenge"}\n\n'
                    return
                if found[3]:
                    yield f"event: result\ndata: {found[3]}\n\n"
                    return
                await asyncio.sleep(0.25)
            yield 'event: error\ndata: {"error": "challenge expired"}\n\n'

        return StreamingResponse(stream(), media_type="text/event-stream")

    return app


def _crl_labels(rt: _Runtime, c: StoredCrl) -> dict[str, str]:
    return {
        "issuer": rt.issuers.get(c.issuer_key, ""),
        "issuer_key": c.issuer_key.hex()[:16],
        "number": str(c.number),
    }


async def _watch(rt: _Runtime, every: float) -> None:
    assert rt.watcher is not None
    while True:
        await asyncio.sleep(every)
        try:
            if await asyncio.to_thread(rt.watcher.scan):
                await rt.current_crls(fresh=True)
        except Exception:  # the watcher must outlive any one bad file or database hiccup
            log.exception("CRL directory scan failed")
