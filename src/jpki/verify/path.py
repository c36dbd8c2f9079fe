"""Certificate chain validation under one :class:`~jpki.policy.Policy`.

* Trust anchors come from the policy (``load_trust_anchors`` reads files or directories,
  ``jpki.trust.jlis_roots`` the built-in J-LIS roots); without anchors the answer is at best
  INDETERMINATE, never VALID, and never the system store.
* The validation time is the policy's (timezone-aware; default now).
* certvalidator never fetches anything: ``allow_fetching=False`` and revocation mode
  ``none``. Revocation is the policy's one :data:`~jpki.policy.RevocationCheck` call (plain
  or ``async def``), made on every call for every non-anchor certificate of the path; the end
  entity is never an anchor (the policy sets leaves given as anchors aside), so its validity
  and revocation are always checked.
* Several CA generations with one DN (2015/2019/2023): the issuer is chosen by key, not by
  name (certvalidator builds every candidate path and keeps the one whose signatures verify).
* A leaf directly under an anchor (JPKI's flat PKI) is decided natively and cached by
  :mod:`jpki.verify.flat`, with the same verdict; everything else goes to certvalidator.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
from collections.abc import Awaitable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple, TypeVar, cast

from asn1crypto import pem as asn1_pem
from asn1crypto import x509 as asn1_x509
from pyhanko_certvalidator import CertificateValidator, PKIXValidationParams, ValidationContext
from pyhanko_certvalidator import errors as cv_errors
from pyhanko_certvalidator.policy_decl import DisallowWeakAlgorithmsPolicy

from jpki._files import MAX_CERT_FILE, InputFileError, read_regular_file, scan_directory
from jpki.cert import CertKind, JpkiCertificate
from jpki.errors import CertificateError, JpkiError, RevocationError, RevokedError, UsageError
from jpki.policy import (
    AlgorithmRule,
    AsyncRevocationCheck,
    Policy,
    Purpose,
    RevocationCheck,
    RevocationOutcome,
    check_time,
    revocation_checker,
)
from jpki.verify.flat import TOLERANCE, FlatChain, flat_chain
from jpki.verify.result import Code, Reason, Status, VerificationResult, worst
from jpki.verify.rules import key_usage_problems, purpose_by_kind, validity_problems

__all__ = [
    "AsyncRevocationCheck",
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
_REQUIRED_KU: dict[Purpose, frozenset[str]] = {
    Purpose.SIGN: frozenset({"digital_signature", "non_repudiation"}),
    Purpose.LOGIN: frozenset({"digital_signature"}),
    Purpose.ANY: frozenset(),
}
_ASN1_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError)


def load_trust_anchors(*paths: str | Path) -> tuple[JpkiCertificate, ...]:
    """Certificates from files or directories (PEM with one or more certs, or DER).

    Directories are read non-recursively, files ending .pem/.crt/.cer/.der, in name order;
    only regular files (a FIFO, device, socket or a symlink to one is skipped with a
    warning). A file named directly must be a regular file of at most ``MAX_CERT_FILE``.
    Anything unreadable or not a certificate raises ``CertificateError`` naming the file.
    A :class:`Policy` built from them keeps only the CA certificates as anchors.
    """
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += scan_directory(p, _SUFFIXES)
        else:
            files.append(p)
    out: list[JpkiCertificate] = []
    for f in files:
        try:
            data = read_regular_file(f, max_bytes=MAX_CERT_FILE)
        except InputFileError as exc:
            raise UsageError(f"trust anchor: {exc}") from None
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


async def _awaited(value: Awaitable[T]) -> T:
    return await value


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
    entity, the algorithm rule, the policy's required certificate policies, then revocation
    (on every call). A leaf directly under an anchor is decided natively
    (:mod:`jpki.verify.flat`, cached); anything else by pyhanko-certvalidator. Without
    anchors the result is at best INDETERMINATE.
    """
    pre = _prelude(cert, policy)
    if isinstance(pre, VerificationResult):
        return pre
    built = _build(cert, policy, pre.at, tuple(intermediates), pre.purpose)
    checks = None
    if policy.revocation is not None:
        checks = [
            _revocation(policy.revocation, c, p, pre.at, policy.soft_fail) for c, p in built.pairs
        ]
    return _result(cert, built, pre, checks)


