"""The card side of a login against a ``jpki serve`` service (HTTP client + the JPKI AP).

:func:`login` runs the whole exchange: ask the service for a challenge (with an API key) or
read a login page's challenge (``…/login/c/ID``), read the card's authentication certificate,
read the PIN's retry counter (free) and apply the last-try guard, ask for the PIN once,
VERIFY it once, sign the nonce with the authentication key and post certificate and signature.
The PIN goes to the card only; the service receives the certificate and the signature.

:class:`ServiceClient` is the HTTP half alone (for a phone relay or a test that signs itself).
The API key is a :class:`~jpki.secret.Secret`: it shows in no repr and no log line.
"""

from __future__ import annotations

import base64
import binascii
import enum
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx

from jpki.card.jpki_ap import CertSlot, JpkiAp, KeyKind
from jpki.digestinfo import digest_info_for
from jpki.errors import JpkiError, PinBlocked, PinGuardError, TransportError, UsageError
from jpki.secret import Secret
from jpki.transport.base import Connection

#: PIN source: called once, after the challenge is in hand and the retry counter was read.
PinSource = Callable[[], Secret]

#: Longest nonce accepted from a service (ours sends 32 bytes); a signature is over its hash.
MAX_NONCE = 1024


class ServiceError(JpkiError):
    """The service refused the request or answered something unusable."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class LoginStatus(enum.StrEnum):
    """The service's verdict on a login."""

    VALID = "valid"
    INVALID = "invalid"
    INDETERMINATE = "indeterminate"


@dataclass(frozen=True)
class Challenge:
    """A challenge to answer: its id, the nonce the card signs, and where the answer goes."""

    id: str
    nonce: bytes = field(repr=False)
    expires_at: str | None
    answer_url: str
    #: A login-page challenge (the id in the URL is the capability; no API key is sent).
    page: bool = False


@dataclass(frozen=True)
class LoginResult:
    """The service's answer to a login, with the audit record it was committed under."""

    status: LoginStatus
    reasons: tuple[str, ...]
    account_key: str | None
    record_seq: int | None
    record_hash: str | None
    #: The service's JSON answer as received (for ``--json`` and callers wanting more).
    answer: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, answer: Mapping[str, Any]) -> LoginResult:
        """Read a ``/v1/logins`` answer; ``ServiceError`` unless its status is a known one."""
        raw = answer.get("status")
        try:
            status = LoginStatus(str(raw))
        except ValueError:
            raise ServiceError(f"the service's answer has no usable status ({raw!r})") from None
        reasons = answer.get("reasons", [])
        if not isinstance(reasons, list):
            raise ServiceError("the service's answer has no usable reasons")
        account = answer.get("account_key")
        record = answer.get("record") or {}
        if not isinstance(record, dict):
            raise ServiceError("the service's answer has no usable record")
        seq, digest = record.get("seq"), record.get("hash")
        return cls(
            status=status,
            reasons=tuple(str(r) for r in reasons),
            account_key=str(account) if account else None,
            record_seq=seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
            record_hash=str(digest) if digest else None,
            answer=dict(answer),
        )


