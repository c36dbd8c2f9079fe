"""The one place the service calls the relying-party library (jpki.verify, jpki.revocation).

Everything here is plain in, plain out (bytes, str, dicts), so it runs in worker processes
and in ``jpki audit verify`` alike: the record is re-checked by the very code that made it.
Revocation evidence is collected by wrapping the library's revocation check: each answer
names the CRL (issuer key id + number + SHA-256) it came from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jpki.cert import CertKind, JpkiCertificate
from jpki.errors import ChallengeError, JpkiError, UsageError
from jpki.policy import Policy
from jpki.revocation.crl import Crl
from jpki.revocation.policy import (
    RevocationPolicy,
    RevocationResult,
    RevocationStatus,
    check_revocation,
    issued_by,
)
from jpki.verify import (
    HashAlgorithm,
    LoginVerifier,
    Purpose,
    Status,
    VerificationResult,
    verify_cms,
    verify_signature,
)
from jpki.verify.login import Challenge
from jpki.verify.path import RevocationCheck

__all__ = [
    "CrlMeta",
    "Outcome",
    "certificate_der",
    "certificate_summary",
    "crl_der",
    "crl_meta",
    "pdf_available",
    "status_check",
    "verify_cms_blob",
    "verify_login",
    "verify_pdf_blob",
    "verify_raw_signature",
]


@dataclass(frozen=True)
class CrlMeta:
    """What the service keeps about a verified CRL beside its DER."""

    sha256: str
    slot: str  # issuer + scope + full/delta: one current CRL per slot
    issuer: str
    issuer_key_id: str
    is_delta: bool
    number: int | None
    this_update: datetime
    next_update: datetime | None
    entries: int


def crl_meta(der: bytes, anchors: Sequence[bytes]) -> CrlMeta:
    """Parse and verify a CRL against the trust anchors (JPKI CAs sign their own CRLs)."""
    crl = Crl.load(der)
    signer = crl.verify([JpkiCertificate.load(a).certificate for a in anchors])
    from cryptography.hazmat.primitives import serialization

    spki = signer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key_id = hashlib.sha256(spki).hexdigest()
    scope = b"".join(sorted(n.public_bytes() for n in crl.idp_names))
    slot = hashlib.sha256(
        crl.issuer.public_bytes() + b"|" + scope + b"|" + (b"d" if crl.is_delta else b"f")
    ).hexdigest()
    return CrlMeta(
        sha256=hashlib.sha256(crl.der).hexdigest(),
        slot=slot + ":" + key_id[:16],
        issuer=crl.issuer.rfc4514_string(),
        issuer_key_id=key_id,
        is_delta=crl.is_delta,
        number=crl.number,
        this_update=crl.this_update,
        next_update=crl.next_update,
        entries=len(crl),
    )


@dataclass
class Outcome:
    """A verdict with its revocation evidence, JSON-ready."""

    result: dict[str, Any]
    revocation: list[dict[str, Any]] = field(default_factory=list)
    crls_used: list[str] = field(default_factory=list)  # SHA-256 of each CRL consulted

    def to_json(self) -> dict[str, Any]:
        return {"result": self.result, "revocation": self.revocation, "crls_used": self.crls_used}


class _Evidence:
    """A RevocationCheck over the given CRLs that remembers every answer it gave."""

    def __init__(self, crls: dict[str, bytes], soft_fail: bool) -> None:
        self.crls = crls
        self.policy = RevocationPolicy(soft_fail=soft_fail)
        self.answers: list[dict[str, Any]] = []
        self.used: list[str] = []
        self._by_der = {der: sha for sha, der in crls.items()}

    def check(
        self, cert: JpkiCertificate, issuer: JpkiCertificate, at: datetime
    ) -> RevocationResult:
        if not self.crls:
            res = RevocationResult(
                status=RevocationStatus.UNKNOWN, source="crl", detail="no CRL loaded in the service"
            )
        else:
            loaded = [_crl(der) for der in self.crls.values()]
            res = check_revocation(cert, issuer, crls=loaded, at=at, policy=self.policy)
            for c in loaded:
                if c.covers(cert.certificate) and c.number is not None:
                    sha = self._by_der[c.der]
                    if sha not in self.used:
                        self.used.append(sha)
        self.answers.append(
            {"serial": cert.serial_hex, "subject": cert.subject_text, **res.to_json()}
        )
        return res

    def as_check(self) -> RevocationCheck:
        return self.check


_CRL_CACHE: dict[bytes, Crl] = {}


def _crl(der: bytes) -> Crl:
    """Parsed (and index-built) CRLs kept per process: a worker answers many requests."""
    c = _CRL_CACHE.get(der)
    if c is None:
        if len(_CRL_CACHE) > 64:
            _CRL_CACHE.clear()
        c = _CRL_CACHE[der] = Crl.load(der)
    return c


def _anchors(anchors: Sequence[bytes]) -> tuple[JpkiCertificate, ...]:
    return tuple(JpkiCertificate.load(a) for a in anchors)


def certificate_summary(der: bytes) -> dict[str, Any]:
    """Fingerprint, subject, kind and, for signing certificates, the basic 4 information."""
    cert = JpkiCertificate.load(der)
    out: dict[str, Any] = {
        "fingerprint": cert.fingerprint_sha256.hex(),
        "subject": cert.subject_text,
        "issuer": cert.issuer_text,
        "serial": cert.serial_hex,
        "kind": cert.kind.value,
    }
    if cert.kind in (CertKind.SIGNING, CertKind.PHONE_SIGNING):
        info = cert.basic_info
        if info is not None:
            out["basic_info"] = info.as_dict()
    return out


def _outcome(result: VerificationResult, ev: _Evidence) -> Outcome:
    return Outcome(result.to_dict(), ev.answers, ev.used)


class _GivenNonce:
    """A ChallengeStore holding one challenge the service has already consumed fleet-wide."""

    def __init__(self, challenge_id: str, nonce: bytes) -> None:
        self._id, self._nonce = challenge_id, nonce

    def put(self, challenge: Challenge, now: datetime) -> None:  # pragma: no cover - unused
        raise UsageError("the service issues challenges itself")

    def consume(self, challenge_id: str, now: datetime) -> bytes:
        if challenge_id != self._id:
            raise ChallengeError("unknown challenge")
        return self._nonce


def verify_login(
    challenge_id: str,
    nonce: bytes,
    cert_der: bytes,
    signature: bytes,
    *,
    anchors: Sequence[bytes],
    crls: dict[str, bytes],
    at: datetime,
    soft_fail: bool = False,
) -> Outcome:
    """A login over ``nonce`` (already consumed by the caller), through ``LoginVerifier``."""
    ev = _Evidence(crls, soft_fail)
    verifier = LoginVerifier(
        _GivenNonce(challenge_id, nonce),
        _policy(anchors, ev, soft_fail),
        clock=lambda: at,
    )
    return _outcome(verifier.verify(challenge_id, signature, cert_der), ev)


def _policy(
    anchors: Sequence[bytes],
    ev: _Evidence,
    soft_fail: bool,
    *,
    at: datetime | None = None,
    purpose: Purpose | None = None,
) -> Policy:
    """The one policy a service call applies: its anchors, the request's CRLs, its time."""
    return Policy(
        anchors=_anchors(anchors),
        at=at,
        purpose=purpose,
        revocation=ev.as_check(),
        soft_fail=soft_fail,
    )


