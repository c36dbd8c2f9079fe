"""Certificate chain validation through pyhanko-certvalidator, under one :class:`Policy`.

* Trust anchors come from the policy (``load_trust_anchors`` reads files or directories,
  ``jpki.trust.jlis_roots`` the built-in J-LIS roots); without anchors the answer is at best
  INDETERMINATE, never VALID, and never the system store.
* The validation time is the policy's (timezone-aware; default now).
* certvalidator never fetches anything: ``allow_fetching=False`` and revocation mode
  ``none``. Revocation is the policy's one :data:`RevocationCheck` call, made for every
  non-anchor certificate of the path; the end entity is never an anchor (the policy sets
  leaves given as anchors aside), so its validity and revocation are always checked.
* Several CA generations with one DN (2015/2019/2023): certvalidator builds every candidate
  path and keeps the one whose signatures verify, so the issuer is chosen by key, not by name.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from collections.abc import Coroutine, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from asn1crypto import pem as asn1_pem
from asn1crypto import x509 as asn1_x509
from pyhanko_certvalidator import CertificateValidator, PKIXValidationParams, ValidationContext
from pyhanko_certvalidator import errors as cv_errors
from pyhanko_certvalidator.policy_decl import DisallowWeakAlgorithmsPolicy

from jpki.cert import JpkiCertificate
from jpki.errors import CertificateError, JpkiError, RevocationError, RevokedError, UsageError
from jpki.policy import (
    AlgorithmRule,
    Policy,
    Purpose,
    RevocationCheck,
    RevocationOutcome,
    check_time,
    revocation_checker,
)
from jpki.verify.result import Code, Reason, Status, VerificationResult, worst
from jpki.verify.rules import key_usage_problems, purpose_by_kind, validity_problems

__all__ = [
    "RevocationCheck",
    "RevocationOutcome",
    "async_validate_chain",
    "load_certificates",
    "load_trust_anchors",
    "revocation_checker",
    "validate_chain",
]

T = TypeVar("T")

_SUFFIXES = {".pem", ".crt", ".cer", ".der"}

#: KeyUsage bits certvalidator must see on the end entity, per purpose.
_REQUIRED_KU: dict[Purpose, set[str]] = {
    Purpose.SIGN: {"digital_signature", "non_repudiation"},
    Purpose.LOGIN: {"digital_signature"},
    Purpose.ANY: set(),
}
_ASN1_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError)


def load_trust_anchors(*paths: str | Path) -> tuple[JpkiCertificate, ...]:
    """Certificates from files or directories (PEM with one or more certs, or DER).

    Directories are read non-recursively, files ending .pem/.crt/.cer/.der, in name order.
    Anything unreadable or not a certificate raises ``CertificateError`` naming the file.
    A :class:`Policy` built from them keeps only the CA certificates as anchors.
    """
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix.lower() in _SUFFIXES)
        else:
            files.append(p)
    out: list[JpkiCertificate] = []
    for f in files:
        try:
            data = f.read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read trust anchor {f}: {exc.strerror or exc}") from None
        try:
            out += list(load_certificates(data))
        except JpkiError as exc:
            raise CertificateError(f"{f}: {exc}") from None
    if not out:
        raise UsageError(f"no CA certificates found in {', '.join(map(str, paths))}")
    return tuple(out)


def load_certificates(data: bytes) -> tuple[JpkiCertificate, ...]:
    """All certificates in ``data``: a PEM bundle, or a single DER/PEM/base64 certificate."""
    if asn1_pem.detect(data):
        try:
            blocks = [der for kind, _h, der in asn1_pem.unarmor(data, multiple=True)]
        except (ValueError, TypeError) as exc:
            raise CertificateError(f"bad PEM: {exc}") from None
        return tuple(JpkiCertificate.load(b) for b in blocks)
    return (JpkiCertificate.load(data),)


@functools.lru_cache(maxsize=512)
def _asn1_der(der: bytes) -> asn1_x509.Certificate:
    cert = asn1_x509.Certificate.load(der)
    # asn1crypto decodes lazily; decode everything now so a certificate cryptography accepted
    # but asn1crypto refuses is found here, not as a ValueError deep inside path building.
    _ = cert.native
    return cert


def _asn1(cert: JpkiCertificate) -> asn1_x509.Certificate:
    try:
        return _asn1_der(cert.der)
    except _ASN1_ERRORS as exc:
        raise CertificateError(
            f"certificate {cert.subject_text} cannot be decoded for path validation: {exc}"
        ) from None


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from sync code, also when the caller already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        return ex.submit(asyncio.run, coro).result()


def validate_chain(
    cert: JpkiCertificate,
    policy: Policy,
    *,
    intermediates: Iterable[JpkiCertificate] = (),
) -> VerificationResult:
    """Validate ``cert`` as an end entity up to one of the policy's anchors.

    Checks signatures along the path, validity periods, BasicConstraints, KeyUsage and kind
    for the purpose (``purpose=None``: login for authentication certificates, sign
    otherwise; ``Purpose.ANY`` overrides the kind rule and says so), cA=TRUE never as the end
    entity, the policy's required certificate policies, then revocation. Without anchors the
    result is at best INDETERMINATE.
    """
    return _run(async_validate_chain(cert, policy, intermediates=intermediates))


def _base(cert: JpkiCertificate) -> dict[str, Any]:
    return {
        "certificate_fingerprint": cert.fingerprint_sha256.hex(),
        "certificate_kind": cert.kind.value,
        "subject": cert.subject_text,
        "certificate": cert,
        "basic_info": _basic_info(cert),
    }


def _basic_info(cert: JpkiCertificate) -> Any:
    from jpki.cert import CertKind

    if cert.kind not in (CertKind.SIGNING, CertKind.PHONE_SIGNING):
        return None
    try:
        return cert.basic_info
    except JpkiError:
        return None


async def async_validate_chain(
    cert: JpkiCertificate,
    policy: Policy,
    *,
    intermediates: Iterable[JpkiCertificate] = (),
) -> VerificationResult:
    """Async form of :func:`validate_chain`."""
    if not isinstance(policy, Policy):
        raise UsageError("validate_chain needs a jpki.policy.Policy")
    at = check_time(policy.time())
    purp = policy.purpose_for(purpose_by_kind(cert))
    base = _base(cert)
    try:
        problems, notes = key_usage_problems(cert, purp)
        problems += validity_problems(cert, at)
    except CertificateError as exc:
        return VerificationResult(Status.INVALID, (Reason(Code.CERT_MALFORMED, str(exc)),), **base)
    anchor_notes = [Reason(Code.ANCHOR_REFUSED, t) for t in policy.anchor_notes()]
    if not policy.anchors:
        # certvalidator would fall back to the system trust store; we never do.
        status = Status.INVALID if problems else Status.INDETERMINATE
        return VerificationResult(
            status,
            (
                *problems,
                Reason(
                    Code.CHAIN_NOT_VALIDATED,
                    "certificate chain NOT validated (no trust anchors): this only shows the "
                    "certificate's own content, not who issued it",
                ),
                *anchor_notes,
                *notes,
            ),
            **base,
        )
    try:
        ee = _asn1(cert)
        others = [_asn1(c) for c in intermediates]
        roots = [_asn1(a) for a in policy.anchors]
    except CertificateError as exc:
        return VerificationResult(
            Status.INVALID,
            (*problems, Reason(Code.CERT_MALFORMED, str(exc)), *anchor_notes),
            **base,
        )
    ctx = ValidationContext(
        algorithm_usage_policy=_algorithm_policy(policy.algorithms),
        trust_roots=roots,
        other_certs=others,
        moment=at,
        allow_fetching=False,
        revocation_mode="none",
    )
    params = None
    if policy.required_policies is not None:
        params = PKIXValidationParams(
            user_initial_policy_set=frozenset(policy.required_policies),
            initial_explicit_policy=True,
        )
    validator = CertificateValidator(ee, validation_context=ctx, pkix_params=params)
    n = len(policy.anchors)
    try:
        path = await validator.async_validate_usage(_REQUIRED_KU[purp])  # type: ignore[no-untyped-call]
    except cv_errors.PathBuildingError:
        why = Reason(
            Code.CHAIN_UNTRUSTED,
            f"the certificate does not chain to any of the {n} trusted "
            f"CA certificate(s): its issuer ({cert.certificate.issuer.rfc4514_string()})"
            " is not trusted, or no trusted CA key signed it",
        )
        return VerificationResult(Status.INVALID, (*problems, why, *anchor_notes), **base)
    except cv_errors.ExpiredError as exc:
        why = Reason(Code.CERT_EXPIRED, _expired(exc, at))
        return VerificationResult(Status.INVALID, (*problems, why, *anchor_notes), **base)
    except cv_errors.NotYetValidError as exc:
        why = Reason(Code.CERT_NOT_YET_VALID, _msg(exc))
        return VerificationResult(Status.INVALID, (*problems, why, *anchor_notes), **base)
    except cv_errors.InsufficientRevinfoError as exc:  # not expected with mode "none"
        why = Reason(Code.REVOCATION_UNKNOWN, _msg(exc))
        status = Status.INVALID if problems else Status.INDETERMINATE
        return VerificationResult(status, (*problems, why, *anchor_notes), **base)
    except cv_errors.DisallowedAlgorithmError as exc:
        why = Reason(Code.ALGORITHM_REFUSED, _msg(exc))
        return VerificationResult(Status.INVALID, (*problems, why, *anchor_notes), **base)
    except (cv_errors.ValidationError, cv_errors.PathError) as exc:
        # Includes a path without the required certificate policies (no distinct type).
        # A self-issued end entity that is no anchor is simply not trusted.
        code = Code.CHAIN_UNTRUSTED if _self_issued(cert) else Code.CHAIN_INVALID
        why = Reason(code, _msg(exc))
        return VerificationResult(Status.INVALID, (*problems, why, *anchor_notes), **base)
    except _ASN1_ERRORS as exc:  # asn1crypto choking on a malformed extension
        why = Reason(Code.CERT_MALFORMED, f"certificate cannot be validated: {exc}")
        return VerificationResult(Status.INVALID, (*problems, why, *anchor_notes), **base)

    chain_asn1 = list(path.iter_certs(include_root=True))
    chain = tuple(c.subject.human_friendly for c in chain_asn1)
    reasons: list[Reason] = [
        *problems,
        Reason(Code.CHAIN_OK, f"chains to trusted CA {chain[0]} (key id {_key_id(chain_asn1[0])})"),
        *notes,
        *anchor_notes,
    ]
    status = Status.INVALID if problems else Status.VALID
    if policy.revocation is not None:
        pairs = list(zip(chain_asn1[1:], chain_asn1[:-1], strict=True))
        for child, parent in pairs:
            rstat, rwhy = _revocation(
                policy.revocation,
                cert if child.dump() == cert.der else JpkiCertificate.load(child.dump()),
                JpkiCertificate.load(parent.dump()),
                at,
                policy.soft_fail,
            )
            status = worst((status, rstat))
            reasons.append(rwhy)
    else:
        reasons.append(
            Reason(Code.REVOCATION_NOT_CHECKED, "revocation not checked (no CRL or OCSP given)")
        )
    return VerificationResult(status, tuple(reasons), chain=chain, **base)


@functools.lru_cache(maxsize=8)
def _algorithm_policy(rule: AlgorithmRule) -> DisallowWeakAlgorithmsPolicy:
    """The policy's algorithm rule, for the certificate signatures along the path."""
    weak = {"md2", "md5"} | (set() if rule.allow_sha1 else {"sha1"})
    return DisallowWeakAlgorithmsPolicy(  # type: ignore[no-untyped-call]
        weak_hash_algos=frozenset(weak), rsa_key_size_threshold=rule.min_rsa_bits
    )


