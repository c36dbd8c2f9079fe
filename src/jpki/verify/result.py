"""Tri-state verification results with coded reasons (never a bare bool).

A reason is a :class:`Reason`: a ``str`` (the sentence for a person) that also carries a
stable ``code`` (for code that decides: never match on the text). JSON keeps the texts in
``reasons`` and adds the codes, in the same order, in ``reason_codes``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jpki.cert import BasicInfo, JpkiCertificate


class Status(StrEnum):
    """Outcome of a check. ``INDETERMINATE`` means "cannot decide", not "probably fine"."""

    VALID = "valid"
    INVALID = "invalid"
    INDETERMINATE = "indeterminate"


class Code(StrEnum):
    """Stable reason codes (``area.what``). New codes may be added; existing ones stay."""

    NOTE = "note"
    SIGNATURE_OK = "signature.ok"
    SIGNATURE_MISMATCH = "signature.mismatch"
    SIGNATURE_WRONG_KEY = "signature.wrong_key"
    SIGNATURE_LENGTH = "signature.length"
    SIGNATURE_HASH_MISMATCH = "signature.hash_mismatch"
    SIGNATURE_NOT_DIGEST_INFO = "signature.not_digest_info"
    INPUT_MALFORMED = "input.malformed"
    DATA_DIGEST_MISMATCH = "input.data_digest_mismatch"
    PURPOSE_WRONG_KIND = "purpose.wrong_kind"
    PURPOSE_KEY_USAGE = "purpose.key_usage"
    PURPOSE_CA_AS_END_ENTITY = "purpose.ca_as_end_entity"
    PURPOSE_OVERRIDDEN = "purpose.overridden"
    ALGORITHM_REFUSED = "algorithm.refused"
    ALGORITHM_LEGACY_ACCEPTED = "algorithm.legacy_accepted"
    ALGORITHM_UNSUPPORTED = "algorithm.unsupported"
    CERT_EXPIRED = "certificate.expired"
    CERT_NOT_YET_VALID = "certificate.not_yet_valid"
    CERT_MALFORMED = "certificate.malformed"
    CERT_MISSING = "certificate.missing"
    CHAIN_OK = "chain.ok"
    CHAIN_UNTRUSTED = "chain.untrusted"
    CHAIN_INVALID = "chain.invalid"
    CHAIN_NOT_VALIDATED = "chain.not_validated"
    ANCHOR_REFUSED = "anchor.refused"
    REVOCATION_GOOD = "revocation.good"
    REVOCATION_REVOKED = "revocation.revoked"
    REVOCATION_UNKNOWN = "revocation.unknown"
    REVOCATION_SOFT_FAIL = "revocation.soft_fail"
    REVOCATION_NOT_CHECKED = "revocation.not_checked"
    CHALLENGE_REFUSED = "challenge.refused"
    CMS_ATTRIBUTES = "cms.attributes"
    CMS_CONTENT_MISMATCH = "cms.content_mismatch"
    CMS_DETACHED = "cms.detached_without_content"
    CMS_NO_SIGNERS = "cms.no_signers"
    CMS_SIGNER = "cms.signer"
    CMS_SIGNING_TIME = "cms.signing_time"
    BATCH_SUMMARY = "batch.summary"


class Reason(str):
    """A reason text with its stable :class:`Code` (compares and prints as the text)."""

    code: Code

    def __new__(cls, code: Code | str, text: str) -> Reason:
        self = super().__new__(cls, text)
        self.code = code if type(code) is Code else Code(code)
        return self

    @property
    def text(self) -> str:
        """The reason as plain text (a ``str``, without its code)."""
        return str.__str__(self)

    def __repr__(self) -> str:
        return f"Reason({self.code.value!r}, {self.text!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Reason, (self.code.value, self.text))


def reason(code: Code, text: str) -> Reason:
    """A ``Reason`` from a code and its text."""
    return Reason(code, text)


def as_reason(r: str) -> Reason:
    """``r`` itself if it is a Reason, else a plain note."""
    return r if isinstance(r, Reason) else Reason(Code.NOTE, r)


# Combining: one invalid part makes the whole invalid; otherwise one undecidable part makes
# the whole undecidable.
_RANK = {Status.VALID: 0, Status.INDETERMINATE: 1, Status.INVALID: 2}


def worst(statuses: Iterable[Status]) -> Status:
    """The combined status of several checks (INVALID > INDETERMINATE > VALID)."""
    out = Status.VALID
    for s in statuses:
        if _RANK[s] > _RANK[out]:
            out = s
    return out


@dataclass(frozen=True)
class TimestampInfo:
    """An RFC 3161 timestamp token's verdict: the time it proves and why (or why not)."""

    status: Status
    reasons: tuple[str, ...] = ()
    #: genTime of the token (None if it could not be read).
    time: datetime | None = None
    #: Subject of the TSA certificate.
    tsa: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: status, reasons and, when known, the time and the TSA."""
        d: dict[str, Any] = {"status": self.status.value, "reasons": list(self.reasons)}
        if self.time is not None:
            d["time"] = self.time.isoformat()
        if self.tsa is not None:
            d["tsa"] = self.tsa
        return d


@dataclass(frozen=True)
class VerificationResult:
    """What a verifier decided and why.

    ``reasons`` are :class:`Reason` values (also on success: overrides and notes appear
    there). Optional fields are filled by the verifier that knows them; ``certificate`` is
    the signer's (or validated) certificate and ``basic_info`` its basic 4 information when
    it is a signing certificate.
    """

    status: Status
    reasons: tuple[Reason, ...] = ()
    #: SHA-256 fingerprint (hex) of the certificate whose key made the signature.
    certificate_fingerprint: str | None = None
    #: ``CertKind`` value of that certificate ("signing", "authentication", ...).
    certificate_kind: str | None = None
    subject: str | None = None
    #: CMS signingTime signed attribute, if present.
    signing_time: datetime | None = None
    #: Login only: stable key for the account (see docs/verify.md).
    account_key: str | None = None
    #: Chain validation: subjects from the trust anchor down to the end entity.
    chain: tuple[str, ...] = ()
    #: CMS: one result per signer.
    signers: tuple[VerificationResult, ...] = field(default=())
    #: CMS: the signer's signature timestamp (RFC 3161 unsigned attribute), if present.
    timestamp: TimestampInfo | None = None
    certificate: JpkiCertificate | None = field(default=None, compare=False, repr=False)
    basic_info: BasicInfo | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        for r in self.reasons:  # a plain loop: this runs for every result made
            if type(r) is not Reason:
                object.__setattr__(self, "reasons", tuple(as_reason(r) for r in self.reasons))
                break

    def evolve(self, **changes: Any) -> VerificationResult:
        """A copy with ``changes``: ``dataclasses.replace`` at a fraction of the cost."""
        # Every field of ``self`` already holds; only the changed ones need checking (the
        # reasons' type). A login makes a result or two per call: this is most of the cost.
        if not changes.keys() <= _RESULT_FIELDS:
            raise TypeError(f"unknown result field(s): {sorted(changes.keys() - _RESULT_FIELDS)}")
        new = object.__new__(type(self))
        d = new.__dict__
        d.update(self.__dict__)
        d.update(changes)
        if "reasons" in changes:
            new.__post_init__()
        return new

    @property
    def valid(self) -> bool:
        """True when the status is VALID."""
        return self.status is Status.VALID

    @property
    def codes(self) -> tuple[Code, ...]:
        """The reasons' codes, in order."""
        return tuple(r.code for r in self.reasons)

    def has(self, code: Code) -> bool:
        """Whether any reason carries ``code``."""
        return any(r.code is code for r in self.reasons)

    def with_reasons(self, *more: str, status: Status | None = None) -> VerificationResult:
        """A copy with extra reasons, and the status worsened to ``status`` if given."""
        new_status = worst((self.status, status)) if status is not None else self.status
        return replace(
            self, status=new_status, reasons=self.reasons + tuple(as_reason(r) for r in more)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; ``status``, ``reasons`` and ``reason_codes`` always present."""
        d: dict[str, Any] = {
            "status": self.status.value,
            "reasons": [r.text for r in self.reasons],
            "reason_codes": [r.code.value for r in self.reasons],
        }
        for key in ("certificate_fingerprint", "certificate_kind", "subject", "account_key"):
            value = getattr(self, key)
            if value is not None:
                d[key] = value
        if self.signing_time is not None:
            d["signing_time"] = self.signing_time.isoformat()
        if self.chain:
            d["chain"] = list(self.chain)
        if self.basic_info is not None:
            d["basic_info"] = self.basic_info.as_dict()
        if self.signers:
            d["signers"] = [s.to_dict() for s in self.signers]
        if self.timestamp is not None:
            d["timestamp"] = self.timestamp.to_dict()
        return d


_RESULT_FIELDS = frozenset(f.name for f in fields(VerificationResult))