def verify_raw_signature(
    cert_der: bytes,
    signature: bytes,
    *,
    data: bytes | None,
    digest: bytes | None,
    hash_alg: str,
    purpose: str,
    anchors: Sequence[bytes],
    crls: dict[str, bytes],
    at: datetime,
    soft_fail: bool = False,
) -> Outcome:
    """PKCS#1 v1.5 over data or a digest, plus the chain and revocation at ``at``."""
    ev = _Evidence(crls, soft_fail)
    cert = JpkiCertificate.load(cert_der)
    result = verify_signature(
        cert,
        signature,
        data=data,
        digest=digest,
        hash_alg=HashAlgorithm(hash_alg),
        policy=_policy(anchors, ev, soft_fail, at=at, purpose=Purpose(purpose)),
    )
    return _outcome(result, ev)


def verify_cms_blob(
    cms_der: bytes,
    *,
    content: bytes | None,
    purpose: str,
    anchors: Sequence[bytes],
    crls: dict[str, bytes],
    at: datetime,
    soft_fail: bool = False,
) -> Outcome:
    ev = _Evidence(crls, soft_fail)
    result = verify_cms(
        cms_der,
        _policy(anchors, ev, soft_fail, at=at, purpose=Purpose(purpose)),
        content=content,
    )
    return _outcome(result, ev)


