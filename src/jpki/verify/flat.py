"""Native validation of a flat chain: an end-entity certificate directly under a trust anchor.

JPKI's PKI is flat (each user certificate is issued by a root), so the common case needs no
path building. :func:`flat_chain` decides that case with the same rules pyhanko-certvalidator
applies to a one-certificate path (``tests/test_verify_flat_diff.py`` holds the two to the same
verdict on generated cases):

1. issuer: anchors whose subject DER equals the issuer DER, narrowed by the
   AuthorityKeyIdentifier key id when both sides carry one (CA generations share a DN);
2. signature: sha256/384/512WithRSAEncryption over the raw TBS slice (hash + ``Prehashed``
   verify), the anchor key RSA of at least 2048 bits;
3. validity, with certvalidator's 1 s tolerance (the anchor's own dates are not checked, as
   in RFC 5280 and certvalidator);
4. KeyUsage bits required for the purpose; certificate policies when a set is required;
5. no critical extension outside the set certvalidator supports.

Anything else — intermediates, a self-issued leaf, an anchor key id mismatch, odd signature
encodings, policy mapping / constraints or name constraints on the leaf, no anchor whose key
verifies the signature — returns ``None``: the caller hands the case to pyhanko-certvalidator.

Results are cached: the per-certificate facts (parsed once per fingerprint) and the
time-independent verdict per (certificate, anchors, usage, policies). A cached verdict is
re-judged against the validation time on every call (validity window), so it lasts until the
certificate expires; revocation is never cached here (the caller checks it on every call).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Generic, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from jpki.cert import JpkiCertificate
from jpki.errors import CertificateError, TlvError
from jpki.tlv import read_header as _element  # (tag, value start, value end); TlvError

__all__ = [
    "TOLERANCE",
    "CertificateCache",
    "FlatChain",
    "LruCache",
    "certificate_cache",
    "flat_chain",
    "rsa_signature_valid",
]

#: certvalidator's default ``time_tolerance``: validity is checked with this much slack.
TOLERANCE = timedelta(seconds=1)

#: Critical extensions certvalidator accepts (its SUPPORTED_EXTENSIONS, as OIDs).
SUPPORTED_CRITICAL = frozenset(
    {
        "1.3.6.1.5.5.7.1.1",  # authorityInfoAccess
        "2.5.29.35",  # authorityKeyIdentifier
        "2.5.29.19",  # basicConstraints
        "2.5.29.31",  # cRLDistributionPoints
        "2.5.29.37",  # extKeyUsage
        "2.5.29.46",  # freshestCRL
        "2.5.29.14",  # subjectKeyIdentifier
        "2.5.29.15",  # keyUsage
        "1.3.6.1.5.5.7.48.1.5",  # id-pkix-ocsp-nocheck
        "2.5.29.32",  # certificatePolicies
        "2.5.29.33",  # policyMappings
        "2.5.29.36",  # policyConstraints
        "2.5.29.54",  # inhibitAnyPolicy
        "2.5.29.30",  # nameConstraints
        "2.5.29.17",  # subjectAltName
        "1.3.6.1.5.5.7.1.6",  # aaControls
        "1.3.6.1.5.5.7.1.3",  # qcStatements
    }
)
#: On the end entity these change policy or name processing: left to certvalidator.
_DEFERRED = frozenset({"2.5.29.33", "2.5.29.36", "2.5.29.54", "2.5.29.30"})
_ANY_POLICY = "2.5.29.32.0"

# AlgorithmIdentifier DER (with the NULL parameters) -> hash; other encodings are deferred.
_RSA_ALGS: dict[bytes, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    bytes.fromhex("300d06092a864886f70d01010b0500"): hashes.SHA256,
    bytes.fromhex("300d06092a864886f70d01010c0500"): hashes.SHA384,
    bytes.fromhex("300d06092a864886f70d01010d0500"): hashes.SHA512,
}
_HASHLIB = {hashes.SHA256: "sha256", hashes.SHA384: "sha384", hashes.SHA512: "sha512"}
_MIN_RSA_BITS = 2048  # certvalidator's default rsa_key_size_threshold

#: RFC 5280 KeyUsage names (``JpkiCertificate.key_usage``) -> certvalidator's names.
_KU_NAMES = {
    "digitalSignature": "digital_signature",
    "nonRepudiation": "non_repudiation",
    "keyEncipherment": "key_encipherment",
    "dataEncipherment": "data_encipherment",
    "keyAgreement": "key_agreement",
    "keyCertSign": "key_cert_sign",
    "cRLSign": "crl_sign",
    "encipherOnly": "encipher_only",
    "decipherOnly": "decipher_only",
}

_PKCS1 = padding.PKCS1v15()


def _contents(der: bytes, pos: int) -> tuple[int, int]:
    _, a, b = _element(der, pos)
    return a, b


@dataclass(frozen=True, slots=True)
class _Layout:
    """Offsets read once from a certificate's raw DER (nothing is re-encoded)."""

    tbs: bytes
    inner_alg: bytes
    outer_alg: bytes
    signature: bytes
    issuer: bytes
    subject: bytes
    extensions: tuple[int, int] | None  # where the [3] extensions' contents start and end


