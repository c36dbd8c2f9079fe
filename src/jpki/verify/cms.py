"""CMS SignedData (RFC 5652) verification: attached or detached, with or without signed
attributes, one or several signers, certificates embedded or supplied; PEM or DER.

Parsing is asn1crypto; anything malformed raises ``SignatureFormatError``. The signed
attributes are verified over their original encoding (re-tagged as SET), never re-encoded.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from asn1crypto import cms as asn1_cms
from asn1crypto import core as asn1_core
from asn1crypto import pem as asn1_pem

from jpki.cert import JpkiCertificate
from jpki.digestinfo import PREFIXES
from jpki.errors import JpkiError, SignatureFormatError, UsageError
from jpki.verify.digest import OID_TO_HASH, HashAlgorithm, digest_of
from jpki.verify.path import RevocationCheck, validate_chain
from jpki.verify.result import Status, TimestampInfo, VerificationResult, worst
from jpki.verify.signature import (
    Purpose,
    check_rsa_pkcs1,
    key_usage_problems,
    purpose_of,
    rsa_public_key,
    validity_problems,
)
from jpki.verify.timestamp import signature_timestamp_tokens, verify_timestamp_token

_ASN1_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError)
_RSA_OIDS = {
    "1.2.840.113549.1.1.1": None,  # rsaEncryption: hash from digestAlgorithm
    "1.2.840.113549.1.1.5": HashAlgorithm.SHA1,
    "1.2.840.113549.1.1.11": HashAlgorithm.SHA256,
    "1.2.840.113549.1.1.12": HashAlgorithm.SHA384,
    "1.2.840.113549.1.1.13": HashAlgorithm.SHA512,
}
_OID_DATA = "1.2.840.113549.1.7.1"


@dataclass(frozen=True)
class SignerInfo:
    """One parsed signer: what it signed, with which key, and the raw inputs to check."""

    index: int
    sid: str
    certificate: JpkiCertificate | None
    digest_algorithm: HashAlgorithm | None
    signature_algorithm_oid: str
    signature: bytes
    #: DER of the signed attributes re-tagged as SET OF (what was signed), or None.
    signed_attrs_der: bytes | None
    content_type_attr: str | None
    message_digest_attr: bytes | None
    signing_time: datetime | None
    attribute_problems: tuple[str, ...]
    #: DER of each RFC 3161 signatureTimeStampToken (unsigned attribute).
    timestamp_tokens: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class SignedData:
    """A parsed CMS SignedData."""

    content_type: str
    content: bytes | None  # None: detached
    certificates: tuple[JpkiCertificate, ...]
    signers: tuple[SignerInfo, ...]


def _unarmor(data: bytes) -> bytes:
    if asn1_pem.detect(data):
        try:
            _kind, _headers, der = asn1_pem.unarmor(data)
        except _ASN1_ERRORS as exc:
            raise SignatureFormatError(f"bad PEM around the CMS structure: {exc}") from None
        return bytes(der)
    return bytes(data)


def parse_signed_data(
    data: bytes, *, extra_certificates: Iterable[JpkiCertificate] = ()
) -> SignedData:
    """Parse PEM or DER CMS ContentInfo holding SignedData (``SignatureFormatError`` if not)."""
    der = _unarmor(data)
    try:
        return _parse(der, tuple(extra_certificates))
    except JpkiError:
        raise
    except _ASN1_ERRORS as exc:
        raise SignatureFormatError(f"malformed CMS SignedData: {exc}") from None


def _parse(der: bytes, extra: tuple[JpkiCertificate, ...]) -> SignedData:
    if not der or der[0] != 0x30:
        raise SignatureFormatError("not a CMS structure (expected a DER SEQUENCE or PEM)")
    ci = asn1_cms.ContentInfo.load(der, strict=True)
    if ci["content_type"].dotted != "1.2.840.113549.1.7.2":
        raise SignatureFormatError(
            f"CMS content type is {ci['content_type'].native}, not signed data"
        )
    sd = ci["content"]
    eci = sd["encap_content_info"]
    econtent_type = eci["content_type"].dotted
    raw = eci["content"]
    content: bytes | None
    if isinstance(raw, asn1_core.Void) or raw.contents is None:
        content = None
    else:
        value = raw.native if econtent_type == _OID_DATA else raw.contents
        if isinstance(value, asn1_core.Asn1Value):
            value = value.dump()
        if not isinstance(value, bytes):
            raise SignatureFormatError("encapsulated content is not an OCTET STRING")
        content = value
    embedded: list[JpkiCertificate] = []
    certs = sd["certificates"]
    if not isinstance(certs, asn1_core.Void):
        for n, choice in enumerate(certs, 1):
            if choice.name == "certificate":
                embedded.append(_embedded_certificate(n, choice.chosen.dump()))
    pool = tuple(embedded) + extra
    signers = tuple(
        _parse_signer(i, si, pool, econtent_type) for i, si in enumerate(sd["signer_infos"])
    )
    return SignedData(econtent_type, content, tuple(embedded), signers)


def _embedded_certificate(n: int, der: bytes) -> JpkiCertificate:
    """An embedded certificate, fully decoded now: a damaged one makes the CMS malformed."""
    try:
        cert = JpkiCertificate.load(der)
        # JpkiCertificate decodes lazily: touch everything verification will read.
        _ = (cert.subject_text, cert.issuer_text, cert.public_key, cert.kind, cert.not_after)
        _ = (cert.not_before, cert.subject_key_id, _issuer_der(cert))
        key_usage_problems(cert, Purpose.ANY)  # decodes the extensions
    except JpkiError as exc:
        raise SignatureFormatError(f"embedded certificate {n} is malformed: {exc}") from None
    return cert


def _parse_signer(
    index: int, si: Any, pool: tuple[JpkiCertificate, ...], econtent_type: str
) -> SignerInfo:
    sid = si["sid"]
    cert: JpkiCertificate | None = None
    if sid.name == "issuer_and_serial_number":
        issuer_der = sid.chosen["issuer"].dump()
        serial = sid.chosen["serial_number"].native
        sid_text = f"issuer {sid.chosen['issuer'].human_friendly}, serial {serial:x}"
        for c in pool:
            if c.certificate.serial_number == serial and _issuer_der(c) == issuer_der:
                cert = c
                break
    elif sid.name == "subject_key_identifier":
        ski = bytes(sid.chosen.native)
        sid_text = f"subject key id {ski.hex()}"
        for c in pool:
            if c.subject_key_id is not None and bytes(c.subject_key_id) == ski:
                cert = c
                break
    else:  # pragma: no cover - asn1crypto only knows these two
        raise SignatureFormatError(f"unknown signer identifier {sid.name}")
    dig_alg = OID_TO_HASH.get(si["digest_algorithm"]["algorithm"].dotted)
    sig_oid = si["signature_algorithm"]["algorithm"].dotted
    signature = bytes(si["signature"].native)
    attrs = si["signed_attrs"]
    problems: list[str] = []
    signed_der: bytes | None = None
    ctype = mdigest = None
    stime = None
    if not isinstance(attrs, asn1_core.Void) and attrs.contents is not None:
        dumped = attrs.dump()
        if dumped[:1] != b"\xa0":
            raise SignatureFormatError("signed attributes are not tagged [0]")
        signed_der = b"\x31" + dumped[1:]
        seen: dict[str, int] = {}
        for attr in attrs:
            oid = attr["type"].dotted
            seen[oid] = seen.get(oid, 0) + 1
            values = attr["values"]
            if len(values) != 1:
                problems.append(f"signed attribute {attr['type'].native} has {len(values)} values")
                continue
            if oid == "1.2.840.113549.1.9.3":
                ctype = values[0].dotted
            elif oid == "1.2.840.113549.1.9.4":
                mdigest = bytes(values[0].native)
            elif oid == "1.2.840.113549.1.9.5":
                t = values[0].native
                stime = t if isinstance(t, datetime) else None
        problems += [f"signed attribute {o} appears {n} times" for o, n in seen.items() if n > 1]
        if ctype is None:
            problems.append("signed attributes lack contentType (RFC 5652 §11.1)")
        elif ctype != econtent_type:
            problems.append(
                f"signed contentType {ctype} differs from the encapsulated type {econtent_type}"
            )
        if mdigest is None:
            problems.append("signed attributes lack messageDigest (RFC 5652 §11.2)")
    return SignerInfo(
        index=index,
        sid=sid_text,
        certificate=cert,
        digest_algorithm=dig_alg,
        signature_algorithm_oid=sig_oid,
        signature=signature,
        signed_attrs_der=signed_der,
        content_type_attr=ctype,
        message_digest_attr=mdigest,
        signing_time=stime,
        attribute_problems=tuple(problems),
        timestamp_tokens=tuple(signature_timestamp_tokens(si)),
    )


def _issuer_der(cert: JpkiCertificate) -> bytes:
    from asn1crypto import x509 as asn1_x509

    return bytes(asn1_x509.Certificate.load(cert.der).issuer.dump())


def verify_cms(
    data: bytes,
    *,
    content: bytes | None = None,
    certificates: Iterable[JpkiCertificate] = (),
    trust_anchors: Sequence[JpkiCertificate] | None = None,
    at: datetime | None = None,
    purpose: Purpose | str = Purpose.SIGN,
    revocation: RevocationCheck | None = None,
    soft_fail: bool = False,
    timestamp_trust: Sequence[JpkiCertificate] | None = None,
) -> VerificationResult:
    """Verify every signer of a CMS SignedData; the overall status is the worst signer's.

    ``content`` is required for detached signatures. ``certificates`` supplements the
    embedded ones. With ``trust_anchors`` each signer's chain is validated at ``at``
    (default: now); without, only the signatures, key usage and validity are checked and a
    reason says the chain was not. The signingTime attribute is reported, not trusted.
    A signature timestamp (RFC 3161 unsigned attribute) is checked and reported in
    ``timestamp``: proven with ``timestamp_trust`` (TSA anchors), else indeterminate; a token
    that does not match the signature makes the signer invalid.
    """
    if at is not None and (at.tzinfo is None or at.utcoffset() is None):
        raise UsageError("validation time must be timezone-aware")
    when = at if at is not None else datetime.now(UTC)
    purp = purpose_of(purpose)
    extra = tuple(certificates)
    sd = parse_signed_data(data, extra_certificates=extra)
    reasons: list[str] = []
    if sd.content is None and content is None:
        return VerificationResult(
            Status.INDETERMINATE,
            ("detached signature: the signed content must be supplied to verify it",),
        )
    signed_content = sd.content if sd.content is not None else content
    assert signed_content is not None
    if sd.content is not None and content is not None and sd.content != content:
        reasons.append("the content supplied differs from the content embedded in the CMS")
    if not sd.signers:
        return VerificationResult(Status.INVALID, ("the CMS structure has no signers",))
    pool = sd.certificates + extra
    results = tuple(
        _with_timestamp(
            _verify_signer(
                s, signed_content, pool, trust_anchors, when, purp, revocation, soft_fail
            ),
            s,
            timestamp_trust,
        )
        for s in sd.signers
    )
    status = worst(r.status for r in results)
    if reasons:
        status = Status.INVALID
    n = len(results)
    for i, r in enumerate(results, 1):
        label = f"signer {i}/{n}" + (f" ({r.subject})" if r.subject else "")
        reasons.append(f"{label}: {r.status.value}: " + "; ".join(r.reasons))
    first = results[0]
    return VerificationResult(
        status,
        tuple(reasons),
        certificate_fingerprint=first.certificate_fingerprint if n == 1 else None,
        certificate_kind=first.certificate_kind if n == 1 else None,
        subject=first.subject if n == 1 else None,
        signing_time=first.signing_time if n == 1 else None,
        chain=first.chain if n == 1 else (),
        signers=results,
        timestamp=first.timestamp if n == 1 else None,
    )


def _with_timestamp(
    result: VerificationResult, s: SignerInfo, trust: Sequence[JpkiCertificate] | None
) -> VerificationResult:
    if not s.timestamp_tokens:
        return result
    if len(s.timestamp_tokens) > 1:
        # Several tokens are allowed; the first is reported, the others are not vouched for.
        note = f" ({len(s.timestamp_tokens) - 1} further token(s) not checked)"
    else:
        note = ""
    ts: TimestampInfo = verify_timestamp_token(
        s.timestamp_tokens[0], s.signature, trust_anchors=trust
    )
    when = ts.time.isoformat() if ts.time else "unreadable time"
    line = f"signature timestamp {when}" + (f" by {ts.tsa}" if ts.tsa else "")
    line += f": {ts.status.value}{note}: " + "; ".join(ts.reasons)
    # Only a token contradicting the signature spoils it; an unproven one is just reported.
    worse = Status.INVALID if ts.status is Status.INVALID else None
    return replace(result.with_reasons(line, status=worse), timestamp=ts)


def _verify_signer(
    s: SignerInfo,
    content: bytes,
    pool: tuple[JpkiCertificate, ...],
    anchors: Sequence[JpkiCertificate] | None,
    at: datetime,
    purpose: Purpose,
    revocation: RevocationCheck | None,
    soft_fail: bool,
) -> VerificationResult:
    cert = s.certificate
    if cert is None:
        return VerificationResult(
            Status.INDETERMINATE,
            (f"signer certificate ({s.sid}) is neither embedded nor supplied",),
            signing_time=s.signing_time,
        )
    base: dict[str, Any] = {
        "certificate_fingerprint": cert.fingerprint_sha256.hex(),
        "certificate_kind": cert.kind.value,
        "subject": cert.subject_text,
        "signing_time": s.signing_time,
    }
    if s.digest_algorithm is None:
        return VerificationResult(Status.INVALID, ("unsupported digest algorithm",), **base)
    if s.signature_algorithm_oid not in _RSA_OIDS:
        return VerificationResult(
            Status.INVALID,
            (
                f"unsupported signature algorithm {s.signature_algorithm_oid} "
                "(need RSA PKCS#1 v1.5)",
            ),
            **base,
        )
    implied = _RSA_OIDS[s.signature_algorithm_oid]
    problems = list(s.attribute_problems)
    if implied is not None and implied is not s.digest_algorithm:
        problems.append(
            f"signature algorithm implies {implied.value} but digestAlgorithm is "
            f"{s.digest_algorithm.value}"
        )
    content_digest = digest_of(s.digest_algorithm, content)
    if s.signed_attrs_der is not None:
        if s.message_digest_attr is not None and not hmac.compare_digest(
            s.message_digest_attr, content_digest
        ):
            problems.append(
                "the content does not match the signed messageDigest (content altered, or "
                "the wrong content was supplied)"
            )
        signed_digest = digest_of(s.digest_algorithm, s.signed_attrs_der)
    else:
        signed_digest = content_digest
    expected = PREFIXES[s.digest_algorithm] + signed_digest
    why = check_rsa_pkcs1(rsa_public_key(cert), s.signature, expected)
    ku_problems, notes = key_usage_problems(cert, purpose)
    reasons = ["signature matches the signer's certificate" if why is None else why]
    problems += ku_problems
    if anchors is None:
        problems += validity_problems(cert, at)
    status = Status.VALID if why is None and not problems else Status.INVALID
    reasons += problems + notes
    if s.signing_time is not None:
        reasons.append(f"claimed signing time {s.signing_time.isoformat()} (not trusted)")
    result = VerificationResult(status, tuple(reasons), **base)
    if anchors is None:
        # The certificates come with the CMS (anyone can make one): without anchors "valid"
        # would vouch for a stranger, so the answer is indeterminate, never valid.
        return result.with_reasons(
            "certificate chain NOT validated (no trust anchors given): this only shows the "
            "data matches the key in the certificate, not who holds it",
            status=Status.INDETERMINATE,
        )
    chain = validate_chain(
        cert,
        anchors,
        at=at,
        intermediates=[c for c in pool if c is not cert],
        purpose=purpose,
        revocation=revocation,
        soft_fail=soft_fail,
    )
    # Key-usage findings were already reported above; keep only the chain's own reasons.
    chain_reasons = [r for r in chain.reasons if r not in ku_problems and r not in notes]
    return replace(result.with_reasons(*chain_reasons, status=chain.status), chain=chain.chain)