def _self_issued(cert: JpkiCertificate) -> bool:
    return cert.certificate.subject.public_bytes() == cert.certificate.issuer.public_bytes()


def _key_id(c: asn1_x509.Certificate) -> str:
    kid = c.key_identifier
    return kid.hex() if kid else "none"


def _msg(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[0].lower() + text[1:] if text else text


def _expired(exc: Exception, at: datetime) -> str:
    return f"{_msg(exc).rstrip('.')} (validation time {at.isoformat()})"


_NOT_ESTABLISHED = "revocation status NOT established"
_SOFT = "accepted anyway because of soft-fail (the certificate may be revoked)"
_SOFTC = Code.REVOCATION_SOFT_FAIL
_UNK = Code.REVOCATION_UNKNOWN


def _revocation(
    check: RevocationCheck,
    cert: JpkiCertificate,
    issuer: JpkiCertificate,
    at: datetime,
    soft_fail: bool,
) -> tuple[Status, Reason]:
    who = cert.subject_text
    try:
        outcome = check(cert, issuer, at)
    except RevokedError as exc:
        return Status.INVALID, Reason(Code.REVOCATION_REVOKED, f"{who}: {exc}")
    except RevocationError as exc:
        if soft_fail:
            return Status.VALID, Reason(_SOFTC, f"{who}: {_NOT_ESTABLISHED}: {exc}; {_SOFT}")
        return Status.INDETERMINATE, Reason(_UNK, f"{who}: {_NOT_ESTABLISHED}: {exc}")
    status = getattr(outcome, "status", None)
    name = str(getattr(status, "name", status)).upper()
    source = getattr(outcome, "source", None)
    detail = getattr(outcome, "detail", None) or getattr(outcome, "reason", None)
    src = f" (from {getattr(source, 'value', source)})" if source else ""
    if name == "GOOD" and str(getattr(source, "value", source)) == "soft-fail":
        # The revocation layer's own soft-fail answer: GOOD only by policy, never "not revoked".
        text = f"{who}: {_NOT_ESTABLISHED}" + (f" ({detail}); {_SOFT}" if detail else f"; {_SOFT}")
        return Status.VALID, Reason(_SOFTC, text)
    if name == "GOOD":
        note = getattr(outcome, "detail", None)
        text = f"{who}: not revoked{src}" + (f" ({note})" if note else "")
        return Status.VALID, Reason(Code.REVOCATION_GOOD, text)
    if name == "REVOKED":
        reason = getattr(outcome, "reason", None)
        when = getattr(outcome, "revoked_at", None)
        reason_txt = getattr(reason, "value", reason) or "no reason given"
        at_txt = f" on {when.isoformat()}" if isinstance(when, datetime) else ""
        text = f"{who}: REVOKED ({reason_txt}){at_txt}{src}"
        return Status.INVALID, Reason(Code.REVOCATION_REVOKED, text)
    why = f"{who}: {_NOT_ESTABLISHED}{src}" + (f": {detail}" if detail else "")
    if soft_fail:
        return Status.VALID, Reason(_SOFTC, f"{why}; {_SOFT}")
    return Status.INDETERMINATE, Reason(_UNK, why)
