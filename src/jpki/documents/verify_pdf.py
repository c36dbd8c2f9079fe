"""PDF signature verification: pyHanko reads the PDF structure, jpki judges the signatures.

For every signature field: the CMS is checked by :func:`jpki.verify.verify_cms` over the bytes
its ByteRange names (so chain, key usage, JPKI kind and revocation follow the same policy as
``jpki verify cms``); pyHanko decides whether the ByteRange covers the whole revision and what
the later incremental updates changed (DocMDP / FieldMDP). Time rule:

- a valid, trusted signature timestamp proves the signing time: the chain and revocation are
  judged at that time (a later revocation that does not reach back, e.g. an address change,
  leaves the signature valid), and the state now is reported;
- without one, the claimed time (signingTime or /M) is reported as unproven and the signature
  must be good both at the claimed time and now.

Revocation "at the signing time" is asked of the sources as they are now (a current CRL lists
every earlier revocation with its date), then read for that time.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from asn1crypto import cms as asn1_cms

from jpki.cert import CertKind, JpkiCertificate
from jpki.errors import DocumentError, JpkiError, UsageError
from jpki.policy import Policy
from jpki.revocation.policy import (
    RevocationPolicy,
    RevocationReason,
    RevocationResult,
    RevocationStatus,
)
from jpki.verify.cms import parse_signed_data, verify_cms
from jpki.verify.path import RevocationCheck, RevocationOutcome
from jpki.verify.result import Status, TimestampInfo, VerificationResult, worst
from jpki.verify.timestamp import signature_timestamp_tokens, verify_timestamp_token

_SIG_SUBFILTERS = ("/adbe.pkcs7.detached", "/ETSI.CAdES.detached")
_DOC_TS_SUBFILTER = "/ETSI.RFC3161"
# pyHanko's reader lets many kinds escape on a damaged file (asserts, zlib.error, ...): at
# this boundary every one of them means "this input is bad", never a traceback.
_PDF_ERRORS = (Exception,)
# Reasons a revocation reaches back before its date: the key may have been misused earlier.
_BACKDATING = (RevocationReason.KEY_COMPROMISE, RevocationReason.CA_COMPROMISE)


@dataclass(frozen=True)
class RevocationSources:
    """Where revocation is asked (any combination; none: not checked, and said so)."""

    crls: Sequence[bytes] = ()
    ocsp_url: str | None = None
    store: Any = None  # jpki.revocation.store.RevocationStore
    soft_fail: bool = False

    @property
    def given(self) -> bool:
        """True when any source is named (CRLs, an OCSP URL or a store)."""
        return bool(self.crls) or self.ocsp_url is not None or self.store is not None


@dataclass(frozen=True)
class PdfSignatureReport:
    """One signature field's verdict."""

    field: str
    status: Status
    reasons: tuple[str, ...]
    kind: str = "signature"  # or "document timestamp"
    subfilter: str | None = None
    #: "entire file", "entire revision", or what is wrong with the ByteRange.
    coverage: str | None = None
    #: What the updates after this signature changed (pyHanko's modification level).
    changes_after: str | None = None
    docmdp: str | None = None
    signing_time: datetime | None = None
    signing_time_proven: bool = False
    timestamp: TimestampInfo | None = None
    certificate_kind: str | None = None
    subject: str | None = None
    basic_info: dict[str, Any] | None = None
    chain: tuple[str, ...] = ()
    now: VerificationResult | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of one signature; fields that do not apply are left out."""
        d: dict[str, Any] = {
            "field": self.field,
            "kind": self.kind,
            "status": self.status.value,
            "reasons": list(self.reasons),
        }
        for key in ("subfilter", "coverage", "changes_after", "docmdp"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        if self.signing_time is not None:
            d["signing_time"] = self.signing_time.isoformat()
            d["signing_time_proven"] = self.signing_time_proven
        if self.timestamp is not None:
            d["timestamp"] = self.timestamp.to_dict()
        for key in ("certificate_kind", "subject", "basic_info"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        if self.chain:
            d["chain"] = list(self.chain)
        if self.now is not None:
            d["now"] = {
                "status": self.now.status.value,
                "reasons": list(_signer_reasons(self.now)),
            }
        return d


@dataclass(frozen=True)
class PdfVerification:
    """The document's verdict: VALID only if every signature is and nothing unsigned follows."""

    status: Status
    reasons: tuple[str, ...]
    signatures: tuple[PdfSignatureReport, ...] = field(default=())
    unsigned_changes_after_last: str | None = None

    @property
    def valid(self) -> bool:
        """True when the overall status is VALID."""
        return self.status is Status.VALID

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: overall status, reasons and each signature's report."""
        d: dict[str, Any] = {
            "status": self.status.value,
            "reasons": list(self.reasons),
            "signatures": [s.to_dict() for s in self.signatures],
        }
        if self.unsigned_changes_after_last is not None:
            d["unsigned_changes_after_last"] = self.unsigned_changes_after_last
        return d


