"""RFC 3161 timestamp tokens: the signature timestamp of a CMS signer (and of a PDF signature).

A token is a CMS SignedData over a TSTInfo. It is valid when its own signature matches, its
messageImprint is the hash of what it stamps (for a signature timestamp: the signature value,
RFC 3161 appendix A / RFC 5652 §11.4), the TSA certificate carries the critical
id-kp-timeStamping EKU (RFC 3161 §2.3), and the TSA chains to a trusted anchor at genTime.
Without TSA anchors the time is reported but not proven (INDETERMINATE).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Sequence
from datetime import datetime

from asn1crypto import cms as asn1_cms
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from jpki.cert import JpkiCertificate
from jpki.digestinfo import OID_TO_HASH, digest_of
from jpki.errors import JpkiError, SignatureFormatError
from jpki.policy import Policy, Purpose
from jpki.verify.result import Status, TimestampInfo, worst
from jpki.verify.signed_data import OID_SIGNATURE_TIMESTAMP as OID_SIGNATURE_TIMESTAMP
from jpki.verify.signed_data import parse_signed_data, verify_signed_data
from jpki.verify.signed_data import signature_timestamp_tokens as signature_timestamp_tokens

OID_TST_INFO = "1.2.840.113549.1.9.16.1.4"
_ASN1_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError)
_OVERRIDE_NOTE = re.compile(
    r"(; )?key-usage policy overridden by the caller \(purpose 'any'\); the certificate is [^;]*"
)


def _tst_info(token: bytes) -> tuple[datetime, str, bytes]:
    """(genTime, hash OID, hashed message) of a token, or ``SignatureFormatError``."""
    try:
        ci = asn1_cms.ContentInfo.load(token)
        if ci["content_type"].dotted != "1.2.840.113549.1.7.2":
            raise SignatureFormatError("timestamp token is not a CMS SignedData")
        eci = ci["content"]["encap_content_info"]
        if eci["content_type"].dotted != OID_TST_INFO:
            raise SignatureFormatError("timestamp token does not carry a TSTInfo")
        tst = eci["content"].parsed
        gen_time = tst["gen_time"].native
        imprint = tst["message_imprint"]
        alg = imprint["hash_algorithm"]["algorithm"].dotted
        hashed = bytes(imprint["hashed_message"].native)
    except JpkiError:
        raise
    except _ASN1_ERRORS as exc:
        raise SignatureFormatError(f"malformed timestamp token: {exc}") from None
    if not isinstance(gen_time, datetime) or gen_time.tzinfo is None:
        raise SignatureFormatError("timestamp token genTime is not a UTC time")
    return gen_time, alg, hashed


def _eku_problem(cert: JpkiCertificate) -> str | None:
    try:
        ext = cert.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        return "the TSA certificate has no extended key usage (RFC 3161 needs timeStamping)"
    except ValueError:
        return "the TSA certificate's extensions cannot be decoded"
    if list(ext.value) != [ExtendedKeyUsageOID.TIME_STAMPING] or not ext.critical:
        return (
            "the TSA certificate's extended key usage is not exactly a critical "
            "id-kp-timeStamping (RFC 3161 §2.3)"
        )
    return None


def verify_timestamp_token(
    token: bytes,
    stamped: bytes,
    *,
    trust_anchors: Sequence[JpkiCertificate] | None = None,
) -> TimestampInfo:
    """Check one RFC 3161 token over ``stamped`` (for a signature timestamp: the signature).

    Malformed tokens give an INVALID result (the signature it sits on is then suspect),
    never an exception.
    """
    try:
        gen_time, alg_oid, hashed = _tst_info(token)
    except SignatureFormatError as exc:
        return TimestampInfo(Status.INVALID, (str(exc),))
    hash_alg = OID_TO_HASH.get(alg_oid)
    if hash_alg is None:
        return TimestampInfo(
            Status.INVALID, (f"unsupported messageImprint hash {alg_oid}",), time=gen_time
        )
    reasons: list[str] = []
    statuses: list[Status] = []
    if hmac.compare_digest(digest_of(hash_alg, stamped), hashed):
        reasons.append(f"messageImprint ({hash_alg.value}) matches the signature value")
    else:
        statuses.append(Status.INVALID)
        reasons.append("messageImprint does not match: the token stamps other data")
    tsa: str | None = None
    try:
        sd = parse_signed_data(token)
        signer_cert = sd.signers[0].certificate if sd.signers else None
        if signer_cert is not None:
            tsa = signer_cert.subject_text
            eku = _eku_problem(signer_cert)
            if eku is not None:
                statuses.append(Status.INVALID)
                reasons.append(eku)
        policy = Policy(anchors=tuple(trust_anchors or ()), at=gen_time, purpose=Purpose.ANY)
        cms = verify_signed_data(token, policy)
    except JpkiError as exc:
        return TimestampInfo(Status.INVALID, (*reasons, f"timestamp token: {exc}"), time=gen_time)
    statuses.append(cms.status)
    # A TSA certificate is judged by its EKU above, not by the JPKI key-usage policy.
    reasons += [_OVERRIDE_NOTE.sub("", r) for r in cms.reasons]
    return TimestampInfo(worst(statuses), tuple(reasons), time=gen_time, tsa=tsa)
