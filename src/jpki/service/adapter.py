"""The one place the service calls the relying-party library (jpki.verify, jpki.revocation).

Everything here is plain in, plain out (bytes, str, dicts), so it runs in worker processes
and in ``jpki audit verify`` alike: the record is re-checked by the very code that made it.
Revocation is :class:`ServiceRevocation`, a ``RevocationSource`` that asks the revocation
store (CRLs keyed by issuer key) and, when the store cannot tell, OCSP (the configured
responder or the certificate's OCSP AIA, one total deadline). It keeps every answer with its
evidence: the CRLs (issuer key + number) or the OCSP request and response. Offline, the same
class answers from the archived CRLs and the recorded OCSP responses instead.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp as x509_ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID

from jpki.cert import CertKind, JpkiCertificate
from jpki.errors import ChallengeError, JpkiError, OcspError, RevocationError, UsageError
from jpki.policy import Policy
from jpki.revocation.crl import Crl
from jpki.revocation.ocsp import OcspSource, parse_response, post
from jpki.revocation.policy import (
    CrlFiles,
    RevocationPolicy,
    RevocationResult,
    RevocationStatus,
    check_revocation,
    issued_by,
)
from jpki.revocation.store import RevocationStore, StoredCrl, crl_identity, issuer_key_id
from jpki.service.audit import b64, unb64
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

__all__ = [
    "Context",
    "OcspConfig",
    "Outcome",
    "PreparedCrl",
    "RevocationStore",
    "ServiceRevocation",
    "StoredCrl",
    "certificate_der",
    "certificate_summary",
    "crl_der",
    "current_crls",
    "pdf_available",
    "prepare_crl",
    "status_check",
    "verify_cms_blob",
    "verify_login",
    "verify_pdf_blob",
    "verify_raw_signature",
]


@dataclass(frozen=True)
class OcspConfig:
    """When the service asks OCSP: a configured responder, or each certificate's AIA."""

    url: str | None = None
    aia: bool = True
    timeout: float = 10.0

    def to_json(self) -> dict[str, Any]:
        """JSON form, as a job records it."""
        return {"url": self.url, "aia": self.aia, "timeout": self.timeout}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> OcspConfig:
        """The config a job recorded (no key: OCSP was off, as in records before it)."""
        if not data:
            return cls(aia=False)
        return cls(data.get("url"), bool(data.get("aia", True)), float(data.get("timeout", 10)))


@dataclass
class Outcome:
    """A verdict with its revocation answers and their evidence, JSON-ready."""

    result: dict[str, Any]
    revocation: list[dict[str, Any]] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=lambda: {"crls": [], "ocsp": []})

    def to_json(self) -> dict[str, Any]:
        """JSON form, as a worker returns it."""
        return {"result": self.result, "revocation": self.revocation, "evidence": self.evidence}


def _unknown(source: str, detail: str) -> RevocationResult:
    return RevocationResult(RevocationStatus.UNKNOWN, source=source, detail=detail)


def _request_nonce(request: bytes) -> bytes | None:
    try:
        ext = x509_ocsp.load_der_ocsp_request(request).extensions
        return ext.get_extension_for_class(x509.OCSPNonce).value.nonce
    except (ValueError, x509.ExtensionNotFound):
        return None


