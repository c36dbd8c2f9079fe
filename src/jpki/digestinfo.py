"""PKCS#1 DigestInfo (RFC 8017 §9.2): the DER prefixes, build and parse. Pure data, no I/O.

The card signs a DigestInfo as sent (it hashes nothing), so the card client builds one here;
the verifier parses what it recovers from a signature with the same table.
"""

from __future__ import annotations

import enum
import hashlib

from jpki.errors import SignatureFormatError, UsageError


class HashName(enum.StrEnum):
    """Hash algorithms seen in JPKI signatures."""

    SHA1 = "sha1"
    SHA256 = "sha256"
    SHA384 = "sha384"
    SHA512 = "sha512"


#: DER of the AlgorithmIdentifier OID content bytes per hash.
_OIDS: dict[HashName, bytes] = {
    HashName.SHA1: bytes.fromhex("2b0e03021a"),
    HashName.SHA256: bytes.fromhex("608648016503040201"),
    HashName.SHA384: bytes.fromhex("608648016503040202"),
    HashName.SHA512: bytes.fromhex("608648016503040203"),
}

DIGEST_SIZES: dict[HashName, int] = {
    HashName.SHA1: 20,
    HashName.SHA256: 32,
    HashName.SHA384: 48,
    HashName.SHA512: 64,
}


def _prefix(name: HashName, *, with_null: bool) -> bytes:
    oid = b"\x06" + bytes([len(_OIDS[name])]) + _OIDS[name]
    alg_body = oid + (b"\x05\x00" if with_null else b"")
    alg = b"\x30" + bytes([len(alg_body)]) + alg_body
    size = DIGEST_SIZES[name]
    total = len(alg) + 2 + size
    return b"\x30" + bytes([total]) + alg + b"\x04" + bytes([size])


#: The canonical prefixes (AlgorithmIdentifier with NULL parameters), e.g. SHA-256:
#: ``3031300d060960864801650304020105000420``.
PREFIXES: dict[HashName, bytes] = {n: _prefix(n, with_null=True) for n in HashName}
#: Prefixes with absent parameters: RFC 8017 says NULL, but such signatures exist; parse only.
PREFIXES_NO_NULL: dict[HashName, bytes] = {n: _prefix(n, with_null=False) for n in HashName}


def hash_name(name: str | HashName) -> HashName:
    """Normalise ``'SHA-256'``, ``'sha256'``… to a ``HashName``; ``UsageError`` otherwise."""
    if isinstance(name, HashName):
        return name
    key = str(name).lower().replace("-", "").replace("_", "")
    try:
        return HashName(key)
    except ValueError:
        choices = ", ".join(n.value for n in HashName)
        raise UsageError(f"unsupported hash {name!r} (use one of {choices})") from None


def build_digest_info(name: str | HashName, digest: bytes) -> bytes:
    """DER DigestInfo for an already computed ``digest``."""
    h = hash_name(name)
    if len(digest) != DIGEST_SIZES[h]:
        raise UsageError(f"{h.value} digest must be {DIGEST_SIZES[h]} bytes, not {len(digest)}")
    return PREFIXES[h] + bytes(digest)


def digest_info_for(data: bytes, name: str | HashName = HashName.SHA256) -> bytes:
    """Hash ``data`` and wrap the digest in a DigestInfo."""
    h = hash_name(name)
    return build_digest_info(h, hashlib.new(h.value, data).digest())


def parse_digest_info(der: bytes) -> tuple[HashName, bytes]:
    """Split a DigestInfo into (hash, digest); ``SignatureFormatError`` if it is none we know."""
    for table in (PREFIXES, PREFIXES_NO_NULL):
        for name, prefix in table.items():
            if len(der) == len(prefix) + DIGEST_SIZES[name] and der.startswith(prefix):
                return name, bytes(der[len(prefix) :])
    raise SignatureFormatError("not a DigestInfo for SHA-1/256/384/512")