def status_check(
    certs: Sequence[bytes],
    *,
    anchors: Sequence[bytes],
    crls: dict[str, bytes],
    at: datetime,
    soft_fail: bool = False,
) -> Outcome:
    """現況確認: good / revoked / unknown per certificate, with the reason."""
    ev = _Evidence(crls, soft_fail)
    cas = _anchors(anchors)
    items: list[dict[str, Any]] = []
    for der in certs:
        try:
            cert = JpkiCertificate.load(der)
        except JpkiError as exc:
            items.append({"status": "unknown", "detail": f"not a certificate: {exc}"})
            continue
        issuer = next((ca for ca in cas if issued_by(cert.certificate, ca.certificate)), None)
        if issuer is None:
            items.append(
                {
                    "serial": cert.serial_hex,
                    "subject": cert.subject_text,
                    "status": "unknown",
                    "detail": "not issued by a trusted CA of this service",
                }
            )
            continue
        res = ev.check(cert, issuer, at)
        items.append(ev.answers[-1] | {"status": res.status.value})
    worst = "good"
    if any(i["status"] == "revoked" for i in items):
        worst = "revoked"
    elif any(i["status"] == "unknown" for i in items):
        worst = "unknown"
    status = {"good": Status.VALID, "revoked": Status.INVALID, "unknown": Status.INDETERMINATE}
    return Outcome(
        {
            "status": status[worst].value,
            "reasons": [f"{len(items)} certificates checked"],
            "items": items,
        },
        ev.answers,
        ev.used,
    )


def certificate_der(data: bytes) -> bytes:
    """DER of a certificate given as DER or PEM; the library's ``JpkiError`` if not one."""
    return JpkiCertificate.load(data).der


def crl_der(data: bytes) -> bytes:
    """The DER of a CRL given as DER or PEM."""
    return Crl.load(data).der


def pdf_available() -> bool:
    """True when PDF verification (``jpki[pdf]``: pyHanko and jpki.documents) is installed."""
    import importlib.util

    return importlib.util.find_spec("pyhanko") is not None


def verify_pdf_blob(
    pdf: bytes,
    *,
    anchors: Sequence[bytes],
    crls: dict[str, bytes],
    at: datetime,
    soft_fail: bool = False,
) -> Outcome:
    """Every signature of a PDF (jpki.documents.verify_pdf) with the service's CRLs."""
    from jpki.documents.verify_pdf import RevocationSources, verify_pdf

    result = verify_pdf(
        pdf,
        trust_anchors=_anchors(anchors),
        revocation=RevocationSources(crls=list(crls.values()), soft_fail=soft_fail),
        at=at,
    )
    out = result.to_dict()
    answers = [
        {"field": s["field"], "status": s["status"], "subject": s.get("subject")}
        for s in out["signatures"]
    ]
    # verify_pdf asks every CRL it is given; all of them are the evidence.
    return Outcome(out, answers, sorted(crls))