class ServiceRevocation:
    """Store first, then OCSP; every answer and its evidence kept (see the module doc).

    Live: ``store`` (and the network for OCSP). Replay: ``crls`` (archived DER of the CRLs a
    record names) and ``ocsp_replay`` (the record's OCSP exchanges). Soft-fail is not applied
    here: :meth:`check` hands this source to the policy (``check_revocation``), once.
    """

    source_name = "service"

    def __init__(
        self,
        *,
        soft_fail: bool,
        ocsp: OcspConfig,
        store: RevocationStore | None = None,
        crls: Sequence[bytes] | None = None,
        ocsp_replay: Sequence[dict[str, Any]] | None = None,
    ) -> None:
        self.policy = RevocationPolicy(soft_fail=soft_fail, ocsp_timeout=ocsp.timeout)
        self.ocsp = ocsp
        self.store = store
        self._files = CrlFiles(list(crls)) if crls else None
        self._replay = list(ocsp_replay) if ocsp_replay is not None else None
        self.answers: list[dict[str, Any]] = []
        self.crls_used: list[dict[str, Any]] = []
        self.ocsp_used: list[dict[str, Any]] = []
        # Answers fetched ahead by prefetch(), taken in order by status(): one per occurrence
        # of a certificate, so a repeated certificate has its own exchange (as replay wants).
        self._ahead: dict[tuple[Any, ...], list[tuple[RevocationResult, RevocationResult | None]]]
        self._ahead = {}

    def evidence(self) -> dict[str, Any]:
        """What the answers rest on: ``{"crls": [...], "ocsp": [...]}``."""
        return {"crls": list(self.crls_used), "ocsp": list(self.ocsp_used)}

    def check(
        self, cert: JpkiCertificate, issuer: JpkiCertificate, at: datetime
    ) -> RevocationResult:
        """The policy's answer (soft-fail applied once), remembered with the evidence."""
        res = check_revocation(cert, issuer, sources=[self], at=at, policy=self.policy)
        self.answers.append(
            {"serial": cert.serial_hex, "subject": cert.subject_text, **res.to_json()}
        )
        return res

    def status(
        self,
        cert: x509.Certificate,
        issuer: x509.Certificate,
        *,
        at: datetime,
        max_age: timedelta | None = None,
    ) -> RevocationResult:
        """The CRL answer, then OCSP when that is UNKNOWN (:meth:`prefetch`'s answers first)."""
        ahead = self._ahead.get(_pair_key(cert, issuer, at, max_age))
        if ahead:
            res, answer = ahead.pop(0)
        else:
            res, answer = self._crl_status(cert, issuer, at, max_age), None
        url = self._ocsp_url(cert)
        if res.status is not RevocationStatus.UNKNOWN or url is None:
            return res
        if answer is None:
            answer = self._ocsp_status(cert, issuer, at, url)
        if answer.status is not RevocationStatus.UNKNOWN:
            return answer
        return _unknown(res.source, f"{res.detail}; {answer.source}: {answer.detail}")

    def prefetch(
        self, pairs: Sequence[tuple[x509.Certificate, x509.Certificate]], at: datetime
    ) -> None:
        """Ask OCSP, concurrently and within one total deadline (``ocsp.timeout``), for every
        (certificate, issuer) the store cannot tell; :meth:`status` then takes these answers.

        A status check of many certificates otherwise waits for them one after another: a
        silent responder would hold the worker for the deadline once per certificate.
        Evidence is kept in the order of ``pairs``. Replay asks no network: nothing to do.
        """
        if self._replay is not None:
            return
        max_age = self.policy.max_crl_age
        todo: list[tuple[tuple[Any, ...], x509.Certificate, x509.Certificate, str, int]] = []
        for cert, issuer in pairs:
            key = _pair_key(cert, issuer, at, max_age)
            res = self._crl_status(cert, issuer, at, max_age)
            slot = self._ahead.setdefault(key, [])
            slot.append((res, None))
            url = self._ocsp_url(cert)
            if res.status is RevocationStatus.UNKNOWN and url is not None:
                todo.append((key, cert, issuer, url, len(slot) - 1))
        if not todo:
            return
        deadline = time.monotonic() + self.ocsp.timeout
        recs = [
            {"serial": f"{c.serial_number:x}", "url": u, "request": None, "response": None}
            for _k, c, _i, u, _n in todo
        ]
        with ThreadPoolExecutor(max_workers=min(len(todo), 16)) as ex:
            futures = [
                ex.submit(self._ocsp_fetch, c, i, at, u, rec, deadline)
                for (_k, c, i, u, _n), rec in zip(todo, recs, strict=True)
            ]
            answers = [f.result() for f in futures]
        for (key, _c, _i, _u, n), rec, answer in zip(todo, recs, answers, strict=True):
            self.ocsp_used.append(rec)
            self._ahead[key][n] = (self._ahead[key][n][0], answer)

    def _crl_status(
        self,
        cert: x509.Certificate,
        issuer: x509.Certificate,
        at: datetime,
        max_age: timedelta | None,
    ) -> RevocationResult:
        if self.store is not None:
            res, used = self.store.check_with_evidence(cert, issuer, at=at, max_age=max_age)
            for ref in used:
                j = ref.to_json()
                if j not in self.crls_used:
                    self.crls_used.append(j)
            return res
        if self._files is None:
            return _unknown("store", "no CRL in the revocation store covers this certificate")
        return self._files.status(cert, issuer, at=at, max_age=max_age)

    def _ocsp_url(self, cert: x509.Certificate) -> str | None:
        if self.ocsp.url:
            return self.ocsp.url
        if not self.ocsp.aia:
            return None
        try:
            aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
        except (x509.ExtensionNotFound, ValueError):
            return None
        for ad in aia:
            if ad.access_method == AuthorityInformationAccessOID.OCSP and isinstance(
                ad.access_location, x509.UniformResourceIdentifier
            ):
                url = ad.access_location.value
                if url.startswith(("http://", "https://")):
                    return url
        return None

    def _ocsp_status(
        self, cert: x509.Certificate, issuer: x509.Certificate, at: datetime, url: str
    ) -> RevocationResult:
        serial = f"{cert.serial_number:x}"
        rec: dict[str, Any] = {"serial": serial, "url": url, "request": None, "response": None}
        if self._replay is not None:
            return self._ocsp_replayed(cert, issuer, at, rec)
        self.ocsp_used.append(rec)
        return self._ocsp_fetch(cert, issuer, at, url, rec, time.monotonic() + self.ocsp.timeout)

    def _ocsp_fetch(
        self,
        cert: x509.Certificate,
        issuer: x509.Certificate,
        at: datetime,
        url: str,
        rec: dict[str, Any],
        deadline: float,
    ) -> RevocationResult:
        # Thread-safe: it touches only its own ``rec``.
        def fetch(u: str, body: bytes, timeout: float) -> bytes:
            # The wing's POST: one deadline for connect + send + receive.
            rec["request"] = b64(body)
            data = post(u, body, timeout)
            rec["response"] = b64(data)
            return data

        left = deadline - time.monotonic()
        if left <= 0:
            why = f"no time left of the {self.ocsp.timeout:g} s OCSP deadline"
            rec["error"] = why
            return _unknown(f"ocsp:{url}", why)
        try:
            source = OcspSource(url, timeout=left, fetch=fetch)
            return source.status(cert, issuer, at=at)
        except (RevocationError, UsageError) as exc:
            rec["error"] = str(exc)
            return _unknown(f"ocsp:{url}", str(exc))

    def _ocsp_replayed(
        self, cert: x509.Certificate, issuer: x509.Certificate, at: datetime, rec: dict[str, Any]
    ) -> RevocationResult:
        assert self._replay is not None
        found = next(
            (
                r
                for r in self._replay
                if r.get("serial") == rec["serial"] and r["url"] == rec["url"]
            ),
            None,
        )
        if found is None:
            return _unknown(f"ocsp:{rec['url']}", "no OCSP exchange recorded for this certificate")
        self._replay.remove(found)
        self.ocsp_used.append(found)
        if not found.get("response") or not found.get("request"):
            # A network failure cannot be re-run offline: it stays what it was, unknown.
            return _unknown(f"ocsp:{rec['url']}", str(found.get("error") or "no response"))
        try:
            return parse_response(
                unb64(found["response"]),
                cert,
                issuer,
                at=at,
                nonce=_request_nonce(unb64(found["request"])),
                skew=self.policy.clock_skew,
                source=f"ocsp:{rec['url']}",
            )
        except OcspError as exc:
            return _unknown(f"ocsp:{rec['url']}", str(exc))