def _checker(
    sources: RevocationSources,
    signing_time: datetime,
    now: datetime,
    asked: dict[tuple[bytes, bytes], RevocationResult],
) -> RevocationCheck:
    """Ask the sources as of ``now`` (once per certificate, kept in ``asked``); read the
    answer for ``signing_time``."""
    from jpki.revocation.policy import check_revocation

    policy = RevocationPolicy(soft_fail=sources.soft_fail)

    def check(cert: JpkiCertificate, issuer: JpkiCertificate, _at: datetime) -> RevocationOutcome:
        key = (cert.fingerprint_sha256, issuer.fingerprint_sha256)
        res = asked.get(key)
        if res is None:
            res = asked[key] = check_revocation(
                cert,
                issuer,
                crls=sources.crls,
                ocsp_url=sources.ocsp_url,
                store=sources.store,
                at=now,
                policy=policy,
            )
        if (
            res.status is RevocationStatus.REVOKED
            and res.revoked_at is not None
            and res.revoked_at > signing_time
            and res.reason not in _BACKDATING
        ):
            return RevocationResult(
                RevocationStatus.GOOD,
                source=res.source,
                detail=(
                    f"revoked only after the signing time, on {res.revoked_at.isoformat()} "
                    f"({res.reason.value if res.reason else 'no reason given'})"
                ),
            )
        return res

    return check


def _cms_der(raw: bytes) -> bytes:
    """The CMS without the zero padding of /Contents (the DER length decides)."""
    try:
        ci = asn1_cms.ContentInfo.load(raw)
        n = len(ci.dump())
    except _PDF_ERRORS as exc:
        raise DocumentError(f"/Contents is not a CMS structure: {exc}") from None
    if raw[n:].strip(b"\x00"):
        raise DocumentError("/Contents has data after the CMS structure")
    return raw[:n]


def _signed_bytes(data: bytes, byte_range: Any) -> bytes:
    try:
        br = [int(x) for x in byte_range]
    except _PDF_ERRORS:
        raise DocumentError("/ByteRange is not a list of integers") from None
    if len(br) != 4 or br[0] != 0 or min(br) < 0:
        raise DocumentError(f"/ByteRange {br} is not [0 a b c]")
    _, a, b, c = br
    if a > b or b + c > len(data):
        raise DocumentError(f"/ByteRange {br} reaches outside the {len(data)}-byte file")
    return data[:a] + data[b : b + c]


def _coverage_text(level: Any) -> str:
    name = getattr(level, "name", str(level))
    return {
        "ENTIRE_FILE": "entire file",
        "ENTIRE_REVISION": "entire revision",
        "CONTIGUOUS_BLOCK_FROM_START": "the ByteRange does not cover its whole revision",
        "UNCLEAR": "the ByteRange is not a standard one around /Contents",
    }.get(name, name.lower())


def _level_text(diff: Any) -> str:
    level = getattr(diff, "modification_level", None)
    if level is None:
        return f"not permitted: {diff}"
    return str(level.name).lower().replace("_", " ")


def _claimed_time(emb: Any, signing_time: datetime | None) -> datetime | None:
    if signing_time is not None:
        return signing_time
    try:
        t = emb.self_reported_timestamp
    except _PDF_ERRORS:
        return None
    return t if isinstance(t, datetime) and t.tzinfo is not None else None


def _signer_details(der: bytes) -> dict[str, Any]:
    try:
        cert = JpkiCertificate.load(der)
        info = cert.basic_info if cert.kind in (CertKind.SIGNING, CertKind.PHONE_SIGNING) else None
    except JpkiError:
        return {}
    return {
        "certificate_kind": cert.kind.value,
        "subject": cert.subject_text,
        "basic_info": info.as_dict() if info is not None else None,
    }


def _signer_reasons(result: VerificationResult) -> tuple[str, ...]:
    return result.signers[0].reasons if len(result.signers) == 1 else result.reasons


