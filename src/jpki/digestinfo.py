"""PKCS#1 DigestInfo (RFC 8017 §9.2): the one DigestInfo type, its DER table, build and parse.

The card signs a DigestInfo as sent (it hashes nothing), so the card client builds one here;
the verifier parses what it recovers from a signature with the same type. Parsing is strict:
only the canonical encoding with NULL parameters is accepted, because a lenient DigestInfo
parse is what signature forgeries exploit. Pure data, no I/O.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

from jpki.errors import SignatureFormatError, UsageError
from jpki.oid import HashOID


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


#: Hash names are also the verifier's ``HashAlgorithm``.
HashAlgorithm = HashName
hash_algorithm = hash_name

#: Dotted digest-algorithm OIDs (CMS digestAlgorithm) to hash names.
OID_TO_HASH: dict[str, HashName] = {
    HashOID.SHA1: HashName.SHA1,
    HashOID.SHA256: HashName.SHA256,
    HashOID.SHA384: HashName.SHA384,
    HashOID.SHA512: HashName.SHA512,
}


def digest_of(alg: HashName, data: bytes) -> bytes:
    """The ``alg`` digest of ``data``."""
    return hashlib.new(alg.value, data).digest()


@dataclass(frozen=True)
class DigestInfo:
    """A DigestInfo: which hash, and the digest value (length checked).

    Unpacks as ``(algorithm, digest)``.
    """

    algorithm: HashName
    digest: bytes

    def __post_init__(self) -> None:
        size = DIGEST_SIZES[self.algorithm]
        if len(self.digest) != size:
            raise SignatureFormatError(
                f"a {self.algorithm.value} digest is {size} bytes, got {len(self.digest)}"
            )

    def __iter__(self) -> Iterator[HashName | bytes]:
        return iter((self.algorithm, self.digest))

    @classmethod
    def parse(cls, data: bytes) -> DigestInfo:
        """Strict parse: exactly one canonical SHA-1/256/384/512 encoding, nothing else.

        Absent NULL parameters, other length forms, trailing bytes and unknown algorithms
        raise ``SignatureFormatError`` with a message saying which.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise SignatureFormatError("DigestInfo must be bytes")
        raw = bytes(data)
        for alg, prefix in PREFIXES.items():
            if len(raw) == len(prefix) + DIGEST_SIZES[alg] and raw.startswith(prefix):
                return cls(alg, raw[len(prefix) :])
        for alg, prefix in PREFIXES_NO_NULL.items():
            if raw.startswith(prefix):
                raise SignatureFormatError(
                    f"{alg.value} DigestInfo without NULL parameters is not accepted "
                    "(not canonical)"
                )
        if len(raw) < 2 or raw[0] != 0x30:
            raise SignatureFormatError("DigestInfo is not a DER SEQUENCE")
        raise SignatureFormatError(
            f"DigestInfo ({len(raw)} bytes) is not a canonical SHA-1/256/384/512 encoding "
            "(unknown algorithm, wrong digest length or trailing data)"
        )

    def to_der(self) -> bytes:
        """The DER ``DigestInfo``: the algorithm's fixed prefix followed by the digest."""
        return PREFIXES[self.algorithm] + self.digest


def parse_digest_info(data: bytes) -> DigestInfo:
    """:meth:`DigestInfo.parse` (strict)."""
    return DigestInfo.parse(data)
