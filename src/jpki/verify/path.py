"""Certificate chain validation through pyhanko-certvalidator, trust and time explicit.

* Trust anchors are always passed in (``load_trust_anchors`` reads a directory of PEM/DER
  CA certificates, e.g. the J-LIS roots); an empty list is refused, never replaced by the
  system store.
* The validation time is a required, timezone-aware ``datetime``.
* certvalidator never fetches anything: ``allow_fetching=False`` and revocation mode
  ``none``. Revocation is a seam: pass ``revocation=`` a callable ``(cert, issuer, at) ->
  outcome`` (see :func:`revocation_checker`, which wires ``jpki.revocation.policy``).
* Several CA generations with one DN (2015/2023): certvalidator builds every candidate path
  and keeps the one whose signatures verify, so the issuer is chosen by key, not by name.
* A leaf directly under an anchor (JPKI's flat PKI) is decided natively and cached by
  :mod:`jpki.verify.flat`, with the same verdict; everything else goes to certvalidator.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from asn1crypto import pem as asn1_pem
from asn1crypto import x509 as asn1_x509
from pyhanko_certvalidator import CertificateValidator, PKIXValidationParams, ValidationContext
from pyhanko_certvalidator import errors as cv_errors

from jpki._files import MAX_CERT_FILE, InputFileError, read_regular_file, scan_directory
from jpki.cert import JpkiCertificate
from jpki.errors import CertificateError, JpkiError, RevocationError, RevokedError, UsageError
from jpki.revocation.crl import Crl
from jpki.revocation.policy import RevocationPolicy, check_revocation
from jpki.verify.flat import FlatChain, flat_chain
from jpki.verify.result import Status, VerificationResult, worst
from jpki.verify.signature import Purpose, key_usage_problems, purpose_of

if TYPE_CHECKING:
    from jpki.revocation.store import RevocationStore

T = TypeVar("T")

_SUFFIXES = {".pem", ".crt", ".cer", ".der"}

#: KeyUsage bits certvalidator must see on the end entity, per purpose.
_REQUIRED_KU: dict[Purpose, frozenset[str]] = {
    Purpose.SIGN: frozenset({"digital_signature", "non_repudiation"}),
    Purpose.LOGIN: frozenset({"digital_signature"}),
    Purpose.ANY: frozenset(),
}


class RevocationOutcome(Protocol):
    """What a revocation check returns (``jpki.revocation.policy.RevocationResult`` fits)."""

    @property
    def status(self) -> Any: ...  # an Enum named GOOD / REVOKED / UNKNOWN


#: ``(certificate, issuer, validation time) -> outcome``.
RevocationCheck = Callable[[JpkiCertificate, JpkiCertificate, datetime], RevocationOutcome]
#: The same as a coroutine function (awaited on the event loop by the async verifiers).
AsyncRevocationCheck = Callable[
    [JpkiCertificate, JpkiCertificate, datetime], Awaitable[RevocationOutcome]
]


def load_trust_anchors(*paths: str | Path) -> tuple[JpkiCertificate, ...]:
    """CA certificates from files or directories (PEM with one or more certs, or DER).

    Directories are read non-recursively, files ending .pem/.crt/.cer/.der, in name order;
    only regular files (a FIFO, device, socket or a symlink to one is skipped with a
    warning). A file named directly must be a regular file of at most ``MAX_CERT_FILE``.
    Anything unreadable or not a certificate raises ``CertificateError`` naming the file.
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


def _asn1(cert: JpkiCertificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.der)


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
    trust_anchors: Sequence[JpkiCertificate],
    *,
    at: datetime,
    intermediates: Iterable[JpkiCertificate] = (),
    purpose: Purpose | str = Purpose.SIGN,
    policies: Iterable[str] | None = None,
    revocation: RevocationCheck | AsyncRevocationCheck | None = None,
    soft_fail: bool = False,
) -> VerificationResult:
    """Validate ``cert`` up to one of ``trust_anchors`` at time ``at``.

    Checks signatures along the path, validity periods, BasicConstraints, KeyUsage (for
    ``purpose``; ``Purpose.ANY`` overrides and says so), the JPKI kind policy, and, if
    ``policies`` is given, that the path carries one of those certificate-policy OIDs.
    ``revocation`` is called for every non-anchor certificate of the path, on every call.
    A leaf directly under an anchor is decided natively (:mod:`jpki.verify.flat`, cached);
    anything else by pyhanko-certvalidator.
    """
    intermediates = tuple(intermediates)
    purp, problems, notes = _prelude(cert, trust_anchors, at, purpose)
    built = _build(cert, trust_anchors, at, intermediates, purp, policies)
    checks = None
    if revocation is not None:
        checks = [_revocation(revocation, c, p, at, soft_fail) for c, p in built.pairs]
    return _result(cert, built, problems, notes, checks)


