"""Fast synthetic CRLs for tests and benchmarks: the revoked list is written with numpy.

The header (issuer, times, extensions) comes from a tiny CRL built and signed by
``cryptography``; the entries are spliced in as raw DER and the TBS is re-signed. 10^6 entries
take well under a second; ``cryptography``'s builder would take minutes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from jpki.revocation.crl import parse_layout, tlv
from jpki.revocation.index import REASON_TEMPLATE

_BATCH = 1 << 20


@dataclass(frozen=True)
class Synthetic:
    """A synthetic CRL: its DER, the revoked serials and their reason codes."""

    der: bytes
    serials: npt.NDArray[np.uint64]  # the revoked serials (all fit in 63 bits)
    reasons: npt.NDArray[np.int16]  # reason code per serial, -1 when the entry has none


def _utctime(t: datetime) -> bytes:
    return t.astimezone(UTC).strftime("%y%m%d%H%M%SZ").encode()


def header_crl(
    key: rsa.RSAPrivateKey,
    issuer: x509.Name,
    *,
    this_update: datetime,
    next_update: datetime,
    number: int,
    extensions: Sequence[x509.ExtensionType] = (),
    hash_alg: hashes.SHA256 | hashes.SHA384 | hashes.SHA512 | None = None,
) -> bytes:
    """A signed CRL with no entries carrying the given header."""
    b = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    for ext in extensions:
        critical = isinstance(ext, x509.DeltaCRLIndicator | x509.IssuingDistributionPoint)
        b = b.add_extension(ext, critical=critical)
    return b.sign(key, hash_alg or hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def splice_entries(header_der: bytes, entries_der: bytes, key: rsa.RSAPrivateKey) -> bytes:
    """Put a raw revokedCertificates content into an entry-less signed CRL and re-sign it."""
    buf = memoryview(header_der)
    lay = parse_layout(buf)
    head = bytes(buf[lay.head[0] : lay.head[1]])
    tail = bytes(buf[lay.tail[0] : lay.tail[1]])
    revoked = tlv(0x30, entries_der) if entries_der else b""
    tbs = tlv(0x30, head + revoked + tail)
    # Re-sign with the same hash the header CRL used (its AlgorithmIdentifier stays valid).
    probe = _hash_of_alg(lay.outer_alg)
    h = hashlib.new(probe.name, tbs).digest()
    sig = key.sign(h, padding.PKCS1v15(), Prehashed(probe))
    return tlv(0x30, tbs + lay.outer_alg + tlv(0x03, b"\x00" + sig))


def _hash_of_alg(alg_der: bytes) -> hashes.HashAlgorithm:
    table: dict[bytes, hashes.HashAlgorithm] = {
        bytes.fromhex("2a864886f70d010105"): hashes.SHA1(),  # noqa: S303 - legacy CRLs exist
        bytes.fromhex("2a864886f70d01010b"): hashes.SHA256(),
        bytes.fromhex("2a864886f70d01010c"): hashes.SHA384(),
        bytes.fromhex("2a864886f70d01010d"): hashes.SHA512(),
    }
    for oid, h in table.items():
        if oid in alg_der:
            return h
    raise ValueError("unsupported signature algorithm for the generator")


def entries_der(
    serials: npt.NDArray[np.uint64],
    reasons: npt.NDArray[np.int16],
    revoked_at: datetime,
) -> bytes:
    """The content of revokedCertificates for uint64 serials (minimal DER INTEGERs)."""
    date = np.frombuffer(b"\x17\x0d" + _utctime(revoked_at), np.uint8)
    template = np.frombuffer(REASON_TEMPLATE, np.uint8)
    out: list[bytes] = []
    for lo in range(0, len(serials), _BATCH):
        s = serials[lo : lo + _BATCH].astype(np.uint64)
        r = reasons[lo : lo + _BATCH]
        n = len(s)
        # big-endian bytes of each serial, then the minimal INTEGER content (sign octet if needed)
        be = s.astype(">u8").view(np.uint8).reshape(n, 8)
        nz = be != 0
        first = np.where(nz.any(axis=1), nz.argmax(axis=1), 7)
        slen = 8 - first
        sign = be[np.arange(n), first] >= 0x80
        clen = slen + sign  # content length 1..9
        has_r = r >= 0
        body = 2 + clen + 15 + np.where(has_r, 14, 0)
        width = 2 + 11 + 15 + 14
        mat = np.zeros((n, width), np.uint8)
        mat[:, 0] = 0x30
        mat[:, 1] = body
        mat[:, 2] = 0x02
        mat[:, 3] = clen
        # serial bytes: column 4 + k holds content byte k (k < clen)
        cols = np.arange(9)
        src = first[:, None] - sign[:, None] + cols[None, :]  # index into be, -1 = sign octet
        valid = cols[None, :] < clen[:, None]
        vals = np.where(src >= 0, be[np.arange(n)[:, None], np.clip(src, 0, 7)], 0)
        mat[:, 4:13] = np.where(valid, vals, 0)
        # date and optional reason follow the serial: place via per-row shift
        tailw = 15 + 14
        tail = np.zeros((n, tailw), np.uint8)
        tail[:, :15] = date
        tail[:, 15:28] = template[None, :]
        tail[:, 28] = np.where(has_r, r, 0).astype(np.uint8)
        rowlen = 2 + body
        # Assemble each row: header+serial (4+clen bytes) then tail; gather through a mask.
        full = np.zeros((n, 4 + 9 + tailw), np.uint8)
        full[:, :13] = mat[:, :13]
        ci = np.arange(4 + 9 + tailw)[None, :]
        off = ci - (4 + clen)[:, None]
        take = off >= 0
        full = np.where(take, tail[np.arange(n)[:, None], np.clip(off, 0, tailw - 1)], full)
        keep = ci < rowlen[:, None]
        out.append(full[keep].tobytes())
    return b"".join(out)


def synthetic_crl(
    n: int,
    key: rsa.RSAPrivateKey,
    issuer: x509.Name,
    *,
    this_update: datetime,
    next_update: datetime,
    number: int = 1,
    seed: int = 0,
    reason_fraction: float = 0.9,
    serial_bits: int = 63,
    extensions: Sequence[x509.ExtensionType] = (),
) -> Synthetic:
    """An n-entry CRL with random unique serials (up to ``serial_bits`` bits), signed by key."""
    rng = np.random.default_rng(seed)
    hi = np.uint64((1 << serial_bits) - 1)
    serials = np.unique(rng.integers(1, hi, size=int(n * 1.01) + 16, dtype=np.uint64))
    rng.shuffle(serials)
    serials = serials[:n]
    codes = np.array([0, 1, 3, 4, 5, 6], np.int16)
    reasons = np.where(rng.random(n) < reason_fraction, rng.choice(codes, size=n), -1).astype(
        np.int16
    )
    header = header_crl(
        key,
        issuer,
        this_update=this_update,
        next_update=next_update,
        number=number,
        extensions=extensions,
    )
    der = splice_entries(header, entries_der(serials, reasons, this_update), key)
    return Synthetic(der, serials, reasons)