def _layout(der: bytes) -> _Layout:
    try:
        _, c0, c1 = _element(der, 0)
        tag, t0, t1 = _element(der, c0)
        tbs_start = c0
        fields: list[tuple[int, int, int]] = []
        p = t0
        while p < t1:
            f = _element(der, p)
            fields.append((f[0], p, f[2]))
            p = f[2]
        _, _, a1 = _element(der, t1)
        _, s0, s1 = _element(der, a1)
    except TlvError as exc:
        raise CertificateError(f"malformed certificate: {exc}") from None
    i = 1 if fields and fields[0][0] == 0xA0 else 0
    if tag != 0x30 or len(fields) < i + 6 or s1 != c1:
        raise CertificateError("malformed certificate: unexpected structure")
    inner = der[fields[i + 1][1] : fields[i + 1][2]]
    bits = der[s0:s1]
    if not bits or bits[0] != 0:
        raise CertificateError("malformed certificate: signature BIT STRING")
    return _Layout(
        tbs=der[tbs_start:t1],
        inner_alg=inner,
        outer_alg=der[t1:a1],
        signature=bits[1:],
        issuer=der[fields[i + 2][1] : fields[i + 2][2]],
        subject=der[fields[i + 4][1] : fields[i + 4][2]],
        extensions=next((_contents(der, a) for t, a, _ in fields[i + 6 :] if t == 0xA3), None),
    )


_AKI_OID = bytes.fromhex("0603551d23")  # 2.5.29.35, DER


@dataclass(frozen=True, slots=True)
class _Aki:
    key_id: bytes | None
    #: DER of the Name in the first authorityCertIssuer entry, with the serial; certvalidator
    #: then requires both to be the issuer's (its ``authority_issuer_serial``).
    issuer: tuple[bytes, int | None] | None
    odd: bool  # a shape the fast path leaves to certvalidator


def _raw_extension(der: bytes, lay: _Layout, oid_der: bytes) -> bytes | None:
    """The extnValue contents of the extension ``oid_der`` (DER of the OID), or None."""
    if lay.extensions is None:
        return None
    a, _ = lay.extensions
    try:
        _, p, end = _element(der, a)  # SEQUENCE OF Extension
        while p < end:
            _, e0, e1 = _element(der, p)
            if der[e0 : e0 + len(oid_der)] == oid_der:
                q = e0 + len(oid_der)
                tag, v0, v1 = _element(der, q)
                if tag == 0x01:  # critical BOOLEAN
                    tag, v0, v1 = _element(der, v1)
                return der[v0:v1] if tag == 0x04 else None
            p = e1
    except TlvError as exc:
        raise CertificateError(f"malformed certificate extensions: {exc}") from None
    return None


def _parse_aki(value: bytes) -> _Aki:
    try:
        tag, p, end = _element(value, 0)
        key_id: bytes | None = None
        names: bytes | None = None
        serial: int | None = None
        odd = tag != 0x30 or end != len(value)
        while p < end and not odd:
            tag, v0, v1 = _element(value, p)
            if tag == 0x80:
                key_id = value[v0:v1]
            elif tag == 0xA1:
                names = value[v0:v1]
            elif tag == 0x82:
                serial = int.from_bytes(value[v0:v1], "big", signed=True)
            else:
                odd = True
            p = v1
        issuer = None
        if names:
            t, n0, n1 = _element(names, 0)
            inner = _element(names, n0) if t == 0xA4 and n0 < n1 else None
            if inner is None or inner[0] != 0x30 or inner[2] != n1:
                odd = True
            else:
                issuer = (names[n0:n1], serial)
    except (TlvError, CertificateError):
        return _Aki(None, None, True)
    return _Aki(key_id, issuer, odd)