def _pair_key(
    cert: x509.Certificate, issuer: x509.Certificate, at: datetime, max_age: timedelta | None
) -> tuple[Any, ...]:
    return (cert.fingerprint(hashes.SHA256()), issuer.fingerprint(hashes.SHA256()), at, max_age)


@dataclass
class Context:
    """One job's fixed inputs: trust anchors, time, soft-fail rule, revocation sources."""

    anchors: tuple[JpkiCertificate, ...]
    at: datetime
    soft_fail: bool
    revocation: ServiceRevocation

    @classmethod
    def make(cls, anchors: Sequence[bytes], at: datetime, revocation: ServiceRevocation) -> Context:
        """A context over DER anchors (the soft-fail rule is the revocation source's)."""
        cas = tuple(JpkiCertificate.load(a) for a in anchors)
        return cls(cas, at, revocation.policy.soft_fail, revocation)

    def policy(self, purpose: str | None = None, *, timed: bool = True) -> Policy:
        """The one policy a service call applies (``timed=False``: the verifier's clock)."""
        return Policy(
            anchors=self.anchors,
            at=self.at if timed else None,
            purpose=Purpose(purpose) if purpose is not None else None,
            revocation=self.revocation.check,
            soft_fail=self.soft_fail,
        )

    def outcome(
        self,
        result: VerificationResult | dict[str, Any],
        answers: list[dict[str, Any]] | None = None,
    ) -> Outcome:
        """The verdict with this job's revocation answers and evidence."""
        res = result if isinstance(result, dict) else result.to_dict()
        given = self.revocation.answers if answers is None else answers
        return Outcome(res, given, self.revocation.evidence())


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
    ctx: Context, challenge_id: str, nonce: bytes, cert_der: bytes, signature: bytes
) -> Outcome:
    """A login over ``nonce`` (already consumed by the caller), through ``LoginVerifier``."""
    verifier = LoginVerifier(
        _GivenNonce(challenge_id, nonce), ctx.policy(timed=False), clock=lambda: ctx.at
    )
    return ctx.outcome(verifier.verify(challenge_id, signature, cert_der))


def verify_raw_signature(
    ctx: Context,
    cert_der: bytes,
    signature: bytes,
    *,
    data: bytes | None,
    digest: bytes | None,
    hash_alg: str,
    purpose: str,
) -> Outcome:
    """PKCS#1 v1.5 over data or a digest, plus the chain and revocation at the job's time."""
    result = verify_signature(
        JpkiCertificate.load(cert_der),
        signature,
        data=data,
        digest=digest,
        hash_alg=HashAlgorithm(hash_alg),
        policy=ctx.policy(purpose),
    )
    return ctx.outcome(result)