async def async_validate_chain(
    cert: JpkiCertificate,
    policy: Policy,
    *,
    intermediates: Iterable[JpkiCertificate] = (),
) -> VerificationResult:
    """Async form of :func:`validate_chain` that never blocks the event loop.

    Path building and signature checks run in a worker thread (``asyncio.to_thread``). An
    ``async def`` revocation check is awaited on the loop; a plain callable runs in a worker
    thread.
    """
    pre = _prelude(cert, policy)
    if isinstance(pre, VerificationResult):
        return pre
    built = await asyncio.to_thread(_build, cert, policy, pre.at, tuple(intermediates), pre.purpose)
    checks = None
    if policy.revocation is not None:
        checks = [
            await _async_revocation(policy.revocation, c, p, pre.at, policy.soft_fail)
            for c, p in built.pairs
        ]
    return _result(cert, built, pre, checks)


class _Prelude(NamedTuple):
    """What the policy decides about the end entity before any path is built."""

    at: datetime
    purpose: Purpose
    problems: tuple[Reason, ...]
    notes: tuple[Reason, ...]
    anchor_notes: tuple[Reason, ...]
    base: Mapping[str, Any]


@dataclass(frozen=True)
class _Built:
    """A decided path (anchor first) or, with ``status`` not VALID, why there is none."""

    status: Status
    why: Reason | None = None
    certs: tuple[JpkiCertificate, ...] = ()
    chain: tuple[str, ...] = ()
    anchor_key_id: str = "none"

    @cached_property
    def pairs(self) -> tuple[tuple[JpkiCertificate, JpkiCertificate], ...]:
        """(certificate, issuer) for every non-anchor certificate of a valid path."""
        if self.status is not Status.VALID:
            return ()
        return tuple(zip(self.certs[1:], self.certs[:-1], strict=True))

    @cached_property
    def chain_ok(self) -> Reason:
        """The reason saying which anchor the valid path ends at."""
        return Reason(
            Code.CHAIN_OK, f"chains to trusted CA {self.chain[0]} (key id {self.anchor_key_id})"
        )


#: The decided flat path of each cached flat verdict (known by identity: the entry holds it).
_FLAT_BUILT: dict[int, tuple[FlatChain, _Built]] = {}


#: The result fields of each certificate, known by identity (the entry holds it).
_BASES: dict[int, tuple[JpkiCertificate, Mapping[str, Any]]] = {}


def _base(cert: JpkiCertificate) -> Mapping[str, Any]:
    """The result fields that only depend on the certificate (every login asks: made once)."""
    held = _BASES.get(id(cert))
    if held is not None and held[0] is cert:
        return held[1]
    base = MappingProxyType(_base_fields(cert))
    if len(_BASES) >= 4096:
        _BASES.clear()
    _BASES[id(cert)] = (cert, base)
    return base


def _base_fields(cert: JpkiCertificate) -> dict[str, Any]:
    return {
        "certificate_fingerprint": cert.fingerprint_sha256.hex(),
        "certificate_kind": cert.kind.value,
        "subject": cert.subject_text,
        "certificate": cert,
        "basic_info": _basic_info(cert),
    }


def _basic_info(cert: JpkiCertificate) -> Any:
    if cert.kind not in (CertKind.SIGNING, CertKind.PHONE_SIGNING):
        return None
    try:
        return cert.basic_info
    except JpkiError:
        return None


def _prelude(cert: JpkiCertificate, policy: Policy) -> _Prelude | VerificationResult:
    """The end-entity rules; a finished result when no path needs building."""
    if not isinstance(policy, Policy):
        raise UsageError("chain validation needs a jpki.policy.Policy")
    at = check_time(policy.time())
    purp = policy.purpose_for(purpose_by_kind(cert))
    base = _base(cert)
    try:
        problems, notes = key_usage_problems(cert, purp)
        problems += validity_problems(cert, at)
    except CertificateError as exc:
        return VerificationResult(Status.INVALID, (Reason(Code.CERT_MALFORMED, str(exc)),), **base)
    anchor_notes = (
        tuple(Reason(Code.ANCHOR_REFUSED, t) for t in policy.anchor_notes())
        if policy.not_anchors
        else ()
    )
    if not policy.anchors:
        # certvalidator would fall back to the system trust store; we never do.
        not_validated = Reason(
            Code.CHAIN_NOT_VALIDATED,
            "certificate chain NOT validated (no trust anchors): this only shows the "
            "certificate's own content, not who issued it",
        )
        return VerificationResult(
            Status.INVALID if problems else Status.INDETERMINATE,
            (*problems, not_validated, *anchor_notes, *notes),
            **base,
        )
    return _Prelude(at, purp, tuple(problems), tuple(notes), anchor_notes, base)


