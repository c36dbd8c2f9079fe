"""DigestInfo (RFC 8017 §9.2) for the verifier: strict parse, typed value, hashing helpers.

The prefix table and the lenient parse live in :mod:`jpki.digestinfo` (core, shared with the
card client). The verifier is stricter: only the canonical encoding with NULL parameters is
accepted, because a lenient DigestInfo parse is what signature forgeries exploit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes

from jpki.digestinfo import DIGEST_SIZES, PREFIXES, PREFIXES_NO_NULL, hash_name
from jpki.digestinfo import HashName as HashAlgorithm
from jpki.errors import SignatureFormatError

__all__ = [
    "OID_TO_HASH",
    "DigestInfo",
    "HashAlgorithm",
    "build_digest_info",
    "crypto_hash",
    "digest_of",
    "hash_algorithm",
    "parse_digest_info",
]

_CRYPTO: dict[HashAlgorithm, type[hashes.HashAlgorithm]] = {
    HashAlgorithm.SHA1: hashes.SHA1,
    HashAlgorithm.SHA256: hashes.SHA256,
    HashAlgorithm.SHA384: hashes.SHA384,
    HashAlgorithm.SHA512: hashes.SHA512,
}

#: Dotted digest-algorithm OIDs (CMS digestAlgorithm) to hash names.
OID_TO_HASH = {
    "1.3.14.3.2.26": HashAlgorithm.SHA1,
    "2.16.840.1.101.3.4.2.1": HashAlgorithm.SHA256,
    "2.16.840.1.101.3.4.2.2": HashAlgorithm.SHA384,
    "2.16.840.1.101.3.4.2.3": HashAlgorithm.SHA512,
}


def hash_algorithm(name: str | HashAlgorithm) -> HashAlgorithm:
    """Normalise "SHA-256", "sha256", ... (``UsageError`` for anything else)."""
    return hash_name(name)


def digest_of(alg: HashAlgorithm, data: bytes) -> bytes:
    """The ``alg`` digest of ``data``."""
    return hashlib.new(alg.value, data).digest()


def crypto_hash(alg: HashAlgorithm) -> hashes.HashAlgorithm:
    """The matching ``cryptography`` hash object."""
    return _CRYPTO[alg]()


@dataclass(frozen=True)
class DigestInfo:
    """A parsed DigestInfo: which hash, and the digest value (length checked)."""

    algorithm: HashAlgorithm
    digest: bytes

    def __post_init__(self) -> None:
        size = DIGEST_SIZES[self.algorithm]
        if len(self.digest) != size:
            raise SignatureFormatError(
                f"a {self.algorithm.value} digest is {size} bytes, got {len(self.digest)}"
            )

    def to_der(self) -> bytes:
        return PREFIXES[self.algorithm] + self.digest


def build_digest_info(algorithm: str | HashAlgorithm, digest: bytes) -> bytes:
    """Canonical DER DigestInfo for a digest already computed."""
    return DigestInfo(hash_algorithm(algorithm), bytes(digest)).to_der()


def parse_digest_info(data: bytes) -> DigestInfo:
    """Strict parse: exactly one canonical SHA-1/256/384/512 encoding, nothing else.

    Absent NULL parameters, other length forms, trailing bytes and unknown algorithms raise
    ``SignatureFormatError`` with a message saying which.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise SignatureFormatError("DigestInfo must be bytes")
    raw = bytes(data)
    for alg, prefix in PREFIXES.items():
        if len(raw) == len(prefix) + DIGEST_SIZES[alg] and raw.startswith(prefix):
            return DigestInfo(alg, raw[len(prefix) :])
    for alg, prefix in PREFIXES_NO_NULL.items():
        if raw.startswith(prefix):
            raise SignatureFormatError(
                f"{alg.value} DigestInfo without NULL parameters is not accepted (not canonical)"
            )
    if len(raw) < 2 or raw[0] != 0x30:
        raise SignatureFormatError("DigestInfo is not a DER SEQUENCE")
    raise SignatureFormatError(
        f"DigestInfo ({len(raw)} bytes) is not a canonical SHA-1/256/384/512 encoding "
        "(unknown algorithm, wrong digest length or trailing data)"
    )
