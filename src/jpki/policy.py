"""The relying party's policy: one frozen value every verifier takes and applies once.

``Policy`` says whom to trust (anchors), what a certificate must be good for (purpose), at
which time, how revocation is checked (one callable, :data:`RevocationCheck`, with the sources
inside it, plus the soft-fail rule) and which algorithms are acceptable. Verifiers never take
``trust_anchors=`` / ``soft_fail=`` keywords of their own.

The rules that follow from it live here, once:

* no anchors: a result is at best ``INDETERMINATE`` (a certificate that comes with the data
  vouches for nobody);
* an anchor is a CA certificate (BasicConstraints cA, self-issued); anything else given as an
  anchor is set aside (``Policy.not_anchors``) and never trusted;
* purpose: a document signature needs a signing certificate, a login an authentication one;
  ``Purpose.ANY`` overrides that, visibly;
* algorithms: RSA below 2048 bits and SHA-1 are refused unless the policy names the opt-in
  :data:`LEGACY_ALGORITHMS` (reported in the reasons).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from jpki.cert import JpkiCertificate
from jpki.errors import UsageError

if TYPE_CHECKING:
    from jpki.revocation.crl import Crl
    from jpki.revocation.store import RevocationStore

__all__ = [
    "DEFAULT_ALGORITHMS",
    "LEGACY_ALGORITHMS",
    "AlgorithmRule",
    "AsyncRevocationCheck",
    "Policy",
    "Purpose",
    "RevocationCheck",
    "RevocationOutcome",
    "check_time",
    "purpose_of",
    "revocation_checker",
]


class Purpose(StrEnum):
    """What the signature is for; decides which certificate kind is acceptable."""

    SIGN = "sign"  # document signature: signing certificate (nonRepudiation)
    LOGIN = "login"  # login / authentication: user-authentication certificate
    ANY = "any"  # caller explicitly overrides the key-usage policy (reported in reasons)


def purpose_of(value: Purpose | str) -> Purpose:
    """Normalise a purpose name; ``UsageError`` for anything unknown."""
    try:
        return Purpose(value)
    except ValueError:
        choices = ", ".join(p.value for p in Purpose)
        raise UsageError(f"unknown purpose {value!r} (use one of {choices})") from None


#: Latest time a datetime arithmetic step may reach without overflowing (year 9999).
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)
_EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)


def check_time(at: datetime, what: str = "validation time") -> datetime:
    """``at`` if it is timezone-aware and in a sane range, else ``UsageError``.

    Times near year 1 or 9999 overflow once a skew or a lifetime is added to them.
    """
    if at.tzinfo is None or at.utcoffset() is None:
        raise UsageError(f"{what} must be timezone-aware")
    if not _EARLIEST <= at <= _LATEST:
        raise UsageError(f"{what} {at.isoformat()} is out of range (1900 to 9000)")
    return at


class RevocationOutcome(Protocol):
    """What a revocation check returns (``jpki.revocation.policy.RevocationResult`` fits)."""

    @property
    def status(self) -> Any:  # an Enum named GOOD / REVOKED / UNKNOWN
        """The check's verdict: GOOD, REVOKED or UNKNOWN."""


#: ``(certificate, issuer, validation time) -> outcome``: the one revocation call. It may
#: also raise ``RevokedError`` / ``RevocationError``.
RevocationCheck = Callable[[JpkiCertificate, JpkiCertificate, datetime], RevocationOutcome]
#: The same as a coroutine function (awaited on the event loop by the async verifiers).
AsyncRevocationCheck = Callable[
    [JpkiCertificate, JpkiCertificate, datetime], Awaitable[RevocationOutcome]
]


def revocation_checker(
    *,
    crls: Iterable[Crl | bytes] = (),
    ocsp_url: str | None = None,
    soft_fail: bool = False,
    store: RevocationStore | None = None,
) -> RevocationCheck:
    """A :data:`RevocationCheck` backed by ``jpki.revocation.policy.check_revocation``.

    ``crls``: DER/PEM bytes or ``jpki.revocation.Crl`` objects (``Crl.from_file`` maps big files).
    """
    from jpki.revocation.policy import CrlFiles, RevocationPolicy, check_revocation

    pol = RevocationPolicy(soft_fail=soft_fail)
    sources = tuple(crls)
    # Made at the first check, not here: a CRL that cannot be loaded is that check's
    # answer (revocation unknown), as before; once made it serves every later call.
    files: list[CrlFiles] = []

    def check(cert: JpkiCertificate, issuer: JpkiCertificate, at: datetime) -> RevocationOutcome:
        if sources and not files:
            files.append(CrlFiles(sources))
        return check_revocation(
            cert,
            issuer,
            crls=files[0] if files else (),
            ocsp_url=ocsp_url,
            store=store,
            at=at,
            policy=pol,
        )

    return check