def verify_cms_blob(
    ctx: Context, cms_der: bytes, *, content: bytes | None, purpose: str
) -> Outcome:
    """Verify a CMS SignedData blob (detached ``content`` or embedded) for the service."""
    return ctx.outcome(verify_cms(cms_der, ctx.policy(purpose), content=content))


def status_check(ctx: Context, certs: Sequence[bytes]) -> Outcome:
    """現況確認: good / revoked / unknown per certificate, with the reason."""
    items: list[dict[str, Any]] = []
    parsed: list[tuple[JpkiCertificate, JpkiCertificate | None] | str] = []
    for der in certs:
        try:
            cert = JpkiCertificate.load(der)
        except JpkiError as exc:
            parsed.append(f"not a certificate: {exc}")
            continue
        issuer = next(
            (ca for ca in ctx.anchors if issued_by(cert.certificate, ca.certificate)), None
        )
        parsed.append((cert, issuer))
    # Every OCSP question at once, one deadline for all; the loop below takes the answers.
    ctx.revocation.prefetch(
        [(p[0].certificate, p[1].certificate) for p in parsed if not isinstance(p, str) and p[1]],
        ctx.at,
    )
    for p in parsed:
        if isinstance(p, str):
            items.append({"status": "unknown", "detail": p})
            continue
        cert, issuer = p
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
        res = ctx.revocation.check(cert, issuer, ctx.at)
        items.append(ctx.revocation.answers[-1] | {"status": res.status.value})
    worst = "good"
    if any(i["status"] == "revoked" for i in items):
        worst = "revoked"
    elif any(i["status"] == "unknown" for i in items):
        worst = "unknown"
    status = {"good": Status.VALID, "revoked": Status.INVALID, "unknown": Status.INDETERMINATE}
    return ctx.outcome(
        {
            "status": status[worst].value,
            "reasons": [f"{len(items)} certificates checked"],
            "items": items,
        }
    )


def certificate_der(data: bytes) -> bytes:
    """DER of a certificate given as DER or PEM; the library's ``JpkiError`` if not one."""
    return JpkiCertificate.load(data).der


def crl_der(data: bytes) -> bytes:
    """The DER of a CRL given as DER or PEM."""
    return Crl.load(data).der


@dataclass(frozen=True)
class PreparedCrl:
    """A CRL verified against the service's anchors, ready for the store and the archive."""

    crl: Crl
    signer: x509.Certificate
    crl_id: str  # the store's name for it (hex)
    issuer_key: str  # SHA-256 of the signer's public key (hex): the store's issuer key
    issuer: str

    @property
    def number(self) -> int | None:
        """The CRL number (None when the CRL has none)."""
        return self.crl.number

    def load_into(self, store: RevocationStore) -> tuple[int | None, int | None]:
        """Make it current in ``store`` (atomic; numbers only go up): (number, previous)."""
        res = store.load(self.crl, [self.signer])
        return res.number, res.replaced


def prepare_crl(data: bytes, anchors: Sequence[bytes]) -> PreparedCrl:
    """Parse a CRL (DER or PEM) and verify it against the anchors (JPKI CAs sign their own)."""
    crl = Crl.load(data)
    signer = crl.verify([JpkiCertificate.load(a).certificate for a in anchors])
    return PreparedCrl(
        crl,
        signer,
        crl_identity(crl).hex(),
        issuer_key_id(signer).hex(),
        crl.issuer.rfc4514_string(),
    )


def current_crls(store: RevocationStore) -> tuple[list[StoredCrl], dict[bytes, str]]:
    """The store's current CRLs, and each issuer key's CA name."""
    names = {issuer_key_id(c): c.subject.rfc4514_string() for c in store.signers()}
    return store.current(), names


def pdf_available() -> bool:
    """True when PDF verification (``jpki[pdf]``: pyHanko and jpki.documents) is installed."""
    import importlib.util

    return importlib.util.find_spec("pyhanko") is not None


def verify_pdf_blob(ctx: Context, pdf: bytes) -> Outcome:
    """Every signature of a PDF (jpki.documents.verify_pdf), revocation through the service."""
    from jpki.documents.verify_pdf import RevocationSources, verify_pdf

    result = verify_pdf(
        pdf,
        trust_anchors=ctx.anchors,
        revocation=RevocationSources(store=ctx.revocation, soft_fail=ctx.soft_fail),
        at=ctx.at,
    )
    out = result.to_dict()
    answers = [
        {"field": s["field"], "status": s["status"], "subject": s.get("subject")}
        for s in out["signatures"]
    ]
    return ctx.outcome(out, answers)
