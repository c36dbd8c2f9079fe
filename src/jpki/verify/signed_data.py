"""CMS SignedData (RFC 5652) parsing and signer verification: attached or detached, with or
without signed attributes, one or several signers, certificates embedded or supplied; PEM or
DER. Signature timestamps are read here and checked by :mod:`jpki.verify.cms` (a timestamp
token is itself a SignedData, verified with this module).

Parsing is asn1crypto; anything malformed raises ``SignatureFormatError``. The signed
attributes are verified over their original encoding (re-tagged as SET), never re-encoded.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from asn1crypto import cms as asn1_cms
from asn1crypto import core as asn1_core
from asn1crypto import pem as asn1_pem
from asn1crypto import tsp as _asn1_tsp  # noqa: F401  (its attribute names, before any lookup)

from jpki.cert import JpkiCertificate
from jpki.digestinfo import OID_TO_HASH, PREFIXES, HashAlgorithm, digest_of
from jpki.errors import JpkiError, SignatureFormatError
from jpki.oid import CmsOID, SignatureOID
from jpki.policy import Policy, Purpose, check_time
from jpki.verify.result import Code, Reason, Status, VerificationResult, worst
from jpki.verify.rules import key_usage_problems
from jpki.verify.signature import check_rsa_pkcs1, judge, rsa_public_key

_ASN1_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError)
_RSA_OIDS = {
    SignatureOID.RSA_ENCRYPTION: None,  # rsaEncryption: hash from digestAlgorithm
    SignatureOID.SHA1_WITH_RSA: HashAlgorithm.SHA1,
    SignatureOID.SHA256_WITH_RSA: HashAlgorithm.SHA256,
    SignatureOID.SHA384_WITH_RSA: HashAlgorithm.SHA384,
    SignatureOID.SHA512_WITH_RSA: HashAlgorithm.SHA512,
}
_OID_DATA = CmsOID.DATA
#: id-aa-signatureTimeStampToken (RFC 3161 appendix A): an unsigned attribute of a SignerInfo.
OID_SIGNATURE_TIMESTAMP = "1.2.840.113549.1.9.16.2.14"


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


def signature_timestamp_tokens(signer_info: asn1_cms.SignerInfo) -> list[bytes]:
    """DER of every signatureTimeStampToken in a SignerInfo's unsigned attributes."""
    attrs = signer_info["unsigned_attrs"]
    if isinstance(attrs, asn1_core.Void) or attrs.contents is None:
        return []
    out: list[bytes] = []
    for attr in attrs:
        if attr["type"].dotted == OID_SIGNATURE_TIMESTAMP:
            out += [v.dump() for v in attr["values"]]
    return out


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
    if ci["content_type"].dotted != CmsOID.SIGNED_DATA:
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
            if oid == CmsOID.CONTENT_TYPE:
                ctype = values[0].dotted
            elif oid == CmsOID.MESSAGE_DIGEST:
                mdigest = bytes(values[0].native)
            elif oid == CmsOID.SIGNING_TIME:
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


#: What :func:`verify_signed_data` applies to each signer's result before combining them.
SignerCheck = Callable[[VerificationResult, SignerInfo], VerificationResult]


