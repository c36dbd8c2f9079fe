"""`jpki login URL`: the card side of a login against a `jpki serve` service.

URL is either the service (``http://host:port``: a challenge is asked for with the API key)
or a login-page link (``…/login/c/ID``: the page's challenge). The PIN goes to the card only;
the service receives the authentication certificate and the signature over its nonce.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import click

from jpki.cli._common import (
    Exit,
    card_options,
    emit,
    handle_errors,
    open_connection,
    pin_options,
    read_secret,
)
from jpki.errors import JpkiError, TransportError, UsageError


class ServiceError(JpkiError):
    """The service refused the request or answered something unusable."""


def _http(url: str, body: dict[str, Any] | None, key: str | None, timeout: float) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"not an http(s) URL: {url!r}")
    req = urllib.request.Request(  # noqa: S310 - http(s) only, checked above
        url, data=data, method="POST" if data is not None else "GET"
    )
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("X-API-Key", key)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - http(s) only
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        try:
            why = json.loads(exc.read()).get("error")
        except (ValueError, AttributeError):
            why = exc.reason
        raise ServiceError(f"service answered {exc.code}: {why}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise TransportError(
            f"cannot reach the service at {url}: {getattr(exc, 'reason', exc)}"
        ) from None
    try:
        out = json.loads(raw)
    except ValueError:
        raise ServiceError("the service's answer is not JSON") from None
    if not isinstance(out, dict):
        raise ServiceError("the service's answer is not a JSON object")
    return out


def _b64(d: dict[str, Any], name: str) -> bytes:
    try:
        return base64.b64decode(str(d[name]), validate=True)
    except (KeyError, ValueError):
        raise ServiceError(f"the service's answer has no usable {name}") from None


@click.command("login")
@click.argument("url")
@card_options
@pin_options("pin", "the user-authentication PIN (4 digits)")
@click.option("--api-key-env", metavar="VAR", help="Environment variable holding the API key.")
@click.option("--force", is_flag=True, help="Try the PIN even when only one try is left.")
@click.option("--json", "as_json", is_flag=True, help="Print the service's answer as JSON.")
@handle_errors
def login_cmd(
    url: str,
    api_key_env: str | None,
    pin_env: str | None,
    pin_stdin: bool,
    force: bool,
    as_json: bool,
    sim: Path | None,
    reader: str | None,
    bridge: str | None,
    timeout: float,
) -> None:
    """Log in at URL with the card's auth key; exit 0 valid, 1 invalid, 3 indeterminate."""
    from jpki.card import CertSlot, JpkiAp, KeyKind
    from jpki.card.protocol import CardProtocol
    from jpki.digestinfo import digest_info_for

    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise UsageError(f"not an http(s) URL: {url!r}")
    key = None
    if api_key_env:
        key = os.environ.get(api_key_env)
        if key is None:
            raise UsageError(f"environment variable {api_key_env} is not set")
    page = "/login/c/" in parsed.path
    if page:
        challenge = _http(url, None, None, timeout)
        post_url = url
    else:
        base = url.rstrip("/")
        challenge = _http(base + "/v1/challenges", {}, key, timeout)
        post_url = base + "/v1/logins"
    nonce = _b64(challenge, "nonce")
    secret = read_secret(env=pin_env, stdin=pin_stdin, prompt="user-authentication PIN")
    with open_connection(sim=sim, reader=reader, bridge=bridge, timeout=timeout) as conn:
        jpki = JpkiAp(CardProtocol(conn))
        cert = jpki.read_certificate(CertSlot.AUTH)
        jpki.verify_pin(KeyKind.AUTH, secret, force=force)
        signature = jpki.sign(KeyKind.AUTH, digest_info_for(nonce, "sha256"))
    body = {
        "certificate": base64.b64encode(cert).decode(),
        "signature": base64.b64encode(signature).decode(),
    }
    if not page:
        body["challenge_id"] = str(challenge.get("id", ""))
    result = _http(post_url, body, key, timeout)
    status = result.get("status")

    def text() -> str:
        lines = [f"login {status}"]
        if result.get("account_key"):
            lines.append(f"account key  {result['account_key']}")
        lines += [f"  - {r}" for r in result.get("reasons", [])]
        rec = result.get("record") or {}
        if rec:
            lines.append(f"audit record #{rec.get('seq')} {rec.get('hash')}")
        return "\n".join(lines)

    emit(result, as_json, text)
    code = {"valid": Exit.OK, "invalid": Exit.INVALID}.get(str(status), Exit.INDETERMINATE)
    raise SystemExit(int(code))


commands: list[click.Command] = [login_cmd]
