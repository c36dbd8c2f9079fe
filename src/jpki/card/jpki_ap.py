"""JPKI AP (公的個人認証AP) session: token info, certificates, PINs, signing."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NoReturn

from jpki.apdu import CommandApdu
from jpki.card.constants import TOKEN_LABELS, Aid, JpkiFile, TokenKind
from jpki.card.pin import (
    PinStatus,
    change_reference_data,
    check_digits,
    guarded_verify,
    normalise_signing_password,
    pin_status,
)
from jpki.card.protocol import CardProtocol, as_protocol
from jpki.digestinfo import HashName, digest_info_for
from jpki.errors import CardError, SecurityStatusError, UsageError
from jpki.secret import Secret
from jpki.transport.base import Connection

INS_COMPUTE_SIGNATURE = 0x2A
#: The card pads with PKCS#1 v1.5 type 1 inside a 2048-bit modulus: 256 - 11 bytes at most.
MAX_DIGEST_INFO = 245
TOKEN_LABEL_SIZE = 32


class KeyKind(enum.StrEnum):
    """The two JPKI key pairs, each with its own PIN and certificate."""

    AUTH = "auth"  # 利用者証明用: 4-digit PIN, 3 tries
    SIGNING = "sign"  # 署名用: 6-16 character password, 5 tries

    @classmethod
    def _missing_(cls, value: object) -> NoReturn:
        # JpkiAp methods take plain strings too: a bad one is a UsageError, not a ValueError.
        raise UsageError(f"unknown key {value!r} (auth or sign)")

    @property
    def pin_fid(self) -> JpkiFile:
        return JpkiFile.AUTH_PIN if self is KeyKind.AUTH else JpkiFile.SIGNING_PIN

    @property
    def key_fid(self) -> JpkiFile:
        return JpkiFile.AUTH_KEY if self is KeyKind.AUTH else JpkiFile.SIGNING_KEY

    @property
    def max_tries(self) -> int:
        return 3 if self is KeyKind.AUTH else 5

    @property
    def pin_name(self) -> str:
        return "auth PIN" if self is KeyKind.AUTH else "signing password"

    @property
    def cert_slot(self) -> CertSlot:
        return CertSlot.AUTH if self is KeyKind.AUTH else CertSlot.SIGNING


#: PINs and keys share the same two kinds.
PinKind = KeyKind


class CertSlot(enum.StrEnum):
    """The four certificates on the JPKI AP (CLI names as values)."""

    SIGNING = "sign"
    SIGNING_CA = "sign-ca"
    AUTH = "auth"
    AUTH_CA = "auth-ca"

    @classmethod
    def _missing_(cls, value: object) -> NoReturn:
        raise UsageError(f"unknown certificate {value!r} (sign, sign-ca, auth or auth-ca)")

    @property
    def fid(self) -> JpkiFile:
        return {
            CertSlot.SIGNING: JpkiFile.SIGNING_CERT,
            CertSlot.SIGNING_CA: JpkiFile.SIGNING_CA_CERT,
            CertSlot.AUTH: JpkiFile.AUTH_CERT,
            CertSlot.AUTH_CA: JpkiFile.AUTH_CA_CERT,
        }[self]


@dataclass(frozen=True)
class TokenInfo:
    """EF 0006: the token label (ASCII, space padded) and what kind of token it names."""

    label: str
    kind: TokenKind

    @classmethod
    def parse(cls, raw: bytes) -> TokenInfo:
        head = raw[:TOKEN_LABEL_SIZE]
        try:
            label = head.decode("ascii").rstrip(" \x00")
        except UnicodeDecodeError:
            raise CardError("token info label is not ASCII") from None
        return cls(label, TOKEN_LABELS.get(label, TokenKind.UNKNOWN))


def check_pin_format(kind: KeyKind, secret: Secret) -> Secret:
    """The value to send for ``kind``, or ``PinFormatError`` (nothing goes to the card)."""
    if kind is KeyKind.AUTH:
        return check_digits(secret, "auth PIN", 4)
    return normalise_signing_password(secret)


class JpkiAp:
    """A session with the JPKI AP; the constructor selects it (clearing verified PINs)."""

    def __init__(self, protocol_or_conn: CardProtocol | Connection, *, select: bool = True):
        self.protocol = as_protocol(protocol_or_conn)
        if select:
            self.select()

    def select(self) -> None:
        self.protocol.select_df(Aid.JPKI)

    # --- reading ---------------------------------------------------------------------------

    def token_info(self) -> TokenInfo:
        self.protocol.select_ef(JpkiFile.TOKEN_INFO)
        return TokenInfo.parse(self.protocol.read_file(TOKEN_LABEL_SIZE))

    def read_certificate(self, slot: CertSlot | str) -> bytes:
        """DER of one certificate; the signing one needs the signing password verified first."""
        slot = CertSlot(slot)
        self.protocol.select_ef(slot.fid)
        try:
            return self.protocol.read_der_file()
        except SecurityStatusError as exc:
            raise SecurityStatusError(
                exc.sw, "reading the signing certificate needs the signing password verified"
            ) from None

    # --- PINs ------------------------------------------------------------------------------

    def pin_status(self, kind: KeyKind | str) -> PinStatus:
        """Tries left (empty VERIFY; spends nothing). ``tries_left`` None = card did not say."""
        kind = KeyKind(kind)
        return pin_status(self.protocol, kind.pin_fid, kind.pin_name, kind.max_tries)

    def verify_pin(self, kind: KeyKind | str, secret: Secret, *, force: bool = False) -> None:
        """Verify a PIN once: format check, free counter read, last-try guard, one VERIFY.

        Raises ``PinFormatError`` / ``PinGuardError`` / ``PinBlocked`` without sending the
        PIN, or ``WrongPin(retries_left)`` / ``LastTryWrongPin`` / ``PinBlocked`` from the card.
        """
        kind = KeyKind(kind)
        value = check_pin_format(kind, secret)
        guarded_verify(
            self.protocol, kind.pin_fid, kind.pin_name, value, max_tries=kind.max_tries, force=force
        )

    def change_pin(
        self, kind: KeyKind | str, old: Secret, new: Secret, *, force: bool = False
    ) -> None:
        """VERIFY ``old`` (guarded) then CHANGE REFERENCE DATA to ``new``."""
        kind = KeyKind(kind)
        new_value = check_pin_format(kind, new)
        self.verify_pin(kind, old, force=force)
        change_reference_data(self.protocol, kind.pin_name, new_value)

    # --- signing ---------------------------------------------------------------------------

    def sign(self, key: KeyKind | str, digest_info: bytes) -> bytes:
        """COMPUTE DIGITAL SIGNATURE over a DER DigestInfo (the card pads, hashes nothing)."""
        key = KeyKind(key)
        if not 1 <= len(digest_info) <= MAX_DIGEST_INFO:
            raise UsageError(f"DigestInfo must be 1-{MAX_DIGEST_INFO} bytes")
        self.protocol.select_ef(key.key_fid)
        apdu = CommandApdu(0x80, INS_COMPUTE_SIGNATURE, 0x00, 0x80, bytes(digest_info), le=256)
        try:
            signature = self.protocol.send(apdu, what=f"sign with the {key.value} key")
        except SecurityStatusError as exc:
            raise SecurityStatusError(
                exc.sw, f"signing needs the {key.pin_name} verified in this session"
            ) from None
        if not signature:
            raise CardError("card returned an empty signature")
        return signature

    def sign_data(
        self, key: KeyKind | str, data: bytes, hash_name: str | HashName = HashName.SHA256
    ) -> bytes:
        """Hash ``data`` with ``hash_name`` (sha1/256/384/512), build the DigestInfo, sign."""
        return self.sign(key, digest_info_for(data, hash_name))
