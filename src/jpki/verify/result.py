"""Tri-state verification results with human-readable reasons (never a bare bool)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """Outcome of a check. ``INDETERMINATE`` means "cannot decide", not "probably fine"."""

    VALID = "valid"
    INVALID = "invalid"
    INDETERMINATE = "indeterminate"


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
        d: dict[str, Any] = {"status": self.status.value, "reasons": list(self.reasons)}
        if self.time is not None:
            d["time"] = self.time.isoformat()
        if self.tsa is not None:
            d["tsa"] = self.tsa
        return d


@dataclass(frozen=True)
class VerificationResult:
    """What a verifier decided and why.

    ``reasons`` are sentences for a person (also on success: overrides and notes appear
    there). Optional fields are filled by the verifier that knows them.
    """

    status: Status
    reasons: tuple[str, ...] = ()
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

    @property
    def valid(self) -> bool:
        return self.status is Status.VALID

    def with_reasons(self, *more: str, status: Status | None = None) -> VerificationResult:
        """A copy with extra reasons, and the status worsened to ``status`` if given."""
        new_status = worst((self.status, status)) if status is not None else self.status
        return replace(self, status=new_status, reasons=self.reasons + tuple(more))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; ``status`` and ``reasons`` always present, empty fields omitted."""
        d: dict[str, Any] = {"status": self.status.value, "reasons": list(self.reasons)}
        for key in ("certificate_fingerprint", "certificate_kind", "subject", "account_key"):
            value = getattr(self, key)
            if value is not None:
                d[key] = value
        if self.signing_time is not None:
            d["signing_time"] = self.signing_time.isoformat()
        if self.chain:
            d["chain"] = list(self.chain)
        if self.signers:
            d["signers"] = [s.to_dict() for s in self.signers]
        if self.timestamp is not None:
            d["timestamp"] = self.timestamp.to_dict()
        return d