@dataclass(frozen=True)
class AlgorithmRule:
    """Which public-key sizes and hashes a signature may use."""

    name: str
    min_rsa_bits: int
    allow_sha1: bool

    def problems(self, rsa_bits: int | None, hash_name: str | None) -> tuple[str, ...]:
        """Why a signature with this key size / hash is refused (empty: acceptable)."""
        out: list[str] = []
        if rsa_bits is not None and rsa_bits < self.min_rsa_bits:
            out.append(
                f"the signer's RSA key has {rsa_bits} bits; at least {self.min_rsa_bits} are "
                "required (opt in with the 'legacy' algorithm rule to verify old signatures)"
            )
        if hash_name is not None and hash_name.lower() == "sha1" and not self.allow_sha1:
            out.append(
                "the signature uses SHA-1, which is refused (opt in with the 'legacy' "
                "algorithm rule to verify old signatures)"
            )
        return tuple(out)

    def notes(self, rsa_bits: int | None, hash_name: str | None) -> tuple[str, ...]:
        """What the opt-in let through (so a result never hides it)."""
        weak = []
        if rsa_bits is not None and rsa_bits < DEFAULT_ALGORITHMS.min_rsa_bits:
            weak.append(f"RSA-{rsa_bits}")
        if hash_name is not None and hash_name.lower() == "sha1":
            weak.append("SHA-1")
        if not weak or self.problems(rsa_bits, hash_name):
            return ()
        return (f"weak algorithm {' and '.join(weak)} accepted by the '{self.name}' rule",)


#: RSA ≥ 2048, no SHA-1 (the default).
DEFAULT_ALGORITHMS = AlgorithmRule("default", 2048, False)
#: Explicit opt-in for verifying old signatures: RSA ≥ 1024 and SHA-1 allowed, always reported.
LEGACY_ALGORITHMS = AlgorithmRule("legacy", 1024, True)


def _anchor_problem(cert: JpkiCertificate) -> str | None:
    if not cert.is_ca:
        return "not a CA certificate (BasicConstraints cA is not set)"
    if cert.certificate.subject.public_bytes() != cert.certificate.issuer.public_bytes():
        return "not self-issued (subject and issuer differ)"
    return None


@dataclass(frozen=True)
class Policy:
    """Anchors, purpose, time, revocation rule and algorithm rule, decided once.

    ``purpose=None`` means "what the verifier is for": a document signature or CMS needs a
    signing certificate, a login an authentication one, a chain check follows the kind.
    ``at=None`` means "now", read once per verification. ``required_policies``: the path
    must carry one of these certificate-policy OIDs; ``timestamp_anchors`` are the TSA CAs
    that can prove a signature timestamp.
    """

    anchors: Sequence[JpkiCertificate] = ()
    purpose: Purpose | None = None
    at: datetime | None = None
    revocation: RevocationCheck | AsyncRevocationCheck | None = None
    soft_fail: bool = False
    algorithms: AlgorithmRule = DEFAULT_ALGORITHMS
    required_policies: Collection[str] | None = None
    #: Anchors for RFC 3161 timestamp tokens (TSA CAs), kept apart from the signers' anchors.
    timestamp_anchors: Sequence[JpkiCertificate] = ()
    #: (subject, why) of each certificate given as an anchor but refused as one (filled in
    #: by the policy itself; kept by ``dataclasses.replace``).
    not_anchors: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        given = tuple(self.anchors)
        kept: list[JpkiCertificate] = []
        refused: list[tuple[str, str]] = list(self.not_anchors)
        for a in given:
            if not isinstance(a, JpkiCertificate):
                raise UsageError("trust anchors must be JpkiCertificate objects")
            why = _anchor_problem(a)
            if why is None:
                if a not in kept:
                    kept.append(a)
            elif (a.subject_text, why) not in refused:
                refused.append((a.subject_text, why))
        object.__setattr__(self, "anchors", tuple(kept))
        object.__setattr__(self, "not_anchors", tuple(refused))
        if self.purpose is not None:
            object.__setattr__(self, "purpose", purpose_of(self.purpose))
        if self.at is not None:
            check_time(self.at)
        object.__setattr__(self, "timestamp_anchors", tuple(self.timestamp_anchors))
        if self.required_policies is not None:
            object.__setattr__(self, "required_policies", frozenset(self.required_policies))
        if self.soft_fail and self.revocation is None:
            raise UsageError("soft_fail needs a revocation check (a CRL, store or OCSP source)")

    @classmethod
    def jlis(cls, purpose: Purpose | str | None = None, **kw: Any) -> Policy:
        """A policy trusting the built-in J-LIS roots (all three generations)."""
        from jpki.trust.jlis import jlis_roots

        p = purpose_of(purpose) if purpose is not None else None
        which = {Purpose.SIGN: "sign", Purpose.LOGIN: "auth"}.get(p, "any") if p else "any"
        return cls(anchors=jlis_roots(which), purpose=p, **kw)  # type: ignore[arg-type]

    @property
    def has_anchors(self) -> bool:
        """True when the policy names at least one trust anchor."""
        return bool(self.anchors)

    def time(self) -> datetime:
        """The validation time: ``at``, or now."""
        return self.at if self.at is not None else datetime.now(UTC)

    def purpose_for(self, default: Purpose) -> Purpose:
        """This policy's purpose, or the verifier's ``default`` when none is set."""
        return self.purpose if self.purpose is not None else default

    def with_time(self, at: datetime) -> Policy:
        """The same policy at a fixed time."""
        # Only ``at`` changes and it is checked here: every other field was validated when
        # this policy was made, so skip __post_init__ (re-judging each anchor costs more than
        # the RSA work of a login, which asks for this on every call).
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.__dict__["at"] = check_time(at)
        return new

    def with_anchors(self, *more: JpkiCertificate) -> Policy:
        """The same policy trusting ``more`` as well (refused ones are still set aside)."""
        return replace(self, anchors=(*self.anchors, *more))

    def anchor_notes(self) -> tuple[str, ...]:
        """Sentences about the certificates refused as anchors."""
        return tuple(
            f"{subject} was given as a trust anchor but is {why}: it is not trusted"
            for subject, why in self.not_anchors
        )
