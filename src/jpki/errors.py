"""The ``JpkiError`` family: every failure the library reports on bad input or a bad peer."""

from __future__ import annotations

from datetime import datetime


class JpkiError(Exception):
    """Root of every error jpki raises on purpose."""


class UsageError(JpkiError):
    """The caller asked for something impossible (bad argument, bad option combination)."""


class ParseError(JpkiError):
    """Bytes from outside (card, file, network) do not have the expected structure."""


class TlvError(ParseError):
    """Malformed BER-TLV or DER length."""


class ApduFormatError(ParseError):
    """Malformed command or response APDU."""


# --- transport -----------------------------------------------------------------------------


class TransportError(JpkiError):
    """Bytes could not reach the chip or come back from it."""


class ReaderNotFoundError(TransportError):
    """No reader matches, or the reader went away."""


class NoCardError(TransportError):
    """The reader has no card in it."""


class CardRemovedError(TransportError):
    """The card was removed (or the bridge socket closed) during a session."""


class SharingViolationError(TransportError):
    """Another process holds the card exclusively."""


class TransportTimeoutError(TransportError):
    """The card or the bridge did not answer in time."""


# --- card ----------------------------------------------------------------------------------


class CardError(JpkiError):
    """The card answered, but not as a JPKI card should (protocol violation, bad data)."""


class ApduError(CardError):
    """The card answered a command with a status word other than 9000."""

    def __init__(self, sw: int, message: str | None = None) -> None:
        self.sw = sw
        super().__init__(message or f"card answered status word {sw:04X}")


class SecurityStatusError(ApduError):
    """6982: the PIN protecting this object has not been verified in this session."""


class FileNotFoundOnCardError(ApduError):
    """6A82: application or file not found."""


class WrongPin(ApduError):
    """63Cx: the PIN was wrong; ``retries_left`` tries remain."""

    def __init__(self, sw: int, retries_left: int) -> None:
        self.retries_left = retries_left
        super().__init__(sw, f"wrong PIN: {retries_left} tries left")


class PinBlocked(ApduError):
    """6984 (or 63C0): the PIN is blocked; only the municipality can reset it."""

    def __init__(self, sw: int = 0x6984) -> None:
        super().__init__(sw, "PIN is blocked (no tries left); it must be reset at the municipality")


class PinFormatError(UsageError):
    """The PIN does not have the format the card expects; nothing was sent to the card."""


class PinGuardError(UsageError):
    """Refused to VERIFY because only one try is left (pass force=True to try anyway)."""

    def __init__(self, retries_left: int) -> None:
        self.retries_left = retries_left
        super().__init__(
            f"refusing to verify: only {retries_left} try left; a wrong PIN would block it "
            "(force it explicitly if you are sure)"
        )


class IntegrityError(CardError):
    """Data read from the card does not match the issuer's signature or hashes."""


# --- certificates and verification ---------------------------------------------------------


class CertificateError(JpkiError):
    """A certificate is malformed or not what the caller needs."""


class SignatureFormatError(ParseError):
    """A signature, DigestInfo or CMS structure is malformed."""


class ChallengeError(JpkiError):
    """A login challenge is unknown, expired or already used (or its store is unusable)."""


class ChallengeUnknown(ChallengeError):
    def __init__(self) -> None:
        super().__init__("unknown challenge (never issued here, or long expired)")


class ChallengeReplayed(ChallengeError):
    def __init__(self) -> None:
        super().__init__("challenge already used (replay refused)")


class ChallengeExpired(ChallengeError):
    def __init__(self, expired_at: datetime) -> None:
        self.expired_at = expired_at
        super().__init__(f"challenge expired at {expired_at.isoformat()}")


class ProfileError(JpkiError):
    """A simulator card profile or its state file is missing or malformed."""


# --- revocation ----------------------------------------------------------------------------


class RevocationError(JpkiError):
    """Revocation information could not be obtained or trusted."""


class CrlError(RevocationError):
    """A CRL is malformed, badly signed, stale or otherwise unusable."""


class OcspError(RevocationError):
    """An OCSP exchange failed or its response cannot be trusted."""


class RevokedError(RevocationError):
    """The certificate is revoked."""

    def __init__(self, reason: str, revoked_at: datetime | None) -> None:
        self.reason = reason
        self.revoked_at = revoked_at
        at = revoked_at.isoformat() if revoked_at else "unknown time"
        super().__init__(f"certificate revoked ({reason}) at {at}")


class RevocationUnknown(RevocationError):
    """Revocation status could not be determined."""

    def __init__(self, why: str) -> None:
        self.why = why
        super().__init__(f"revocation status unknown: {why}")


# --- card client additions (owner: card client) --------------------------------------------


class LastTryWrongPin(WrongPin, PinBlocked):
    """63C0: the PIN was wrong and that spent the last try; the PIN is now blocked.

    Catchable both as ``WrongPin`` (retries_left == 0) and as ``PinBlocked``.
    """

    def __init__(self, sw: int = 0x63C0) -> None:
        self.retries_left = 0
        ApduError.__init__(self, sw, "wrong PIN: that was the last try, the PIN is now blocked")


class MyNumberError(ParseError):
    """A My Number (個人番号) is not 12 digits or its check digit is wrong."""


class AmbiguousReaderError(ReaderNotFoundError, UsageError):
    """A reader name matches several readers; the user must say which (exit code 2)."""


class BadAddressError(TransportError, UsageError):
    """A HOST:PORT the user gave cannot be resolved or used (exit code 2, not a card error)."""


class TlvTruncatedError(TlvError):
    """The TLV data ends before a tag, length or value it announces is complete."""


# --- signed documents (owner: documents) ----------------------------------------------------


class DocumentError(ParseError):
    """A PDF (or other document to sign or verify) cannot be read or used as asked."""


class TimestampError(JpkiError):
    """A timestamp authority could not be reached or gave no usable timestamp."""