async def async_validate_chain(
    cert: JpkiCertificate,
    trust_anchors: Sequence[JpkiCertificate],
    *,
    at: datetime,
    intermediates: Iterable[JpkiCertificate] = (),
    purpose: Purpose | str = Purpose.SIGN,
    policies: Iterable[str] | None = None,
    revocation: RevocationCheck | AsyncRevocationCheck | None = None,
    soft_fail: bool = False,
) -> VerificationResult:
    """Async form of :func:`validate_chain` that never blocks the event loop.

    Path building and signature checks run in a worker thread (``asyncio.to_thread``). An
    ``async def`` ``revocation`` (e.g. :func:`jpki.verify.aio.async_revocation_checker`) is
    awaited on the loop; a plain callable runs in a worker thread.
    """
    intermediates = tuple(intermediates)
    purp, problems, notes = _prelude(cert, trust_anchors, at, purpose)
    built = await asyncio.to_thread(_build, cert, trust_anchors, at, intermediates, purp, policies)
    checks = None
    if revocation is not None:
        checks = [await _async_revocation(revocation, c, p, at, soft_fail) for c, p in built.pairs]
    return _result(cert, built, problems, notes, checks)


@dataclass(frozen=True)
class _Built:
    """A decided path (anchor first) or, with ``status`` not VALID, why there is none."""

    status: Status
    why: str | None = None
    certs: tuple[JpkiCertificate, ...] = ()
    chain: tuple[str, ...] = ()
    anchor_key_id: str = "none"

    @cached_property
    def pairs(self) -> list[tuple[JpkiCertificate, JpkiCertificate]]:
        """(certificate, issuer) for every non-anchor certificate of a valid path."""
        if self.status is not Status.VALID:
            return []
        return list(zip(self.certs[1:], self.certs[:-1], strict=True))

    @cached_property
    def lead(self) -> str:
        return f"chains to trusted CA {self.chain[0]} (key id {self.anchor_key_id})"


def _prelude(
    cert: JpkiCertificate,
    trust_anchors: Sequence[JpkiCertificate],
    at: datetime,
    purpose: Purpose | str,
) -> tuple[Purpose, list[str], list[str]]:
    if at.tzinfo is None or at.utcoffset() is None:
        raise UsageError("validation time must be timezone-aware")
    if not trust_anchors:
        # certvalidator would fall back to the system trust store; we never do.
        raise UsageError("no trust anchors given (pass the J-LIS CA certificates explicitly)")
    purp = purpose_of(purpose)
    problems, notes = key_usage_problems(cert, purp)
    return purp, problems, notes


def _build(
    cert: JpkiCertificate,
    trust_anchors: Sequence[JpkiCertificate],
    at: datetime,
    intermediates: tuple[JpkiCertificate, ...],
    purp: Purpose,
    policies: Iterable[str] | None,
) -> _Built:
    """The flat fast path when it applies, else pyhanko-certvalidator (the one dispatch)."""
    policies = None if policies is None else tuple(policies)
    flat = flat_chain(
        cert,
        trust_anchors,
        at=at,
        key_usage=_REQUIRED_KU[purp],
        policies=policies,
        intermediates=intermediates,
    )
    if flat is None:
        return _run(_certvalidator(cert, trust_anchors, at, intermediates, purp, policies))
    if flat.problem is not None:
        return _Built(Status.INVALID, flat.problem)
    # The flat path hands back one shared answer per certificate while it stays valid: so
    # does this (its reasons are then formatted once, not per login).
    held = _FLAT_BUILT.get(id(flat))
    if held is not None and held[0] is flat:
        return held[1]
    built = _Built(Status.VALID, None, (flat.anchor, cert), flat.chain, flat.anchor_key_id)
    if len(_FLAT_BUILT) >= 4096:
        _FLAT_BUILT.clear()
    _FLAT_BUILT[id(flat)] = (flat, built)
    return built


_FLAT_BUILT: dict[int, tuple[FlatChain, _Built]] = {}


async def _certvalidator(
    cert: JpkiCertificate,
    trust_anchors: Sequence[JpkiCertificate],
    at: datetime,
    intermediates: Iterable[JpkiCertificate],
    purp: Purpose,
    policies: Iterable[str] | None,
) -> _Built:
    ctx = ValidationContext(
        trust_roots=[_asn1(a) for a in trust_anchors],
        other_certs=[_asn1(c) for c in intermediates],
        moment=at,
        allow_fetching=False,
        revocation_mode="none",
    )
    params = None
    if policies is not None:
        params = PKIXValidationParams(
            user_initial_policy_set=frozenset(policies), initial_explicit_policy=True
        )
    validator = CertificateValidator(_asn1(cert), validation_context=ctx, pkix_params=params)
    try:
        path = await validator.async_validate_usage(set(_REQUIRED_KU[purp]))  # type: ignore[no-untyped-call]
    except cv_errors.PathBuildingError:
        return _Built(
            Status.INVALID,
            f"the certificate does not chain to any of the {len(trust_anchors)} trusted "
            f"CA certificate(s): its issuer ({cert.certificate.issuer.rfc4514_string()})"
            " is not trusted, or no trusted CA key signed it",
        )
    except cv_errors.ExpiredError as exc:
        return _Built(Status.INVALID, _expired(exc, at))
    except cv_errors.InsufficientRevinfoError as exc:  # not expected with mode "none"
        return _Built(Status.INDETERMINATE, _msg(exc))
    except (cv_errors.ValidationError, cv_errors.PathError) as exc:
        return _Built(Status.INVALID, _msg(exc))
    except (ValueError, TypeError) as exc:  # asn1crypto choking on a malformed extension
        raise CertificateError(f"certificate cannot be validated: {exc}") from None
    chain_asn1 = list(path.iter_certs(include_root=True))
    return _Built(
        Status.VALID,
        None,
        tuple(JpkiCertificate.load(c.dump()) for c in chain_asn1),
        tuple(c.subject.human_friendly for c in chain_asn1),
        _key_id(chain_asn1[0]),
    )