def verify_signed_data(
    data: bytes,
    policy: Policy | None = None,
    *,
    content: bytes | None = None,
    certificates: Iterable[JpkiCertificate] = (),
    each_signer: SignerCheck | None = None,
) -> VerificationResult:
    """Verify every signer of a CMS SignedData; the overall status is the worst signer's.

    As :func:`jpki.verify.cms.verify_cms`, but signature timestamps are left alone: a
    further check of each signer (``verify_cms`` adds its timestamp) is ``each_signer``.
    """
    pol = policy if policy is not None else Policy()
    when = check_time(pol.time())
    pol = replace(pol, at=when, purpose=pol.purpose_for(Purpose.SIGN))
    extra = tuple(certificates)
    sd = parse_signed_data(data, extra_certificates=extra)
    reasons: list[Reason] = []
    if sd.content is None and content is None:
        return VerificationResult(
            Status.INDETERMINATE,
            (
                Reason(
                    Code.CMS_DETACHED,
                    "detached signature: the signed content must be supplied to verify it",
                ),
            ),
        )
    signed_content = sd.content if sd.content is not None else content
    assert signed_content is not None
    if sd.content is not None and content is not None and sd.content != content:
        reasons.append(
            Reason(
                Code.CMS_CONTENT_MISMATCH,
                "the content supplied differs from the content embedded in the CMS",
            )
        )
    if not sd.signers:
        return VerificationResult(
            Status.INVALID, (Reason(Code.CMS_NO_SIGNERS, "the CMS structure has no signers"),)
        )
    pool = sd.certificates + extra
    results = tuple(_verify_signer(s, signed_content, pool, pol) for s in sd.signers)
    if each_signer is not None:
        results = tuple(each_signer(r, s) for r, s in zip(results, sd.signers, strict=True))
    status = worst(r.status for r in results)
    if reasons:
        status = Status.INVALID
    n = len(results)
    for i, r in enumerate(results, 1):
        label = f"signer {i}/{n}" + (f" ({r.subject})" if r.subject else "")
        reasons.append(
            Reason(Code.CMS_SIGNER, f"{label}: {r.status.value}: " + "; ".join(r.reasons))
        )
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
        certificate=first.certificate if n == 1 else None,
        basic_info=first.basic_info if n == 1 else None,
        timestamp=first.timestamp if n == 1 else None,
    )


def _verify_signer(
    s: SignerInfo,
    content: bytes,
    pool: tuple[JpkiCertificate, ...],
    policy: Policy,
) -> VerificationResult:
    cert = s.certificate
    if cert is None:
        return VerificationResult(
            Status.INDETERMINATE,
            (
                Reason(
                    Code.CERT_MISSING,
                    f"signer certificate ({s.sid}) is neither embedded nor supplied",
                ),
            ),
            signing_time=s.signing_time,
        )
    base: dict[str, Any] = {
        "certificate_fingerprint": cert.fingerprint_sha256.hex(),
        "certificate_kind": cert.kind.value,
        "subject": cert.subject_text,
        "signing_time": s.signing_time,
        "certificate": cert,
    }
    if s.digest_algorithm is None:
        return VerificationResult(
            Status.INVALID,
            (Reason(Code.ALGORITHM_UNSUPPORTED, "unsupported digest algorithm"),),
            **base,
        )
    if s.signature_algorithm_oid not in _RSA_OIDS:
        return VerificationResult(
            Status.INVALID,
            (
                Reason(
                    Code.ALGORITHM_UNSUPPORTED,
                    f"unsupported signature algorithm {s.signature_algorithm_oid} "
                    "(need RSA PKCS#1 v1.5)",
                ),
            ),
            **base,
        )
    implied = _RSA_OIDS[s.signature_algorithm_oid]
    problems = [Reason(Code.CMS_ATTRIBUTES, p) for p in s.attribute_problems]
    if implied is not None and implied is not s.digest_algorithm:
        problems.append(
            Reason(
                Code.CMS_ATTRIBUTES,
                f"signature algorithm implies {implied.value} but digestAlgorithm is "
                f"{s.digest_algorithm.value}",
            )
        )
    content_digest = digest_of(s.digest_algorithm, content)
    if s.signed_attrs_der is not None:
        if s.message_digest_attr is not None and not hmac.compare_digest(
            s.message_digest_attr, content_digest
        ):
            problems.append(
                Reason(
                    Code.SIGNATURE_MISMATCH,
                    "the content does not match the signed messageDigest (content altered, or "
                    "the wrong content was supplied)",
                )
            )
        signed_digest = digest_of(s.digest_algorithm, s.signed_attrs_der)
    else:
        signed_digest = content_digest
    expected = PREFIXES[s.digest_algorithm] + signed_digest
    why = check_rsa_pkcs1(rsa_public_key(cert), s.signature, expected)
    result = judge(
        cert,
        why,
        s.digest_algorithm.value,
        policy,
        intermediates=[c for c in pool if c is not cert],
        problems=problems,
    )
    result = replace(result, signing_time=s.signing_time)
    if s.signing_time is not None:
        result = result.with_reasons(
            Reason(
                Code.CMS_SIGNING_TIME,
                f"claimed signing time {s.signing_time.isoformat()} (not trusted)",
            )
        )
    return result