def check_url(url: str) -> urllib.parse.SplitResult:
    """``url`` split, or ``UsageError`` unless it is an http(s) URL with a host."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"not an http(s) URL: {url!r}")
    return parts


class ServiceClient:
    """HTTP client of one ``jpki serve`` service (a base URL or a login-page link)."""

    def __init__(
        self,
        url: str,
        *,
        api_key: Secret | str | None = None,
        timeout: float = 30.0,
        http: httpx.Client | None = None,
    ) -> None:
        parts = check_url(url)
        self.url = url
        #: ``…/login/c/ID``: the page's challenge, answered at the same URL without a key.
        self.page = "/login/c/" in parts.path
        self._key = Secret(api_key) if isinstance(api_key, str) else api_key
        self._own = http is None
        self._http = http if http is not None else httpx.Client(timeout=timeout)

    def __repr__(self) -> str:
        key = ", api_key=<redacted>" if self._key is not None else ""
        return f"ServiceClient({self.url!r}{key})"

    def close(self) -> None:
        """Close the HTTP connections (not a client passed in by the caller)."""
        if self._own:
            self._http.close()

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _request(self, url: str, body: dict[str, Any] | None, *, key: bool) -> dict[str, Any]:
        check_url(url)
        headers = {"Accept": "application/json"}
        if key and self._key is not None:
            headers["X-API-Key"] = self._key.reveal().decode("ascii")
        try:
            if body is None:
                resp = self._http.get(url, headers=headers)
            else:
                resp = self._http.post(url, headers=headers, json=body)
        except httpx.HTTPError as exc:
            # The message names the URL and the failure, never the request headers (the key).
            raise TransportError(
                f"cannot reach the service at {url}: {type(exc).__name__}: {exc}"
            ) from None
        try:
            out = resp.json()
        except ValueError:
            out = None
        if resp.status_code != 200:
            why = out.get("error") if isinstance(out, dict) else None
            raise ServiceError(
                f"service answered {resp.status_code}: {why or resp.reason_phrase}",
                resp.status_code,
            )
        if not isinstance(out, dict):
            raise ServiceError("the service's answer is not a JSON object")
        return out

    def challenge(self) -> Challenge:
        """A new challenge (``POST /v1/challenges`` with the key), or the page link's own."""
        if self.page:
            got = self._request(self.url, None, key=False)
            answer_url = self.url
        else:
            base = self.url.rstrip("/")
            got = self._request(base + "/v1/challenges", {}, key=True)
            answer_url = base + "/v1/logins"
        cid = got.get("id")
        if not isinstance(cid, str) or not cid:
            raise ServiceError("the service's challenge has no usable id")
        try:
            nonce = base64.b64decode(str(got["nonce"]), validate=True)
        except (KeyError, ValueError, binascii.Error):
            raise ServiceError("the service's challenge has no usable nonce") from None
        if not 0 < len(nonce) <= MAX_NONCE:
            raise ServiceError(f"the service's nonce has an unusable length ({len(nonce)} bytes)")
        expires = got.get("expires_at")
        return Challenge(cid, nonce, str(expires) if expires else None, answer_url, page=self.page)

    def submit(self, challenge: Challenge, certificate: bytes, signature: bytes) -> LoginResult:
        """Post the certificate and the signature over ``challenge.nonce``; the verdict."""
        body = {
            "certificate": base64.b64encode(certificate).decode(),
            "signature": base64.b64encode(signature).decode(),
        }
        if not challenge.page:
            body["challenge_id"] = challenge.id
        got = self._request(challenge.answer_url, body, key=not challenge.page)
        return LoginResult.from_json(got)


def sign_nonce(
    ap: JpkiAp, nonce: bytes, pin: PinSource, *, force: bool = False
) -> tuple[bytes, bytes]:
    """(auth certificate, PKCS#1 v1.5 SHA-256 signature over ``nonce``) from the card.

    The retry counter is read first (free): a blocked PIN or, unless ``force``, one try left
    stops here before ``pin`` is asked for; then one VERIFY, never retried.
    """
    certificate = ap.read_certificate(CertSlot.AUTH)
    status = ap.pin_status(KeyKind.AUTH)
    if status.blocked:
        raise PinBlocked()
    if status.last_try and not force:
        raise PinGuardError(1)
    ap.verify_pin(KeyKind.AUTH, pin(), force=force)
    signature = ap.sign(KeyKind.AUTH, digest_info_for(nonce, "sha256"))
    return certificate, signature


def login(
    url: str,
    connection: Connection,
    pin: PinSource,
    *,
    api_key: Secret | str | None = None,
    force: bool = False,
    timeout: float = 30.0,
    http: httpx.Client | None = None,
) -> LoginResult:
    """Log in at ``url`` (service base URL or login-page link) with the card on ``connection``.

    Raises ``ServiceError`` (refused or unusable answer), ``TransportError`` (service or card
    unreachable) or the card's PIN errors; the service's verdict is in the result.
    """
    with ServiceClient(url, api_key=api_key, timeout=timeout, http=http) as client:
        challenge = client.challenge()
        certificate, signature = sign_nonce(JpkiAp(connection), challenge.nonce, pin, force=force)
        return client.submit(challenge, certificate, signature)