def verify_pdf(
    data: bytes,
    *,
    trust_anchors: Sequence[JpkiCertificate] | None,
    timestamp_trust: Sequence[JpkiCertificate] | None = None,
    revocation: RevocationSources | None = None,
    at: datetime | None = None,
    allow_unsigned_changes: bool = False,
) -> PdfVerification:
    """Verify every signature of a PDF (see the module docstring for the rules).

    ``at`` replaces "now" (for re-checking an old decision). Malformed PDFs raise
    ``DocumentError``; a malformed signature is that signature's INVALID verdict.
    """
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign import fields

    if at is not None and (at.tzinfo is None or at.utcoffset() is None):
        raise UsageError("validation time must be timezone-aware")
    now = at or datetime.now(UTC)
    sources = revocation or RevocationSources()
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        if reader.encrypted:
            raise DocumentError("the PDF is encrypted: decrypt it first")
        found = list(fields.enumerate_sig_fields(reader, filled_status=True))
    except JpkiError:
        raise
    except (PdfError, *_PDF_ERRORS) as exc:
        raise DocumentError(f"not a PDF pyHanko can read: {exc}") from None
    if not found:
        return PdfVerification(Status.INVALID, ("the PDF has no signed signature fields",))
    reports: list[tuple[int, PdfSignatureReport, Any]] = []
    for fq_name, _value, ref in found:
        rev, report, emb = _one(reader, data, str(fq_name), ref, trust_anchors, timestamp_trust,
                                sources, now)  # fmt: skip
        reports.append((rev, report, emb))
    reports.sort(key=lambda t: t[0])
    reasons: list[str] = []
    status = worst(r.status for _rev, r, _e in reports)
    after_last: str | None = None
    last = reports[-1][1]
    if last.changes_after not in (None, "none", "lta updates"):
        after_last = last.changes_after
        if allow_unsigned_changes:
            reasons.append(
                f"the document was changed after the last signature ({after_last}); "
                "accepted because unsigned changes were allowed"
            )
        else:
            status = Status.INVALID
            reasons.append(
                f"the document was changed after the last signature ({after_last}): what is "
                "shown is not what was signed"
            )
    n = len(reports)
    ok = sum(1 for _r, rep, _e in reports if rep.status is Status.VALID)
    reasons.insert(0, f"{ok} of {n} signature(s) valid")
    return PdfVerification(status, tuple(reasons), tuple(r for _v, r, _e in reports), after_last)


