"""The optional compiled verification loop (``pip install 'jpki[native]'``): is it there, may
``verify_batch`` use it, and the one call.

The loop (``jpki.verify._native``, built from ``native/verify.c`` when a compiler and OpenSSL
headers were present at install) checks a whole chunk of RSA PKCS#1 v1.5 signatures with the
GIL released, one OpenSSL context per key, and answers which items are not plainly valid; the
Python layer re-checks and explains those, and applies the policy (key size, SHA-1) itself.
Without the module everything runs in Python with the same results. ``JPKI_NATIVE=0`` in the
environment, or ``verify_batch(..., native=False)``, turns it off.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cache
from types import ModuleType

from jpki.errors import UsageError

#: The call signature this wrapper speaks (native/verify.c ``JPKI_NATIVE_ABI``).
ABI = 2
#: The hash names the loop handles, as the bit counts it takes; others stay in Python.
HASH_BITS = {"sha256": 256, "sha384": 384, "sha512": 512}

__all__ = [
    "ABI",
    "HASH_BITS",
    "available",
    "enabled",
    "make_key",
    "openssl_version",
    "unavailable_reason",
    "verify_many",
]


@cache
def _load() -> tuple[ModuleType | None, str | None]:
    try:
        import jpki.verify._native as _native
    except ImportError as exc:  # not built (no compiler or headers), or libcrypto missing
        return None, f"jpki.verify._native is not built or cannot load ({exc})"
    if getattr(_native, "ABI", None) != ABI:
        return None, f"jpki.verify._native is a stale build (ABI {_native.ABI}, want {ABI})"
    return _native, None


def unavailable_reason() -> str | None:
    """Why the compiled loop cannot be used here (None: it can)."""
    return _load()[1]


def available() -> bool:
    """Whether the compiled loop is built and loadable in this process."""
    return _load()[0] is not None


def enabled(choice: bool | None = None) -> bool:
    """Whether to use the loop: ``choice`` if given (True when it is missing: ``UsageError``),
    else when it is available and ``JPKI_NATIVE`` is not ``0``."""
    if choice is False:
        return False
    if choice is True:
        why = unavailable_reason()
        if why is not None:
            raise UsageError(f"native=True but {why} (pip install 'jpki[native]')")
        return True
    return os.environ.get("JPKI_NATIVE", "").strip() != "0" and available()


def openssl_version() -> str | None:
    """The libcrypto the loop runs on (None without the loop)."""
    mod = _load()[0]
    return mod.openssl_version() if mod is not None else None


def make_key(modulus: int, exponent: int) -> object | None:
    """The loop's handle on an RSA public key (None: no loop, or OpenSSL refuses the key).
    Made once per certificate and cached by the caller: it keeps OpenSSL's key and context."""
    mod = _load()[0]
    if mod is None:
        return None
    try:
        key: object = mod.Key(_be(modulus), _be(exponent))
    except ValueError:
        return None
    return key


def _be(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")


def verify_many(
    keys: Sequence[object | None],
    plans: Sequence[tuple[int, int, bytes]],
    plan_of: Sequence[int],
    signatures: Sequence[bytes],
    datas: Sequence[bytes | None],
    digests: Sequence[bytes | None],
) -> list[int] | None:
    """Indices of the items that are not plainly valid (None: no loop here, check them all).

    ``keys``: from :func:`make_key`, or None; ``plans``: (key index, hash
    bits from ``HASH_BITS``, DigestInfo prefix); then per item its plan index, signature,
    data and digest (as ``verify_batch``'s fast path: data alone or digest alone)."""
    mod = _load()[0]
    if mod is None:
        return None
    left: list[int] = mod.verify_many(keys, plans, plan_of, signatures, datas, digests)
    return left