class _Facts:
    """What the flat path reads from one certificate, each field decoded at most once."""

    def __init__(self, cert: JpkiCertificate) -> None:
        self.cert = cert
        self.fingerprint = cert.fingerprint_sha256

    @cached_property
    def layout(self) -> _Layout:
        return _layout(self.cert.der)

    @cached_property
    def extensions(self) -> tuple[tuple[str, bool], ...]:
        try:
            exts = self.cert.certificate.extensions
        except (ValueError, TypeError, KeyError, x509.DuplicateExtension) as exc:
            raise CertificateError(f"certificate extensions cannot be decoded: {exc!r}") from None
        return tuple((e.oid.dotted_string, e.critical) for e in exts)

    @cached_property
    def aki(self) -> _Aki | None:
        """The AuthorityKeyIdentifier as read from the raw DER; None if absent."""
        value = _raw_extension(self.cert.der, self.layout, _AKI_OID)
        return None if value is None else _parse_aki(value)

    @cached_property
    def key_usage(self) -> frozenset[str]:
        return frozenset(_KU_NAMES[k] for k in self.cert.key_usage)

    @cached_property
    def has_key_usage(self) -> bool:
        return any(oid == "2.5.29.15" for oid, _ in self.extensions)

    @cached_property
    def policies(self) -> tuple[str, ...] | None:
        """Policy OIDs, or None without a certificatePolicies extension."""
        if not any(oid == "2.5.29.32" for oid, _ in self.extensions):
            return None
        return self.cert.policies

    @cached_property
    def rsa_key(self) -> rsa.RSAPublicKey | None:
        try:
            key = self.cert.public_key
        except CertificateError:
            return None
        return key if isinstance(key, rsa.RSAPublicKey) else None

    @cached_property
    def human_subject(self) -> str:
        """The subject for ``chain``: RFC 4514, the one DN rendering of every command."""
        return self.cert.subject_text

    @cached_property
    def key_id_text(self) -> str:
        kid = self.cert.subject_key_id
        return kid.hex() if kid else "none"


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """A bounded map safe to share between threads; the least recently stored goes first.

    Reads take no lock (a dict lookup is atomic) and do not reorder: on the hot path a
    read is one lookup. Writes and eviction hold the lock.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._d: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        """The value stored under ``key``, or None (lock-free; does not refresh its age)."""
        return self._d.get(key)

    def put(self, key: K, value: V) -> None:
        """Store ``value``, evicting the least recently stored beyond ``size``."""
        with self._lock:
            self._d[key] = value
            self._d.move_to_end(key)
            while len(self._d) > self.size:
                self._d.popitem(last=False)

    def drop(self, key: K) -> None:
        """Forget ``key`` (no error when absent)."""
        with self._lock:
            self._d.pop(key, None)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._d.clear()

    def __len__(self) -> int:
        return len(self._d)


class CertificateCache:
    """Parsed certificates and flat-chain verdicts, keyed by SHA-256 fingerprint.

    Safe to share between threads. ``load`` turns certificate bytes into one shared
    ``JpkiCertificate`` per fingerprint, so a repeat login parses nothing.
    """

    def __init__(self, size: int = 16384) -> None:
        self._facts: LruCache[bytes, _Facts] = LruCache(size)
        self._verdicts: LruCache[tuple[object, ...], _Verdict] = LruCache(size)
        self._anchor_sets: LruCache[tuple[bytes, ...], _Anchors] = LruCache(256)
        self._by_bytes: LruCache[bytes, JpkiCertificate] = LruCache(size)
        self._anchor_ids: dict[int, tuple[tuple[JpkiCertificate, ...], _Anchors]] = {}

    def load(self, der: bytes) -> JpkiCertificate:
        """The certificate for DER (or PEM/base64) bytes, parsed once per fingerprint."""
        # Keyed by the bytes themselves first: a dict lookup compares them on a hit, which
        # is cheaper than hashing them with SHA-256 on every login.
        cert = self._by_bytes.get(der)
        if cert is not None:
            return cert
        if der[:1] != b"\x30":
            return self.facts(JpkiCertificate.load(der)).cert
        found = self._facts.get(hashlib.sha256(der).digest())
        cert = found.cert if found is not None else self.facts(JpkiCertificate.load(der)).cert
        self._by_bytes.put(bytes(der), cert)
        return cert

    def facts(self, cert: JpkiCertificate) -> _Facts:
        """The decoded fields of ``cert`` the flat path reads, cached by fingerprint."""
        fp = cert.fingerprint_sha256
        found = self._facts.get(fp)
        if found is None:
            found = _Facts(cert)
            self._facts.put(fp, found)
        return found

    def anchors(self, anchors: Sequence[JpkiCertificate]) -> _Anchors:
        # A verifier passes the same tuple on every call: know it by identity (a tuple cannot
        # change; the entry holds it, so its id stays its own).
        """The anchor set ``anchors`` indexed by subject, cached by its fingerprints."""
        if type(anchors) is tuple:
            held = self._anchor_ids.get(id(anchors))
            if held is not None and held[0] is anchors:
                return held[1]
        key = tuple(a.fingerprint_sha256 for a in anchors)
        found = self._anchor_sets.get(key)
        if found is None:
            found = _Anchors([self.facts(a) for a in anchors])
            self._anchor_sets.put(key, found)
        if type(anchors) is tuple:
            if len(self._anchor_ids) >= 256:
                self._anchor_ids.clear()
            self._anchor_ids[id(anchors)] = (anchors, found)
        return found

    def clear(self) -> None:
        """Forget every certificate, verdict and anchor set."""
        self._facts.clear()
        self._verdicts.clear()
        self._anchor_sets.clear()
        self._by_bytes.clear()
        self._anchor_ids.clear()


class _Anchors:
    def __init__(self, facts: list[_Facts]) -> None:
        self.by_subject: dict[bytes, list[_Facts]] = {}
        self.fingerprints = frozenset(f.fingerprint for f in facts)
        for f in facts:
            self.by_subject.setdefault(f.layout.subject, []).append(f)
        self.key = tuple(sorted(self.fingerprints))


@dataclass(slots=True)
class _Verdict:
    """The time-independent part of a flat-chain decision, plus the validity window."""

    anchor: _Facts
    problem: str | None  # None: the path is valid (inside the window)
    not_before: datetime
    not_after: datetime
    ok: FlatChain | None = None  # the valid answer, once made (immutable, shared)


@dataclass(frozen=True)
class FlatChain:
    """A decided flat chain: valid iff ``problem`` is None."""

    anchor: JpkiCertificate
    cert: JpkiCertificate
    problem: str | None
    #: Subjects from the anchor down (RFC 4514, as every DN jpki prints).
    chain: tuple[str, ...]
    anchor_key_id: str

    @property
    def valid(self) -> bool:
        """True when the flat chain has no problem."""
        return self.problem is None


#: The process-wide cache the verifiers share.
certificate_cache = CertificateCache()


def flat_chain(
    cert: JpkiCertificate,
    trust_anchors: Sequence[JpkiCertificate],
    *,
    at: datetime,
    key_usage: Iterable[str],
    policies: Iterable[str] | None = None,
    intermediates: Iterable[JpkiCertificate] = (),
    cache: CertificateCache = certificate_cache,
) -> FlatChain | None:
    """Decide ``cert`` under ``trust_anchors`` natively, or None if outside the flat profile.

    ``key_usage``: certvalidator's names of the bits the end entity needs. ``policies``: if
    given, the certificate must carry one of them (or anyPolicy). The caller validates
    ``at`` (timezone-aware) and checks revocation.
    """
    anchors = cache.anchors(trust_anchors)
    if any(c.fingerprint_sha256 not in anchors.fingerprints for c in intermediates):
        return None
    facts = cache.facts(cert)
    if facts.fingerprint in anchors.fingerprints:
        return None
    ku = key_usage if isinstance(key_usage, frozenset) else frozenset(key_usage)
    pol = None if policies is None else frozenset(policies)
    if pol is not None and (not pol or _ANY_POLICY in pol):
        return None  # certvalidator's reading of a required anyPolicy is its own
    key = (facts.fingerprint, anchors.key, ku, pol)
    verdict = cache._verdicts.get(key)
    if verdict is None:
        verdict = _decide(facts, anchors, ku, pol)
        if verdict is None:
            return None
        cache._verdicts.put(key, verdict)
    problem = verdict.problem
    if problem is None:
        if at + TOLERANCE < verdict.not_before:
            problem = f"the certificate is not valid until {verdict.not_before.isoformat()}"
        elif at - TOLERANCE > verdict.not_after:
            problem = (
                f"the certificate expired {verdict.not_after.isoformat()} "
                f"(validation time {at.isoformat()})"
            )
        else:
            ok = verdict.ok  # the answer of every repeat inside the window: made once
            if ok is not None and ok.cert is cert:
                return ok
    found = FlatChain(
        anchor=verdict.anchor.cert,
        cert=cert,
        problem=problem,
        chain=(verdict.anchor.human_subject, facts.human_subject),
        anchor_key_id=verdict.anchor.key_id_text,
    )
    if problem is None:
        verdict.ok = found
    return found


def _signed_by(leaf: _Facts, anchor: _Facts) -> bool:
    lay = leaf.layout
    return rsa_signature_valid(anchor.rsa_key, lay.signature, lay.tbs, _RSA_ALGS[lay.outer_alg])


def rsa_signature_valid(
    key: rsa.RSAPublicKey | None,
    signature: bytes,
    signed: bytes,
    hash_alg: type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512],
) -> bool:
    """Whether ``signature`` is ``key``'s RSA PKCS#1 v1.5 signature over ``signed``.

    The flat path's CA-signature check (the leaf's TBS bytes under the anchor's key), kept
    as one callable so the Wycheproof vectors drive exactly it: hash the raw bytes, then a
    ``Prehashed`` verify; no key, or one below 2048 bits, never verifies.
    """
    if key is None or key.key_size < _MIN_RSA_BITS:
        return False
    digest = hashlib.new(_HASHLIB[hash_alg], signed).digest()
    try:
        key.verify(signature, digest, _PKCS1, Prehashed(hash_alg()))
    except InvalidSignature:
        return False
    return True


def _decide(
    leaf: _Facts, anchors: _Anchors, ku: frozenset[str], policies: frozenset[str] | None
) -> _Verdict | None:
    lay = leaf.layout
    if lay.issuer == lay.subject:
        return None  # self-issued: certvalidator's rules for those differ
    if lay.outer_alg != lay.inner_alg or lay.outer_alg not in _RSA_ALGS:
        return None
    exts = leaf.extensions
    if any(oid in _DEFERRED for oid, _ in exts):
        return None
    pols = leaf.policies
    if pols is not None and len(set(pols)) != len(pols):
        return None  # a repeated policy OID: not worth second-guessing certvalidator on
    aki = leaf.aki
    if aki is not None and aki.odd:
        return None
    kid = aki.key_id if aki is not None else None
    named = aki.issuer if aki is not None else None
    candidates = [
        a
        for a in anchors.by_subject.get(lay.issuer, ())
        if (kid is None or a.cert.subject_key_id is None or a.cert.subject_key_id == kid)
        and (named is None or (named[0] == a.layout.issuer and named[1] == a.cert.serial))
    ]
    anchor = next((a for a in candidates if _signed_by(leaf, a)), None)
    if anchor is None:
        # No decision without a verified issuer: another anchor may match by a normalised
        # name; certvalidator searches (and words the failure).
        return None
    cert = leaf.cert
    problem = _usage_problem(leaf, ku, policies, exts)
    return _Verdict(anchor, problem, cert.not_before, cert.not_after)


def _usage_problem(
    leaf: _Facts,
    ku: frozenset[str],
    policies: frozenset[str] | None,
    exts: tuple[tuple[str, bool], ...],
) -> str | None:
    missing = ku - leaf.key_usage if leaf.has_key_usage else ku
    if missing:
        names = ", ".join(sorted(m.replace("_", " ") for m in missing))
        return f"the certificate is not valid for the purpose(s) of {names} (KeyUsage)"
    if policies is not None:
        have = leaf.policies
        if have is None or not (_ANY_POLICY in have or policies.intersection(have)):
            return "the certificate carries none of the required certificate policies"
    unsupported = sorted(
        oid for oid, critical in exts if critical and oid not in SUPPORTED_CRITICAL
    )
    if unsupported:
        return f"the certificate has unsupported critical extension(s): {', '.join(unsupported)}"
    return None