def _build(
    cert: JpkiCertificate,
    policy: Policy,
    at: datetime,
    intermediates: tuple[JpkiCertificate, ...],
    purp: Purpose,
) -> _Built:
    """The flat fast path when it applies, else pyhanko-certvalidator (the one dispatch)."""
    policies = None if policy.required_policies is None else tuple(policy.required_policies)
    try:
        flat = flat_chain(
            cert,
            policy.anchors,
            at=at,
            key_usage=_REQUIRED_KU[purp],
            policies=policies,
            intermediates=intermediates,
        )
    except CertificateError as exc:
        return _Built(Status.INVALID, Reason(Code.CERT_MALFORMED, str(exc)))
    if flat is None:
        return _run(_certvalidator(cert, policy, at, intermediates, purp, policies))
    if flat.problem is not None:
        return _Built(Status.INVALID, Reason(_flat_code(cert, at), flat.problem))
    # A repeat inside the validity window gets the same FlatChain back: so the same path.
    held = _FLAT_BUILT.get(id(flat))
    if held is not None and held[0] is flat:
        return held[1]
    built = _Built(Status.VALID, None, (flat.anchor, cert), flat.chain, flat.anchor_key_id)
    if len(_FLAT_BUILT) >= 4096:
        _FLAT_BUILT.clear()
    _FLAT_BUILT[id(flat)] = (flat, built)
    return built


def _flat_code(cert: JpkiCertificate, at: datetime) -> Code:
    """The code of a flat-path refusal: outside the validity window, or anything else."""
    if at - TOLERANCE > cert.not_after:
        return Code.CERT_EXPIRED
    if at + TOLERANCE < cert.not_before:
        return Code.CERT_NOT_YET_VALID
    return Code.CHAIN_INVALID


@functools.lru_cache(maxsize=8)
def _algorithm_policy(rule: AlgorithmRule) -> DisallowWeakAlgorithmsPolicy:
    """The policy's algorithm rule, for the certificate signatures along the path."""
    weak = {"md2", "md5"} | (set() if rule.allow_sha1 else {"sha1"})
    return DisallowWeakAlgorithmsPolicy(  # type: ignore[no-untyped-call]
        weak_hash_algos=frozenset(weak), rsa_key_size_threshold=rule.min_rsa_bits
    )


async def _certvalidator(
    cert: JpkiCertificate,
    policy: Policy,
    at: datetime,
    intermediates: Iterable[JpkiCertificate],
    purp: Purpose,
    policies: Iterable[str] | None,
) -> _Built:
    try:
        ee = _asn1(cert)
        others = [_asn1(c) for c in intermediates]
        roots = [_asn1(a) for a in policy.anchors]
    except CertificateError as exc:
        return _Built(Status.INVALID, Reason(Code.CERT_MALFORMED, str(exc)))
    ctx = ValidationContext(
        algorithm_usage_policy=_algorithm_policy(policy.algorithms),
        trust_roots=roots,
        other_certs=others,
        moment=at,
        allow_fetching=False,
        revocation_mode="none",
    )
    params = None
    if policies is not None:
        params = PKIXValidationParams(
            user_initial_policy_set=frozenset(policies), initial_explicit_policy=True
        )
    validator = CertificateValidator(ee, validation_context=ctx, pkix_params=params)
    n = len(policy.anchors)
    try:
        path = await validator.async_validate_usage(set(_REQUIRED_KU[purp]))  # type: ignore[no-untyped-call]
    except cv_errors.PathBuildingError:
        return _Built(
            Status.INVALID,
            Reason(
                Code.CHAIN_UNTRUSTED,
                f"the certificate does not chain to any of the {n} trusted "
                f"CA certificate(s): its issuer ({cert.certificate.issuer.rfc4514_string()})"
                " is not trusted, or no trusted CA key signed it",
            ),
        )
    except cv_errors.ExpiredError as exc:
        return _Built(Status.INVALID, Reason(Code.CERT_EXPIRED, _expired(exc, at)))
    except cv_errors.NotYetValidError as exc:
        return _Built(Status.INVALID, Reason(Code.CERT_NOT_YET_VALID, _msg(exc)))
    except cv_errors.InsufficientRevinfoError as exc:  # not expected with mode "none"
        return _Built(Status.INDETERMINATE, Reason(Code.REVOCATION_UNKNOWN, _msg(exc)))
    except cv_errors.DisallowedAlgorithmError as exc:
        return _Built(Status.INVALID, Reason(Code.ALGORITHM_REFUSED, _msg(exc)))
    except (cv_errors.ValidationError, cv_errors.PathError) as exc:
        # Includes a path without the required certificate policies (no distinct type).
        # A self-issued end entity that is no anchor is simply not trusted.
        code = Code.CHAIN_UNTRUSTED if _self_issued(cert) else Code.CHAIN_INVALID
        return _Built(Status.INVALID, Reason(code, _msg(exc)))
    except _ASN1_ERRORS as exc:  # asn1crypto choking on a malformed extension
        return _Built(
            Status.INVALID, Reason(Code.CERT_MALFORMED, f"certificate cannot be validated: {exc}")
        )
    chain_asn1 = list(path.iter_certs(include_root=True))
    certs = tuple(
        cert if c.dump() == cert.der else JpkiCertificate.load(c.dump()) for c in chain_asn1
    )
    return _Built(
        Status.VALID,
        None,
        certs,
        tuple(c.subject_text for c in certs),  # RFC 4514, as every DN jpki prints
        _key_id(chain_asn1[0]),
    )


