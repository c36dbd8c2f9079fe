"""CRLs: load (DER/PEM), verify over the raw TBS slice, freshness, scope, delta CRLs.

The header (issuer, times, extensions) is parsed by ``cryptography`` from a copy of the CRL with
the revoked list cut out, so its cost does not grow with the list; the list itself goes to the
vectorised ``SerialIndex``. The signature is checked over the TBS bytes exactly as received
(hash + Prehashed verify), never over a re-encoding.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import mmap
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import ExtensionOID

from jpki._files import MAX_CRL_FILE, InputFileError, open_regular_file
from jpki.errors import CrlError
from jpki.revocation.index import (
    RevocationReason,
    RevokedEntry,
    SerialIndex,
    WalkProgress,
    as_array,
    decode_oid,
    expect,
    prefer_final,
    read_header,
)
from jpki.tlv import encode_length

__all__ = [
    "CertLike",
    "Crl",
    "CrlLayout",
    "FileIdentity",
    "RevocationReason",
    "RevokedEntry",
    "as_x509",
    "lookup_with_delta",
    "newest_crls",
    "parse_layout",
]


@runtime_checkable
class _HasCertificate(Protocol):
    @property
    def certificate(self) -> x509.Certificate: ...


CertLike = x509.Certificate | _HasCertificate


def as_x509(cert: CertLike) -> x509.Certificate:
    """Accept a ``cryptography`` certificate or anything with ``.certificate`` (JpkiCertificate)."""
    # Decided once per type: ``x509.Certificate`` is an ABC, and its isinstance check costs
    # more than the rest of a repeat revocation check (asked several times per check).
    plain = _IS_X509.get(type(cert))
    if plain is None:
        plain = _IS_X509[type(cert)] = isinstance(cert, x509.Certificate)
    if plain:
        return cert  # type: ignore[return-value]
    return cert.certificate  # type: ignore[union-attr]


_IS_X509: dict[type, bool] = {}


_SIG_ALGS: dict[str, tuple[str, type[hashes.HashAlgorithm]]] = {
    "1.2.840.113549.1.1.5": ("rsa", hashes.SHA1),
    "1.2.840.113549.1.1.14": ("rsa", hashes.SHA224),
    "1.2.840.113549.1.1.11": ("rsa", hashes.SHA256),
    "1.2.840.113549.1.1.12": ("rsa", hashes.SHA384),
    "1.2.840.113549.1.1.13": ("rsa", hashes.SHA512),
    "1.2.840.10045.4.3.2": ("ecdsa", hashes.SHA256),
    "1.2.840.10045.4.3.3": ("ecdsa", hashes.SHA384),
    "1.2.840.10045.4.3.4": ("ecdsa", hashes.SHA512),
}

# CRL extensions whose meaning we apply; any other critical one makes the CRL unusable.
_KNOWN_CRL_EXTENSIONS = frozenset(
    {
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
        ExtensionOID.ISSUER_ALTERNATIVE_NAME,
        ExtensionOID.CRL_NUMBER,
        ExtensionOID.DELTA_CRL_INDICATOR,
        ExtensionOID.ISSUING_DISTRIBUTION_POINT,
        ExtensionOID.FRESHEST_CRL,
        ExtensionOID.AUTHORITY_INFORMATION_ACCESS,
    }
)

_COVERS_MEMO = 1 << 16  # certificates whose scope decision a Crl remembers

_PEM_RE = re.compile(rb"-----BEGIN X509 CRL-----(.*?)-----END X509 CRL-----", re.S)


@dataclass(frozen=True)
class CrlLayout:
    """Where the parts of a CertificateList sit in its DER."""

    tbs: tuple[int, int]  # the whole TBSCertList TLV
    head: tuple[int, int]  # TBS content before revokedCertificates
    revoked: tuple[int, int, int] | None  # (TLV start, content start, end)
    tail: tuple[int, int]  # TBS content after revokedCertificates ([0] extensions)
    inner_alg: bytes
    outer_alg: bytes
    signature: bytes


def _parse_alg(buf: memoryview, pos: int, end: int) -> tuple[bytes, int]:
    _, e = expect(buf, pos, end, 0x30, "AlgorithmIdentifier")
    return bytes(buf[pos:e]), e


def parse_layout(buf: memoryview) -> CrlLayout:
    """Split a DER CertificateList into its parts (offsets only, nothing decoded)."""
    n = len(buf)
    s, e = expect(buf, 0, n, 0x30, "CertificateList")
    if e != n:
        raise CrlError("trailing bytes after the CRL")
    ts, te = expect(buf, s, e, 0x30, "TBSCertList")
    tbs = (s, te)
    p = ts
    if p < te and buf[p] == 0x02:  # version v2
        _, _, p = read_header(buf, p, te)
    inner_alg, p = _parse_alg(buf, p, te)
    _, _, p = read_header(buf, p, te)  # issuer
    for _ in range(2):  # thisUpdate, optional nextUpdate
        if p < te and buf[p] in (0x17, 0x18):
            _, _, p = read_header(buf, p, te)
    revoked: tuple[int, int, int] | None = None
    head = (ts, p)
    if p < te and buf[p] == 0x30:
        rs, re_ = expect(buf, p, te, 0x30, "revokedCertificates")
        revoked = (p, rs, re_)
        p = re_
    tail = (p, te)
    outer_alg, q = _parse_alg(buf, te, e)
    bs, be = expect(buf, q, e, 0x03, "signatureValue")
    if be != e or be - bs < 1 or buf[bs] != 0:
        raise CrlError("bad signatureValue BIT STRING")
    return CrlLayout(tbs, head, revoked, tail, inner_alg, outer_alg, bytes(buf[bs + 1 : be]))


def tlv(tag: int, content: bytes) -> bytes:
    """One DER TLV with a single-byte tag (all a CRL's outer structure needs)."""
    return bytes([tag]) + encode_length(len(content)) + content


def _header_only(buf: memoryview, lay: CrlLayout) -> x509.CertificateRevocationList:
    """The CRL without its revoked list, parsed by cryptography (cheap at any list size)."""
    tbs = tlv(0x30, bytes(buf[lay.head[0] : lay.head[1]]) + bytes(buf[lay.tail[0] : lay.tail[1]]))
    der = tlv(0x30, tbs + lay.outer_alg + tlv(0x03, b"\x00" + lay.signature))
    try:
        crl = x509.load_der_x509_crl(der)
        _ = crl.extensions, crl.issuer, crl.last_update_utc, crl.next_update_utc
    except (
        ValueError,
        KeyError,
        TypeError,
        IndexError,
        x509.InvalidVersion,
        x509.UnsupportedGeneralNameType,  # x400Address/EDIPartyName in an extension (fuzz)
        x509.DuplicateExtension,  # the same extension twice (fuzz)
    ) as exc:
        # cryptography raises more than ValueError on some malformed extensions (e.g. KeyError
        # inside an IssuingDistributionPoint): all of them mean "malformed input" here.
        # InvalidVersion (a bad version INTEGER) is not a ValueError: found by tests/fuzz.
        raise CrlError(f"malformed CRL header: {exc!r}") from None
    return crl


def _pem_or_der(data: bytes) -> bytes:
    stripped = data.lstrip()
    if stripped.startswith(b"-----"):
        m = _PEM_RE.search(stripped)
        if not m:
            raise CrlError("PEM data holds no X509 CRL block")
        try:
            return base64.b64decode(b"".join(m.group(1).split()), validate=True)
        except binascii.Error:
            raise CrlError("bad base64 in PEM CRL") from None
    return data


# Files at least this big are memory-mapped by ``Crl.from_file`` (smaller ones are read: a
# mapping holds a file descriptor, and thousands of small per-municipality CRLs may be open).
MAP_THRESHOLD = 16 << 20
_HASH_CHUNK = 4 << 20
_COPY_CHUNK = 64 << 20


@dataclass(frozen=True)
class FileIdentity:
    """What a CRL file looked like when it was read: a later change shows in one of these."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileIdentity:
        """The identity of a file from its ``stat`` (device, inode, size, mtime, ctime)."""
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _private_copy(f: BinaryIO, size: int) -> mmap.mmap:
    """Map a private copy of the open file ``f``: an unlinked temporary file nobody else
    can open, copied in the kernel (``copy_file_range``; a reflink where the filesystem has
    them). Mapping the original would let a later write or truncation change what was
    verified under the index (or SIGBUS the process); the copy's bytes stay those verified."""
    tmp = tempfile.TemporaryFile()  # noqa: SIM115 - closed below; the mapping keeps it
    try:
        src, dst = f.fileno(), tmp.fileno()
        done = 0
        while done < size:
            try:
                n = os.copy_file_range(src, dst, min(_COPY_CHUNK, size - done), done, done)
            except OSError:  # e.g. a filesystem pair the call does not support
                n = os.sendfile(dst, src, done, min(_COPY_CHUNK, size - done))
            if n == 0:
                break  # the file shrank while being copied: the copy is what gets verified
            done += n
        tmp.truncate(done)
        if done == 0:
            raise CrlError("empty CRL file")
        return mmap.mmap(dst, done, access=mmap.ACCESS_READ)
    finally:
        tmp.close()


class _PageDropper:
    """Drops already-processed pages of a read-only file mapping from the resident set.

    The pages stay in the page cache (clean, file-backed, evictable) and fault back in on the
    next access, so a walk over a 300 MB CRL does not keep 300 MB resident in this process.
    """

    def __init__(self, mm: mmap.mmap) -> None:
        self._mm = mm
        self._done = 0

    def __call__(self, upto: int) -> None:
        upto -= upto % mmap.PAGESIZE
        if upto > self._done:
            self._mm.madvise(mmap.MADV_DONTNEED, self._done, upto - self._done)
            self._done = upto

    def restart(self) -> None:
        self._done = 0


DerSource = bytes | bytearray | memoryview | mmap.mmap


class Crl:
    """A loaded CRL: header fields decoded, revoked serials indexed, signature checked on demand."""

    def __init__(self, der: DerSource, *, index: bool = True) -> None:
        self._der = der
        self.path: Path | None = None  # the file it was read from, if any (see source_changed)
        self.file_identity: FileIdentity | None = None
        self._dropper = (
            _PageDropper(der)
            if isinstance(der, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED")
            else None
        )
        buf = memoryview(der).cast("B") if not isinstance(der, bytes) else memoryview(der)
        try:
            self.layout = parse_layout(buf)
            self._header = _header_only(buf, self.layout)
        except IndexError:  # pragma: no cover - read_header bounds every access
            raise CrlError("truncated CRL") from None
        if self.layout.inner_alg != self.layout.outer_alg:
            raise CrlError("signature algorithm inside and outside the TBS differ")
        self._check_extensions()
        self._index: SerialIndex | None = None
        self._tbs_digest: bytes | None = None
        self._covers: dict[int, tuple[x509.Certificate, bool]] = {}
        self.verified_by: x509.Certificate | None = None
        if index:
            self.build_index()

    # --- loading ------------------------------------------------------------------------------

    @classmethod
    def load(cls, data: bytes | bytearray | memoryview, *, index: bool = True) -> Crl:
        """DER or PEM."""
        if isinstance(data, bytes) and data[:1] != b"\x30":
            data = _pem_or_der(data)
        return cls(data, index=index)

    @classmethod
    def from_file(
        cls, path: str | Path, *, index: bool = True, progress: WalkProgress | None = None
    ) -> Crl:
        """DER or PEM file, read once into memory owned by this object: what is verified
        and indexed is never the file itself, so changing, truncating or replacing the file
        afterwards changes nothing here (``source_changed()`` tells that it happened).

        A big DER file is copied in the kernel to a private unlinked file and memory-mapped:
        its pages are file-backed and dropped from the resident set as the walk passes them.
        Only a regular file of at most ``MAX_CRL_FILE`` (a FIFO or ``/dev/zero`` is refused).
        """
        try:
            f = open_regular_file(path, max_bytes=MAX_CRL_FILE)
        except InputFileError as exc:
            raise CrlError(str(exc)) from None
        try:
            with f:
                st = os.fstat(f.fileno())
                if st.st_size < MAP_THRESHOLD or f.read(1) != b"\x30":
                    f.seek(0)
                    crl = cls.load(f.read(), index=False)
                else:
                    crl = cls(_private_copy(f, st.st_size), index=False)
        except OSError as exc:
            raise CrlError(f"cannot read CRL {path}: {exc.strerror or exc}") from None
        crl.path = Path(path)
        crl.file_identity = FileIdentity.of(st)
        if index:
            crl.build_index(progress)
        return crl

    def source_changed(self) -> bool:
        """Has the file this CRL was read from changed since (size, times, inode, or gone)?

        Informational: this object answers from the bytes it read and verified, never from
        the file again. Load the file anew to use a new CRL.
        """
        if self.path is None or self.file_identity is None:
            return False
        try:
            return FileIdentity.of(os.stat(self.path)) != self.file_identity
        except OSError:
            return True

    def build_index(self, progress: WalkProgress | None = None) -> SerialIndex:
        """Index the revoked list (once); ``progress(entries, bytes done, bytes total)``."""
        if self._index is None:
            if self.layout.revoked is None:
                self._index = SerialIndex.build(as_array(b""), 0, 0)
            else:
                _, s, e = self.layout.revoked
                self._index = SerialIndex.build(
                    as_array(self._der), s, e, release=self._dropper, progress=progress
                )
        return self._index

    @property
    def index(self) -> SerialIndex:
        """The serial index of the revoked list (built on first use; see ``build_index``)."""
        return self.build_index()

    # --- header -------------------------------------------------------------------------------

    def _check_extensions(self) -> None:
        for ext in self._header.extensions:
            if ext.critical and ext.oid not in _KNOWN_CRL_EXTENSIONS:
                raise CrlError(
                    f"unknown critical CRL extension {ext.oid.dotted_string}: CRL unusable"
                )
        idp = self.idp
        if idp is not None:
            if idp.indirect_crl:
                raise CrlError("indirect CRLs are not supported")
            if idp.only_some_reasons:
                raise CrlError("CRLs partitioned by reason (onlySomeReasons) are not supported")

    @property
    def der(self) -> bytes:
        """The CRL's bytes (a copy when mapped: prefer ``buffer`` for big CRLs)."""
        return bytes(self._der)

    @property
    def buffer(self) -> DerSource:
        """The CRL's bytes without a copy (a private mapping for big files)."""
        return self._der

    @property
    def size(self) -> int:
        """The CRL's DER length in bytes."""
        return len(self._der)

    @cached_property
    def issuer(self) -> x509.Name:
        """The issuer name."""
        return self._header.issuer

    @cached_property
    def this_update(self) -> datetime:
        """thisUpdate, timezone-aware UTC."""
        return self._header.last_update_utc

    @cached_property
    def next_update(self) -> datetime | None:
        """nextUpdate, timezone-aware UTC, or None when the CRL gives none."""
        return self._header.next_update_utc

    def _ext(self, oid: x509.ObjectIdentifier) -> x509.ExtensionType | None:
        try:
            return self._header.extensions.get_extension_for_oid(oid).value
        except x509.ExtensionNotFound:
            return None

    @cached_property
    def number(self) -> int | None:
        """The cRLNumber, or None when absent."""
        v = self._ext(ExtensionOID.CRL_NUMBER)
        return v.crl_number if isinstance(v, x509.CRLNumber) else None

    @cached_property
    def base_number(self) -> int | None:
        """deltaCRLIndicator: the base CRL number this delta applies to (None for a full CRL)."""
        v = self._ext(ExtensionOID.DELTA_CRL_INDICATOR)
        return v.crl_number if isinstance(v, x509.DeltaCRLIndicator) else None

    @cached_property
    def is_delta(self) -> bool:
        """True for a delta CRL (it has a deltaCRLIndicator)."""
        return self.base_number is not None

    @cached_property
    def idp(self) -> x509.IssuingDistributionPoint | None:
        """The issuingDistributionPoint extension, or None when absent."""
        v = self._ext(ExtensionOID.ISSUING_DISTRIBUTION_POINT)
        return v if isinstance(v, x509.IssuingDistributionPoint) else None

    @cached_property
    def idp_names(self) -> tuple[x509.Name, ...]:
        """directoryName full names of the issuing distribution point (the CRL's scope)."""
        idp = self.idp
        if idp is None:
            return ()
        if idp.full_name:
            return tuple(g.value for g in idp.full_name if isinstance(g, x509.DirectoryName))
        if idp.relative_name is not None:
            return (x509.Name([*self.issuer.rdns, idp.relative_name]),)
        return ()

    @cached_property
    def authority_key_id(self) -> bytes | None:
        """The authorityKeyIdentifier's key id, or None when absent."""
        v = self._ext(ExtensionOID.AUTHORITY_KEY_IDENTIFIER)
        return v.key_identifier if isinstance(v, x509.AuthorityKeyIdentifier) else None

    @property
    def signature_algorithm(self) -> tuple[str, type[hashes.HashAlgorithm]]:
        """(name, hash class) of the outer signature algorithm; ``CrlError`` when unsupported."""
        buf = memoryview(self.layout.outer_alg)
        s, e = expect(buf, 0, len(buf), 0x30, "AlgorithmIdentifier")
        os_, oe = expect(buf, s, e, 0x06, "algorithm")
        oid = decode_oid(bytes(buf[os_:oe]))
        try:
            return _SIG_ALGS[oid]
        except KeyError:
            raise CrlError(f"unsupported CRL signature algorithm {oid}") from None

    def __len__(self) -> int:
        return len(self.index)

    def tbs_digest(self) -> bytes:
        """Hash of the TBS bytes with the signature's hash (computed once: bytes never change)."""
        if self._tbs_digest is None:
            self._tbs_digest = self._hash_tbs()
        return self._tbs_digest

    def _hash_tbs(self) -> bytes:
        _, hash_cls = self.signature_algorithm
        a, b = self.layout.tbs
        h = hashlib.new(hash_cls().name)
        view = memoryview(self._der)
        if self._dropper is not None:
            self._dropper.restart()
        for lo in range(a, b, _HASH_CHUNK):
            hi = min(b, lo + _HASH_CHUNK)
            h.update(view[lo:hi])
            if self._dropper is not None:
                self._dropper(hi)
        return h.digest()

    # --- trust --------------------------------------------------------------------------------

    def verify(self, issuers: Iterable[CertLike]) -> x509.Certificate:
        """Check the signature against the candidate issuers; return the one that signed it.

        Several CA generations share a DN, so candidates are narrowed by name, ordered by key id
        match, and each is tried until one verifies.
        """
        cands = [as_x509(c) for c in issuers]
        named = [c for c in cands if c.subject == self.issuer]
        if not named:
            raise CrlError("no candidate issuer certificate has the CRL's issuer name")
        akid = self.authority_key_id
        named.sort(key=lambda c: 0 if akid is not None and _ski(c) == akid else 1)
        kind, hash_cls = self.signature_algorithm
        digest = self.tbs_digest()
        for cert in named:
            if not _may_sign_crls(cert):
                continue
            if _check_sig(cert, kind, hash_cls(), digest, self.layout.signature):
                self.verified_by = cert
                return cert
        raise CrlError("CRL signature does not verify with any candidate issuer")

    def check_fresh(self, at: datetime, *, max_age: timedelta | None = None) -> None:
        """Raise CrlError unless usable at ``at`` (aware): thisUpdate <= at < nextUpdate."""
        if at.tzinfo is None:
            raise CrlError("validation time must be timezone-aware")
        if self.this_update > at:
            raise CrlError(f"CRL not yet valid (thisUpdate {self.this_update.isoformat()})")
        nu = self.next_update
        if nu is not None and at >= nu:
            raise CrlError(f"CRL is stale (nextUpdate {nu.isoformat()})")
        if max_age is not None and at - self.this_update > max_age:
            raise CrlError(f"CRL older than the maximum age {max_age}")
        if nu is None and max_age is None:
            raise CrlError("CRL has no nextUpdate and no maximum age was set")

    def is_fresh(self, at: datetime, *, max_age: timedelta | None = None) -> bool:
        """True when the CRL is usable at ``at`` (see ``check_fresh``), False otherwise."""
        try:
            self.check_fresh(at, max_age=max_age)
        except CrlError:
            return False
        return True

    # --- scope and lookup ---------------------------------------------------------------------

    def covers(self, cert: CertLike) -> bool:
        """Does this CRL's scope include ``cert`` (same issuer; DirName DP matches the IDP)?"""
        c = as_x509(cert)
        # A pure function of the two (the header never changes): asked on every check of a
        # certificate, so remember it rather than decode names and extensions again.
        # Keyed by identity (hashing a certificate object costs microseconds); the entry
        # holds the certificate, so its id cannot be reused while remembered.
        known = self._covers.get(id(c))
        if known is not None and known[0] is c:
            return known[1]
        if len(self._covers) >= _COVERS_MEMO:
            self._covers.clear()
        answer = self._covers_uncached(c)
        self._covers[id(c)] = (c, answer)
        return answer

    def _covers_uncached(self, c: x509.Certificate) -> bool:
        if c.issuer != self.issuer:
            return False
        idp = self.idp
        if idp is None:
            return True
        if idp.only_contains_attribute_certs:
            return False
        if idp.only_contains_user_certs and _is_ca(c):
            return False
        if idp.only_contains_ca_certs and not _is_ca(c):
            return False
        if idp.full_name is None and idp.relative_name is None:
            return True  # no distribution point name: the issuer's whole (flag-limited) scope
        if set(self.idp_names) & set(cert_dp_names(c)):
            return True
        # A partition named otherwise (e.g. by URI) covers only certificates naming it in their
        # own CRL DPs (RFC 5280 6.3.3 b.2.i); a partition is never taken for the whole list.
        others = {g for g in idp.full_name or () if not isinstance(g, x509.DirectoryName)}
        return bool(others & _cert_dp_general_names(c))

    def lookup(self, serial: int) -> RevokedEntry | None:
        """The deciding entry for ``serial`` (a final reason wins when it is listed twice)."""
        idx = self._index
        return (idx if idx is not None else self.build_index()).lookup(serial)


def cert_dp_names(cert: x509.Certificate) -> tuple[x509.Name, ...]:
    """directoryName CRL distribution points of a certificate (JPKI partitions by these)."""
    try:
        dps = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return ()
    out: list[x509.Name] = []
    for dp in dps:
        if dp.full_name:
            out.extend(g.value for g in dp.full_name if isinstance(g, x509.DirectoryName))
        elif dp.relative_name is not None:
            out.append(x509.Name([*cert.issuer.rdns, dp.relative_name]))
    return tuple(out)


def _cert_dp_general_names(cert: x509.Certificate) -> set[x509.GeneralName]:
    try:
        dps = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return set()
    return {g for dp in dps for g in dp.full_name or ()}


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _ski(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return None


def _may_sign_crls(cert: x509.Certificate) -> bool:
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return ku.crl_sign


def _check_sig(
    cert: x509.Certificate, kind: str, hash_alg: hashes.HashAlgorithm, digest: bytes, sig: bytes
) -> bool:
    key = cert.public_key()
    try:
        if kind == "rsa" and isinstance(key, rsa.RSAPublicKey):
            key.verify(sig, digest, padding.PKCS1v15(), Prehashed(hash_alg))
            return True
        if kind == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sig, digest, ec.ECDSA(Prehashed(hash_alg)))
            return True
    except InvalidSignature:
        return False
    return False


def lookup_with_delta(base: Crl, delta: Crl | None, serial: int) -> RevokedEntry | None:
    """Status from a base CRL plus an optional delta (RFC 5280 5.2.4).

    An entry in the delta wins over a hold (or absence) in the base; ``removeFromCRL`` there
    releases a certificate held in the base. A final revocation in the base is never undone
    by the delta. The delta must name the same issuer and scope and apply to this base or an
    older one.
    """
    b = base.lookup(serial)
    if delta is not None:
        check_delta_applies(base, delta)
        d = delta.lookup(serial)
        if is_final(b):
            return prefer_final([e for e in (b, d) if e is not None and is_final(e)])
        if d is not None:
            return effective_entry(d)
    return effective_entry(b)


def is_final(entry: RevokedEntry | None) -> bool:
    """A listed entry whose reason cannot be undone (anything but hold / removeFromCRL)."""
    return entry is not None and entry.reason not in (
        RevocationReason.CERTIFICATE_HOLD,
        RevocationReason.REMOVE_FROM_CRL,
    )


def effective_entry(hit: RevokedEntry | None) -> RevokedEntry | None:
    """``hit`` unless it is a ``removeFromCRL`` entry, which means "no longer revoked"."""
    if hit is not None and hit.reason is RevocationReason.REMOVE_FROM_CRL:
        return None
    return hit


def check_delta_applies(base: Crl, delta: Crl) -> None:
    """Raise ``CrlError`` unless ``delta`` is a delta CRL that applies to full CRL ``base``."""
    if base.is_delta:
        raise CrlError("the base CRL is itself a delta CRL")
    bn = delta.base_number
    if bn is None:
        raise CrlError("not a delta CRL (no deltaCRLIndicator)")
    if delta.issuer != base.issuer or delta.idp_names != base.idp_names:
        raise CrlError("delta CRL has a different issuer or scope than the base CRL")
    if base.number is None or base.number < bn:
        raise CrlError(f"delta CRL needs base CRL number >= {bn}, have {base.number}")
    if delta.number is not None and delta.number <= base.number:
        raise CrlError("delta CRL is not newer than the base CRL")


def select_crls(crls: Sequence[Crl], cert: CertLike) -> tuple[Crl | None, Crl | None]:
    """The newest full CRL and newest applicable delta whose scope covers ``cert``."""
    return newest_crls([c for c in crls if c.covers(cert)])


def newest_crls(mine: Sequence[Crl]) -> tuple[Crl | None, Crl | None]:
    """The newest full CRL and the newest delta that applies to it, among ``mine``."""
    if len(mine) == 1:  # the common case: one full CRL for the issuer (or one delta, no base)
        return (mine[0], None) if not mine[0].is_delta else (None, None)
    bases = [c for c in mine if not c.is_delta]
    if not bases:
        return None, None
    base = max(bases, key=lambda c: (c.number or -1, c.this_update))
    deltas = []
    for d in mine:
        if not d.is_delta:
            continue
        try:
            check_delta_applies(base, d)
        except CrlError:
            continue
        deltas.append(d)
    delta = max(deltas, key=lambda c: (c.number or -1, c.this_update)) if deltas else None
    return base, delta