def _result(
    cert: JpkiCertificate,
    built: _Built,
    problems: list[str],
    notes: list[str],
    revocation: list[tuple[Status, str]] | None,
) -> VerificationResult:
    base: dict[str, Any] = {
        "certificate_fingerprint": cert.fingerprint_sha256.hex(),
        "certificate_kind": cert.kind.value,
        "subject": cert.subject_text,
    }
    if built.status is not Status.VALID:
        return VerificationResult(built.status, (built.why or "", *problems), **base)
    reasons = [built.lead]
    status = Status.INVALID if problems else Status.VALID
    reasons += problems + notes
    if revocation is None:
        reasons.append("revocation not checked (no CRL or OCSP given)")
    else:
        for rstat, rwhy in revocation:
            status = worst((status, rstat))
            reasons.append(rwhy)
    return VerificationResult(status, tuple(reasons), chain=built.chain, **base)


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


def _revocation(
    check: RevocationCheck | AsyncRevocationCheck,
    cert: JpkiCertificate,
    issuer: JpkiCertificate,
    at: datetime,
    soft_fail: bool,
) -> tuple[Status, str]:
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
) -> tuple[Status, str]:
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
) -> tuple[Status, str]:
    who = cert.subject_text
    if isinstance(exc, RevokedError):
        return Status.INVALID, f"{who}: {exc}"
    if soft_fail:
        return Status.VALID, f"{who}: {_NOT_ESTABLISHED}: {exc}; {_SOFT}"
    return Status.INDETERMINATE, f"{who}: {_NOT_ESTABLISHED}: {exc}"


def _revocation_verdict(
    cert: JpkiCertificate, outcome: RevocationOutcome, soft_fail: bool
) -> tuple[Status, str]:
    who = cert.subject_text
    status = getattr(outcome, "status", None)
    name = str(getattr(status, "name", status)).upper()
    source = getattr(outcome, "source", None)
    detail = getattr(outcome, "detail", None) or getattr(outcome, "reason", None)
    src = f" (from {getattr(source, 'value', source)})" if source else ""
    if name == "GOOD" and str(getattr(source, "value", source)) == "soft-fail":
        # The revocation layer's own soft-fail answer: GOOD only by policy, never "not revoked".
        return Status.VALID, f"{who}: {_NOT_ESTABLISHED}" + (
            f" ({detail}); {_SOFT}" if detail else f"; {_SOFT}"
        )
    if name == "GOOD":
        note = getattr(outcome, "detail", None)
        return Status.VALID, f"{who}: not revoked{src}" + (f" ({note})" if note else "")
    if name == "REVOKED":
        reason = getattr(outcome, "reason", None)
        when = getattr(outcome, "revoked_at", None)
        reason_txt = getattr(reason, "value", reason) or "no reason given"
        at_txt = f" on {when.isoformat()}" if isinstance(when, datetime) else ""
        return Status.INVALID, f"{who}: REVOKED ({reason_txt}){at_txt}{src}"
    why = f"{who}: {_NOT_ESTABLISHED}{src}" + (f": {detail}" if detail else "")
    if soft_fail:
        return Status.VALID, f"{why}; {_SOFT}"
    return Status.INDETERMINATE, why


def revocation_checker(
    *,
    crls: Sequence[Crl | bytes] = (),
    ocsp_url: str | None = None,
    soft_fail: bool = False,
    store: RevocationStore | None = None,
) -> RevocationCheck:
    """A :data:`RevocationCheck` backed by ``jpki.revocation.policy.check_revocation``.

    ``crls``: DER/PEM bytes or ``jpki.revocation.Crl`` objects (``Crl.from_file`` maps big files).
    """
    pol = RevocationPolicy(soft_fail=soft_fail)

    def check(cert: JpkiCertificate, issuer: JpkiCertificate, at: datetime) -> RevocationOutcome:
        return check_revocation(
            cert, issuer, crls=crls, ocsp_url=ocsp_url, store=store, at=at, policy=pol
        )

    return check