def _result(
    cert: JpkiCertificate,
    built: _Built,
    pre: _Prelude,
    revocation: list[tuple[Status, Reason]] | None,
) -> VerificationResult:
    problems, notes, anchor_notes = pre.problems, pre.notes, pre.anchor_notes
    if built.status is not Status.VALID:
        why = built.why or Reason(Code.CHAIN_INVALID, "the chain could not be validated")
        failed: Status = Status.INVALID if problems else built.status
        # The end-entity validity rule already said it: the path's echo of it is noise.
        said = {p.code for p in problems}
        echo = why.code in said and why.code in (Code.CERT_EXPIRED, Code.CERT_NOT_YET_VALID)
        why_part = () if echo else (why,)
        return VerificationResult(failed, (*problems, *why_part, *anchor_notes), **pre.base)
    reasons: list[Reason] = [*problems, built.chain_ok, *notes, *anchor_notes]
    status: Status = Status.INVALID if problems else Status.VALID
    if revocation is None:
        reasons.append(
            Reason(Code.REVOCATION_NOT_CHECKED, "revocation not checked (no CRL or OCSP given)")
        )
    else:
        for rstat, rwhy in revocation:
            status = worst((status, rstat))
            reasons.append(rwhy)
    return VerificationResult(status, tuple(reasons), chain=built.chain, **pre.base)


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
    check: RevocationCheck | AsyncRevocationCheck,
    cert: JpkiCertificate,
    issuer: JpkiCertificate,
    at: datetime,
    soft_fail: bool,
) -> tuple[Status, Reason]:
    try:
        if _is_async(check):
            outcome = _run(_awaited(cast("AsyncRevocationCheck", check)(cert, issuer, at)))
        else:
            outcome = cast("RevocationCheck", check)(cert, issuer, at)
    except RevocationError as exc:  # RevokedError included
        return _revocation_failed(cert, exc, soft_fail)
    return _revocation_verdict(cert, outcome, soft_fail)


