"""CMS SignedData (RFC 5652) verification: attached or detached, with or without signed
attributes, one or several signers, certificates embedded or supplied; PEM or DER; RFC 3161
signature timestamps checked and reported.

Parsing and the signers' signatures are :mod:`jpki.verify.signed_data`; this module adds the
timestamps (whose tokens :mod:`jpki.verify.timestamp` verifies with that same module).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from jpki.cert import JpkiCertificate
from jpki.policy import Policy
from jpki.verify.result import Status, VerificationResult
from jpki.verify.signed_data import SignedData, SignerInfo, parse_signed_data, verify_signed_data
from jpki.verify.timestamp import verify_timestamp_token

__all__ = ["SignedData", "SignerInfo", "parse_signed_data", "verify_cms"]


def verify_cms(
    data: bytes,
    policy: Policy | None = None,
    *,
    content: bytes | None = None,
    certificates: Iterable[JpkiCertificate] = (),
) -> VerificationResult:
    """Verify every signer of a CMS SignedData; the overall status is the worst signer's.

    ``content`` is required for detached signatures. ``certificates`` supplements the
    embedded ones. ``policy`` (default ``Policy()``: no anchors, so at best INDETERMINATE)
    gives the anchors, time, purpose (default: document signature), revocation and
    algorithm rule. The signingTime attribute is reported, not trusted.
    A signature timestamp (RFC 3161 unsigned attribute) is checked and reported in
    ``timestamp``: proven with the policy's ``timestamp_anchors`` (TSA anchors), else
    indeterminate; a token that does not match the signature makes the signer invalid.
    """
    tsa = tuple(policy.timestamp_anchors) if policy is not None else ()

    def with_timestamp(result: VerificationResult, signer: SignerInfo) -> VerificationResult:
        return _with_timestamp(result, signer, tsa or None)

    return verify_signed_data(
        data, policy, content=content, certificates=certificates, each_signer=with_timestamp
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
    ts = verify_timestamp_token(s.timestamp_tokens[0], s.signature, trust_anchors=trust)
    when = ts.time.isoformat() if ts.time else "unreadable time"
    line = f"signature timestamp {when}" + (f" by {ts.tsa}" if ts.tsa else "")
    line += f": {ts.status.value}{note}: " + "; ".join(ts.reasons)
    # Only a token contradicting the signature spoils it; an unproven one is just reported.
    worse = Status.INVALID if ts.status is Status.INVALID else None
    return replace(result.with_reasons(line, status=worse), timestamp=ts)