def _one(
    reader: Any,
    data: bytes,
    name: str,
    ref: Any,
    anchors: Sequence[JpkiCertificate] | None,
    tsa_anchors: Sequence[JpkiCertificate] | None,
    sources: RevocationSources,
    now: datetime,
) -> tuple[int, PdfSignatureReport, Any]:
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.sign.diff_analysis import DEFAULT_DIFF_POLICY
    from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature

    try:
        emb = EmbeddedPdfSignature(reader, ref, name)
        revision = int(emb.signed_revision)
        subfilter = str(emb.sig_object.get("/SubFilter"))
        sig_type = str(emb.sig_object.get("/Type", "/Sig"))
    except (PdfError, *_PDF_ERRORS) as exc:
        bad = PdfSignatureReport(name, Status.INVALID, (f"signature unreadable: {exc}",))
        return 1 << 30, bad, None
    base: dict[str, Any] = {"subfilter": subfilter.lstrip("/")}
    try:
        signed = _signed_bytes(data, emb.byte_range)
        cms_der = _cms_der(bytes(emb.pkcs7_content))
    except DocumentError as exc:
        return revision, PdfSignatureReport(name, Status.INVALID, (str(exc),), **base), emb
    try:
        coverage = emb.evaluate_signature_coverage()
        emb.coverage = coverage  # type: ignore[assignment]  # pyHanko declares it None
        cov_text = _coverage_text(coverage)
        diff = emb.evaluate_modifications(DEFAULT_DIFF_POLICY)
        changes = _level_text(diff)
        docmdp = emb.docmdp_level
    except (PdfError, *_PDF_ERRORS) as exc:
        cov_text, changes, docmdp = f"cannot be evaluated: {exc}", None, None
    base.update(coverage=cov_text, changes_after=changes,
                docmdp=docmdp.name.lower() if docmdp is not None else None)  # fmt: skip
    problems: list[str] = []
    if cov_text not in ("entire file", "entire revision"):
        problems.append(f"ByteRange: {cov_text}")
    if changes is not None and changes.startswith("not permitted"):
        problems.append(f"changes after signing {changes} (DocMDP/FieldMDP or unsafe update)")

    if sig_type == "/DocTimeStamp" or subfilter == _DOC_TS_SUBFILTER:
        ts = verify_timestamp_token(cms_der, signed, trust_anchors=tsa_anchors)
        status = worst([ts.status, *([Status.INVALID] if problems else [])])
        rep = PdfSignatureReport(
            name, status, (*problems, *ts.reasons), kind="document timestamp",
            signing_time=ts.time, signing_time_proven=ts.status is Status.VALID,
            timestamp=ts, **base,
        )  # fmt: skip
        return revision, rep, emb
    if subfilter not in _SIG_SUBFILTERS:
        problems.append(f"unsupported /SubFilter {subfilter} (need adbe.pkcs7.detached or "
                        "ETSI.CAdES.detached)")  # fmt: skip
        return revision, PdfSignatureReport(name, Status.INVALID, tuple(problems), **base), emb

    # The signature timestamp decides which time the chain is judged at.
    ts_info: TimestampInfo | None = None
    try:
        ci = asn1_cms.ContentInfo.load(cms_der)
        signer_infos = ci["content"]["signer_infos"]
        tokens = signature_timestamp_tokens(signer_infos[0]) if len(signer_infos) == 1 else []
        if tokens:
            ts_info = verify_timestamp_token(
                tokens[0], bytes(signer_infos[0]["signature"].native), trust_anchors=tsa_anchors
            )
    except _PDF_ERRORS:
        tokens = []
    proven = ts_info is not None and ts_info.status is Status.VALID and ts_info.time is not None
    try:
        parsed = parse_signed_data(cms_der)
    except JpkiError as exc:
        problems.append(f"CMS: {exc}")
        return revision, PdfSignatureReport(name, Status.INVALID, tuple(problems), **base), emb
    one = parsed.signers[0] if len(parsed.signers) == 1 else None
    details = _signer_details(one.certificate.der) if one and one.certificate else {}
    if proven:
        assert ts_info is not None and ts_info.time is not None
        when = ts_info.time
    else:
        when = _claimed_time(emb, one.signing_time if one else None) or now
    # One question per certificate to the sources serves both readings (then and now).
    asked: dict[tuple[bytes, bytes], RevocationResult] = {}
    use = sources.given and bool(anchors)

    def policy(at: datetime, check: RevocationCheck | None) -> Policy:
        return Policy(
            anchors=tuple(anchors or ()),
            at=at,
            revocation=check,
            soft_fail=sources.soft_fail and check is not None,
            timestamp_anchors=tuple(tsa_anchors or ()),
        )

    rev_at = _checker(sources, when, now, asked) if use else None
    at_signing = verify_cms(cms_der, policy(when, rev_at), content=signed)
    if when is now:
        at_now = at_signing  # no time claimed: "then" is "now"
    else:
        rev_now = _checker(sources, now, now, asked) if use else None
        at_now = verify_cms(cms_der, policy(now, rev_now), content=signed)
    reasons = list(problems)
    if proven:
        reasons.append(f"signing time {when.isoformat()} proven by the signature timestamp")
        status = at_signing.status
        if at_now.status is not Status.VALID:
            reasons.append(
                f"now the certificate would be {at_now.status.value} (the timestamp proves the "
                "signature was made before)"
            )
    else:
        if ts_info is not None:
            reasons.append(f"signature timestamp not proven ({ts_info.status.value})")
        claim = "claimed" if when is not now else "no signing time given; judged"
        reasons.append(f"signing time {when.isoformat()} {claim} (NOT proven: no trusted "
                       "timestamp), so the signature must also hold now")  # fmt: skip
        status = worst((at_signing.status, at_now.status))
    if problems:
        status = Status.INVALID
    then_reasons, now_reasons = _signer_reasons(at_signing), _signer_reasons(at_now)
    reasons += [f"at signing time: {r}" for r in then_reasons]
    if not proven:
        reasons += [f"now: {r}" for r in now_reasons if r not in then_reasons]
    rep = PdfSignatureReport(
        name, status, tuple(reasons), signing_time=when if when is not now else None,
        signing_time_proven=proven, timestamp=at_signing.timestamp or ts_info,
        chain=at_signing.chain, now=at_now, **base, **details,
    )  # fmt: skip
    return revision, rep, emb
