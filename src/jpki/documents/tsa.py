"""Timestamp authority client (RFC 3161 over HTTP, pyHanko's ``HTTPTimeStamper``).

The signature timestamp stamps the signature value, so it can only be fetched after the card
has signed. To keep an unreachable or broken TSA from wasting a PIN entry, :func:`probe_tsa`
asks the TSA for one token over a throwaway digest *before* the PIN is asked; a TSA that fails
between the probe and the real request still fails the whole operation (nothing is written).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from urllib.parse import urlsplit

from pyhanko.sign.timestamps import HTTPTimeStamper, TimestampRequestError

from jpki.errors import TimestampError, UsageError

#: Seconds to wait for the TSA on each request.
DEFAULT_TSA_TIMEOUT = 10.0


def timestamper(url: str, *, timeout: float = DEFAULT_TSA_TIMEOUT) -> HTTPTimeStamper:
    """An RFC 3161 HTTP client for ``url`` (http or https; ``UsageError`` otherwise)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"timestamp authority URL must be http:// or https://, not {url!r}")
    if not 0 < timeout <= 600:
        raise UsageError("TSA timeout must be positive seconds, at most 600")
    return HTTPTimeStamper(url, timeout=timeout)


def tsa_failure(url: str, exc: BaseException) -> TimestampError:
    """One clear error for every way a TSA exchange fails."""
    detail = str(exc).strip() or type(exc).__name__
    return TimestampError(f"timestamp authority {url} gave no usable timestamp: {detail}")


TSA_ERRORS: tuple[type[BaseException], ...] = (
    TimestampRequestError,
    OSError,
    asyncio.TimeoutError,
)
try:  # aiohttp is pyHanko's HTTP client; its errors are not all OSErrors
    import aiohttp

    TSA_ERRORS += (aiohttp.ClientError,)
except ImportError:  # pragma: no cover - pyHanko requires it
    pass


# ValueError: a reply asn1crypto cannot parse (after signing, pyHanko's own checks apply).
_PROBE_ERRORS: tuple[type[BaseException], ...] = (*TSA_ERRORS, ValueError)


def probe_tsa(stamper: HTTPTimeStamper, url: str) -> None:
    """Ask for one token over a random digest; ``TimestampError`` if the TSA cannot give one."""
    digest = hashlib.sha256(os.urandom(32)).digest()
    try:
        asyncio.run(stamper.async_timestamp(digest, "sha256"))
    except _PROBE_ERRORS as exc:
        raise tsa_failure(url, exc) from None