def _is_async(check: object) -> bool:
    code = getattr(check, "__code__", None)
    if code is not None:  # a plain function: one flag test (asked on every login)
        return bool(code.co_flags & inspect.CO_COROUTINE)
    return inspect.iscoroutinefunction(check) or inspect.iscoroutinefunction(
        getattr(check, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


async def _async_revocation(
    check: RevocationCheck | AsyncRevocationCheck,
    cert: JpkiCertificate,
    issuer: JpkiCertificate,
    at: datetime,
    soft_fail: bool,
) -> tuple[Status, Reason]:
    try:
        if _is_async(check):
            outcome = await cast("AsyncRevocationCheck", check)(cert, issuer, at)
        else:
            outcome = await asyncio.to_thread(cast("RevocationCheck", check), cert, issuer, at)
    except RevocationError as exc:
        return _revocation_failed(cert, exc, soft_fail)
    return _revocation_verdict(cert, outcome, soft_fail)


def _revocation_failed(
    cert: JpkiCertificate, exc: RevocationError, soft_fail: bool
) -> tuple[Status, Reason]:
    who = cert.subject_text
    if isinstance(exc, RevokedError):
        return Status.INVALID, Reason(Code.REVOCATION_REVOKED, f"{who}: {exc}")
    if soft_fail:
        return Status.VALID, Reason(_SOFTC, f"{who}: {_NOT_ESTABLISHED}: {exc}; {_SOFT}")
    return Status.INDETERMINATE, Reason(_UNK, f"{who}: {_NOT_ESTABLISHED}: {exc}")


#: Verdicts on frozen outcomes, by identity: a CRL source answers "not listed" with one
#: shared value, so a repeat check of a certificate words the same verdict once.
_VERDICTS: dict[tuple[int, int, bool], tuple[object, object, tuple[Status, Reason]]] = {}


def _revocation_verdict(
    cert: JpkiCertificate, outcome: RevocationOutcome, soft_fail: bool
) -> tuple[Status, Reason]:
    key = (id(cert), id(outcome), soft_fail)
    held = _VERDICTS.get(key)
    if held is not None and held[0] is cert and held[1] is outcome:
        return held[2]
    verdict = _word_verdict(cert, outcome, soft_fail)
    params = getattr(type(outcome), "__dataclass_params__", None)
    if params is not None and params.frozen:  # a mutable outcome could say otherwise later
        if len(_VERDICTS) >= 4096:
            _VERDICTS.clear()
        _VERDICTS[key] = (cert, outcome, verdict)
    return verdict


def _word_verdict(
    cert: JpkiCertificate, outcome: RevocationOutcome, soft_fail: bool
) -> tuple[Status, Reason]:
    """One outcome's verdict. REVOKED is never softened. Soft-fail applies when the policy
    sets it or when the check's own revocation policy did (``soft_failed``, as
    ``revocation_checker(soft_fail=True)`` answers): either way VALID with the soft-fail
    reason, never "not revoked"."""
    who = cert.subject_text
    status = getattr(outcome, "status", None)
    name = str(getattr(status, "name", status)).upper()
    source = getattr(outcome, "source", None)
    detail = getattr(outcome, "detail", None) or getattr(outcome, "reason", None)
    src = f" (from {getattr(source, 'value', source)})" if source else ""
    if name == "REVOKED":
        reason = getattr(outcome, "reason", None)
        when = getattr(outcome, "revoked_at", None)
        reason_txt = getattr(reason, "value", reason) or "no reason given"
        at_txt = f" on {when.isoformat()}" if isinstance(when, datetime) else ""
        text = f"{who}: REVOKED ({reason_txt}){at_txt}{src}"
        return Status.INVALID, Reason(Code.REVOCATION_REVOKED, text)
    # ``is True``: an outcome object whose attribute is anything else is not a soft-fail mark.
    soft_failed = getattr(outcome, "soft_failed", False) is True
    # GOOD with source "soft-fail" is how older revocation code spelled soft-fail.
    legacy = name == "GOOD" and str(getattr(source, "value", source)) == "soft-fail"
    if name == "GOOD" and not soft_failed and not legacy:
        note = getattr(outcome, "detail", None)
        text = f"{who}: not revoked{src}" + (f" ({note})" if note else "")
        return Status.VALID, Reason(Code.REVOCATION_GOOD, text)
    if soft_failed or legacy:
        src = "" if legacy else src
        detail = _unwrapped(detail)
    why = f"{who}: {_NOT_ESTABLISHED}{src}" + (f": {detail}" if detail else "")
    if soft_fail or soft_failed or legacy:
        return Status.VALID, Reason(_SOFTC, f"{why}; {_SOFT}")
    return Status.INDETERMINATE, Reason(_UNK, why)


def _unwrapped(detail: object) -> object:
    """The sources' own words inside the revocation policy's soft-fail sentence."""
    if not isinstance(detail, str):
        return detail
    head, tail = f"{_NOT_ESTABLISHED} (", "); accepted by soft-fail"
    if detail.startswith(head) and detail.endswith(tail):
        return detail[len(head) : -len(tail)]
    return detail
