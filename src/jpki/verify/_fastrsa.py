"""Optional fast path for batch verification: OpenSSL's ``RSA_public_decrypt`` via ctypes.

Why: for a 2048-bit key the RSA public operation costs ~15 µs; ``cryptography``'s
``recover_data_from_signature`` adds ~4 µs of per-call set-up (a fresh EVP_PKEY_CTX each
time). Calling ``RSA_public_decrypt`` on a key parsed once removes most of that, which is
what brings batch throughput near ``openssl speed``.

Same semantics as ``recover_data_from_signature(sig, PKCS1v15(), None)``: the PKCS#1 v1.5
type-1 padding is checked by OpenSSL, the recovered DigestInfo is returned, ``None`` on any
failure. The caller compares it in constant time. Used only when the system libcrypto (3.x)
loads; ``JPKI_NO_FAST_RSA=1`` turns it off; everything works without it (property tests
check both paths agree).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
import weakref
from typing import Any

_RSA_PKCS1_PADDING = 1
_lib: Any = None
_tried = False
# One output buffer per thread: ctypes releases the GIL during the call, so threads may run
# RSA operations at the same time and must not share a buffer.
_local = threading.local()


def _load() -> Any:
    global _lib, _tried
    if _tried:
        return _lib
    _tried = True
    if os.environ.get("JPKI_NO_FAST_RSA"):
        return None
    name = ctypes.util.find_library("crypto")
    if not name:
        return None
    try:
        lib = ctypes.CDLL(name)
        if lib.OpenSSL_version_num() < 0x30000000:
            return None
        lib.d2i_PUBKEY.restype = ctypes.c_void_p
        lib.d2i_PUBKEY.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_long]
        lib.EVP_PKEY_get1_RSA.restype = ctypes.c_void_p
        lib.EVP_PKEY_get1_RSA.argtypes = [ctypes.c_void_p]
        lib.EVP_PKEY_free.restype = None
        lib.EVP_PKEY_free.argtypes = [ctypes.c_void_p]
        lib.RSA_free.restype = None
        lib.RSA_free.argtypes = [ctypes.c_void_p]
        lib.RSA_size.restype = ctypes.c_int
        lib.RSA_size.argtypes = [ctypes.c_void_p]
        # RSA_public_decrypt is called without argtypes (see FastRsaKey): every argument is
        # passed as an exact ctypes-compatible type, and skipping the conversion layer saves
        # about a microsecond a call.
        lib.RSA_public_decrypt.restype = ctypes.c_int
        lib.ERR_clear_error.restype = None
        lib.ERR_clear_error.argtypes = []
    except (OSError, AttributeError):
        return None
    _lib = lib
    return lib


def _free(lib: Any, pkey: int, rsa: int) -> None:
    lib.RSA_free(rsa)
    lib.EVP_PKEY_free(pkey)


class FastRsaKey:
    """An RSA public key parsed once by libcrypto; ``recover`` is thread-safe."""

    __slots__ = ("__weakref__", "_decrypt", "_rsa", "size")

    def __init__(self, lib: Any, pkey: int, rsa: int) -> None:
        self._rsa = ctypes.c_void_p(rsa)
        self._decrypt = lib.RSA_public_decrypt
        self.size: int = lib.RSA_size(self._rsa)
        weakref.finalize(self, _free, lib, pkey, rsa)

    def recover(self, signature: bytes) -> bytes | None:
        """The PKCS#1 v1.5 payload (a DigestInfo), or None if the padding is wrong."""
        size = self.size
        if len(signature) != size or type(signature) is not bytes:
            return None
        buf = getattr(_local, "buf", None)
        if buf is None or len(buf) < size:
            buf = _local.buf = ctypes.create_string_buffer(max(size, 512))
        # Plain ints go as C int, bytes as const char *, the key as a void pointer.
        n = self._decrypt(size, signature, buf, self._rsa, _RSA_PKCS1_PADDING)
        if n < 0:
            _lib.ERR_clear_error()  # leave nothing on this thread's OpenSSL error queue
            return None
        return buf.raw[:n]


def fast_key(spki_der: bytes) -> FastRsaKey | None:
    """Parse a SubjectPublicKeyInfo with libcrypto, or None (no libcrypto, not RSA, bad DER)."""
    lib = _load()
    if lib is None:
        return None
    p = ctypes.c_char_p(spki_der)
    pkey = lib.d2i_PUBKEY(None, ctypes.byref(p), len(spki_der))
    if not pkey:
        lib.ERR_clear_error()
        return None
    rsa = lib.EVP_PKEY_get1_RSA(pkey)
    if not rsa:
        lib.ERR_clear_error()
        lib.EVP_PKEY_free(pkey)
        return None
    return FastRsaKey(lib, pkey, rsa)
