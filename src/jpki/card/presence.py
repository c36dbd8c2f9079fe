"""Card presence (card-protocol.md §6.1): the card in front of us, not a copy of its files.

A card-info AP signs a fresh challenge with its own key (``80 2A 00 00``, no credential). The
answer is checked against the card key found inside a record whose signature chains to the
CVCA; a signature checked against a key that is not vouched for proves nothing, so the result
is never better than the record's chain result.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import rsa

from jpki.card.cvc import IntegrityResult, IntegrityStatus, pkcs1_sha256_ok
from jpki.card.text_ap import TextAp
from jpki.card.visual_ap import VisualAp

CHALLENGE_SIZE = 32


@dataclass(frozen=True)
class PresenceResult:
    """``valid``: the challenge was signed by the CVCA-vouched card key of ``ap``."""

    status: IntegrityStatus
    ap: str
    reasons: tuple[str, ...]
    chain: IntegrityResult

    def as_dict(self) -> dict[str, object]:
        """The JSON form: status, AP, reasons and the record chain's result."""
        return {
            "status": self.status.value,
            "ap": self.ap,
            "reasons": list(self.reasons),
            "record_integrity": self.chain.as_dict(),
        }


def judge(
    ap: str,
    challenge: bytes,
    signature: bytes,
    card_key: rsa.RSAPublicKey | None,
    chain: IntegrityResult,
) -> PresenceResult:
    """Combine the record's chain result with the challenge signature check."""
    if card_key is None:
        return PresenceResult(
            IntegrityStatus.INDETERMINATE, ap, ("the record holds no readable card key",), chain
        )
    signed = pkcs1_sha256_ok(card_key, signature, challenge)
    if not signed:
        reason = "the challenge signature does not verify with the card key in the record"
        return PresenceResult(IntegrityStatus.INVALID, ap, (reason,), chain)
    if chain.status is not IntegrityStatus.VALID:
        reason = "the challenge verifies, but the card key in the record is not vouched for"
        return PresenceResult(chain.status, ap, (reason, *chain.reasons), chain)
    reason = f"the challenge is signed by the card key the CVCA {chain.cvca} chain vouches for"
    return PresenceResult(IntegrityStatus.VALID, ap, (reason,), chain)


def new_challenge() -> bytes:
    """A fresh random challenge for a card-presence check."""
    return os.urandom(CHALLENGE_SIZE)


def text_ap_presence(text_ap: TextAp, challenge: bytes) -> PresenceResult:
    """Text AP: the card key of EF 0007 (needs the PIN or a collation verified first)."""
    chain, card_key = text_ap.read_signed_card_key()
    signature = text_ap.sign_challenge(challenge)
    return judge("text", challenge, signature, card_key, chain)


def visual_ap_presence(visual: VisualAp, challenge: bytes) -> PresenceResult:
    """Visual AP: the card key of the age record EF 0001 (needs the birth-date key first)."""
    record = visual.read_age_record()
    chain = visual.check(record)
    signature = visual.sign_challenge(challenge)
    return judge("visual", challenge, signature, record.card_key, chain)


__all__ = [
    "CHALLENGE_SIZE",
    "PresenceResult",
    "judge",
    "new_challenge",
    "text_ap_presence",
    "visual_ap_presence",
]
