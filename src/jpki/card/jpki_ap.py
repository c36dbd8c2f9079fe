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
from jpki.errors import CardError, FileNotFoundOnCardError, SecurityStatusError, UsageError
from jpki.secret import Secret
from jpki.transport.base import Connection

INS_COMPUTE_SIGNATURE = 0x2A
#: The card pads with PKCS#1 v1.5 type 1 inside a 2048-bit modulus: 256 - 11 bytes at most.
MAX_DIGEST_INFO = 245
#: P1 01/03/05: the card hashes a message of at most 255 bytes (one short APDU).
MAX_MESSAGE = 255
TOKEN_LABEL_SIZE = 32
TOKEN_INFO_SIZE = 160
CERT_PRESENT = 0x8F


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
        """The EF of this key's PIN (auth PIN or signing password)."""
        return JpkiFile.AUTH_PIN if self is KeyKind.AUTH else JpkiFile.SIGNING_PIN

    @property
    def key_fid(self) -> JpkiFile:
        """The EF of this private key (the COMPUTE DIGITAL SIGNATURE target)."""
        return JpkiFile.AUTH_KEY if self is KeyKind.AUTH else JpkiFile.SIGNING_KEY

    @property
    def max_tries(self) -> int:
        """Tries the PIN allows before it blocks: 3 (auth) or 5 (signing)."""
        return 3 if self is KeyKind.AUTH else 5

    @property
    def pin_name(self) -> str:
        """The PIN's name in messages: ``"auth PIN"`` or ``"signing password"``."""
        return "auth PIN" if self is KeyKind.AUTH else "signing password"

    @property
    def cert_slot(self) -> CertSlot:
        """The slot of the certificate for this key pair."""
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
        """The EF that holds this certificate."""
        return {
            CertSlot.SIGNING: JpkiFile.SIGNING_CERT,
            CertSlot.SIGNING_CA: JpkiFile.SIGNING_CA_CERT,
            CertSlot.AUTH: JpkiFile.AUTH_CERT,
            CertSlot.AUTH_CA: JpkiFile.AUTH_CA_CERT,
        }[self]


@dataclass(frozen=True)
class TokenInfo:
    """EF 0006: a PKCS#11 ``CK_TOKEN_INFO`` (160 bytes, 32-bit big-endian integers).

    Only the label is sure to be there; a shorter file leaves the other fields None.
    """

    label: str
    kind: TokenKind
    manufacturer: str | None = None
    model: str | None = None
    serial_number: str | None = None
    flags: int | None = None
    #: ulMaxSessionCount … ulFreePrivateMemory, in CK_TOKEN_INFO order.
    counters: tuple[int, ...] | None = None
    hardware_version: bytes | None = None
    firmware_version: bytes | None = None
    utc_time: str | None = None

    @property
    def max_pin_len(self) -> int | None:
        """``ulMaxPinLen``, or None when the file is shorter than 160 bytes."""
        return self.counters[4] if self.counters else None

    @property
    def min_pin_len(self) -> int | None:
        """``ulMinPinLen``, or None when the file is shorter than 160 bytes."""
        return self.counters[5] if self.counters else None

    @classmethod
    def parse(cls, raw: bytes) -> TokenInfo:
        """Parse EF 0006; a label alone is enough, a non-ASCII field is a ``CardError``."""
        label = _ascii(raw[:TOKEN_LABEL_SIZE], "token info label")
        kind = TOKEN_LABELS.get(label, TokenKind.UNKNOWN)
        if len(raw) < TOKEN_INFO_SIZE:
            return cls(label, kind)
        ints = [int.from_bytes(raw[i : i + 4], "big") for i in range(96, 140, 4)]
        return cls(
            label,
            kind,
            manufacturer=_ascii(raw[32:64], "manufacturerID"),
            model=_ascii(raw[64:80], "model"),
            serial_number=_ascii(raw[80:96], "serialNumber"),
            flags=ints[0],
            counters=tuple(ints[1:]),
            hardware_version=raw[140:142],
            firmware_version=raw[142:144],
            utc_time=_ascii(raw[144:160], "utcTime"),
        )

    def as_dict(self) -> dict[str, object]:
        """The JSON form: every field, the counters by name, versions in hex."""
        names = (
            "max_session_count",
            "session_count",
            "max_rw_session_count",
            "rw_session_count",
            "max_pin_len",
            "min_pin_len",
            "total_public_memory",
            "free_public_memory",
            "total_private_memory",
            "free_private_memory",
        )
        return {
            "label": self.label,
            "kind": self.kind.value,
            "manufacturer": self.manufacturer,
            "model": self.model,
            "serial_number": self.serial_number,
            "flags": self.flags,
            **dict(zip(names, self.counters or (None,) * len(names), strict=True)),
            "hardware_version": self.hardware_version.hex() if self.hardware_version else None,
            "firmware_version": self.firmware_version.hex() if self.firmware_version else None,
            "utc_time": self.utc_time,
        }


def _ascii(raw: bytes, what: str) -> str:
    try:
        return raw.decode("ascii").rstrip(" \x00")
    except UnicodeDecodeError:
        raise CardError(f"{what} is not ASCII") from None


@dataclass(frozen=True)
class CertAvailability:
    """EF 0008: ``8F`` in byte 0 = a signing certificate exists, byte 1 = auth (None: unread)."""

    raw: bytes | None

    @property
    def signing(self) -> bool | None:
        """Whether a signing certificate is present (None: not read or too short)."""
        return None if self.raw is None or len(self.raw) < 1 else self.raw[0] == CERT_PRESENT

    @property
    def auth(self) -> bool | None:
        """Whether an auth certificate is present (None: not read or too short)."""
        return None if self.raw is None or len(self.raw) < 2 else self.raw[1] == CERT_PRESENT


class SignScheme(enum.IntEnum):
    """COMPUTE DIGITAL SIGNATURE P1 (card-protocol.md §4)."""

    DIGEST_INFO = 0x00  # PKCS#1 v1.5 of the bytes as sent (usually a DigestInfo)
    SHA256_BARE = 0x01  # card hashes the message; PKCS#1 over the bare 32-byte hash
    SHA256_HASH = 0x02  # 32-byte hash; card wraps it in a DigestInfo
    SHA256 = 0x03  # card hashes the message and wraps it in a DigestInfo
    PSS_HASH = 0x04  # 32-byte hash; RSASSA-PSS
    PSS = 0x05  # card hashes the message; RSASSA-PSS

    @property
    def input_range(self) -> tuple[int, int]:
        """The (least, most) input bytes this scheme takes."""
        if self is SignScheme.DIGEST_INFO:
            return (1, MAX_DIGEST_INFO)
        if self in (SignScheme.SHA256_HASH, SignScheme.PSS_HASH):
            return (32, 32)
        return (1, MAX_MESSAGE)

    def check_input(self, data: bytes) -> None:
        """``UsageError`` before any APDU when ``data`` does not fit the scheme."""
        low, high = self.input_range
        if not low <= len(data) <= high:
            want = f"exactly {low}" if low == high else f"{low}-{high}"
            raise UsageError(
                f"signing scheme P1={self.value:02X} takes {want} bytes of input, not {len(data)}"
            )


def check_pin_format(kind: KeyKind, secret: Secret) -> Secret:
    """The value to send for ``kind``, or ``PinFormatError`` (nothing goes to the card)."""
    if kind is KeyKind.AUTH:
        return check_digits(secret, "auth PIN", 4)
    return normalise_signing_password(secret)


class JpkiAp:
    """A session with the JPKI AP; the constructor selects it (clearing verified PINs)."""

    def __init__(self, protocol_or_conn: CardProtocol | Connection, *, select: bool = True):
        self.protocol = as_protocol(protocol_or_conn)
        self._token_kind: TokenKind | None = None
        if select:
            self.select()

    def select(self) -> None:
        """SELECT the JPKI AP by its AID (the card forgets verified PINs)."""
        self.protocol.select_df(Aid.JPKI)

    # --- reading ---------------------------------------------------------------------------

    def token_info(self) -> TokenInfo:
        """EF 0006, the full 160-byte CK_TOKEN_INFO (free)."""
        self.protocol.select_ef(JpkiFile.TOKEN_INFO)
        info = TokenInfo.parse(self.protocol.read_file(TOKEN_INFO_SIZE))
        self._token_kind = info.kind
        return info

    def cert_availability(self) -> CertAvailability:
        """EF 0008 (free): which certificates exist; None fields when the file is absent."""
        try:
            self.protocol.select_ef(JpkiFile.CERT_AVAILABILITY)
            return CertAvailability(self.protocol.read_file(16))
        except FileNotFoundOnCardError:
            return CertAvailability(None)

    def auth_cert_needs_pin(self) -> bool:
        """On an Android phone token (JPKIAPGPSETOKEN) the auth certificate needs the auth PIN."""
        if self._token_kind is None:
            self.token_info()
        return self._token_kind is TokenKind.ANDROID

    def read_certificate(self, slot: CertSlot | str) -> bytes:
        """DER of one certificate; the signing one needs the signing password verified first
        (and on an Android phone token the auth one needs the auth PIN)."""
        slot = CertSlot(slot)
        self.protocol.select_ef(slot.fid)
        try:
            return self.protocol.read_der_file()
        except SecurityStatusError as exc:
            need = {
                CertSlot.SIGNING: "the signing password",
                CertSlot.AUTH: "the auth PIN (as on an Android phone token)",
            }.get(slot, "a PIN")
            raise SecurityStatusError(
                exc.sw, f"reading the {slot.value} certificate needs {need} verified first"
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

    def sign(
        self,
        key: KeyKind | str,
        digest_info: bytes,
        scheme: SignScheme | int = SignScheme.DIGEST_INFO,
    ) -> bytes:
        """COMPUTE DIGITAL SIGNATURE. P1 00 (default): PKCS#1 v1.5 over a DER DigestInfo as
        sent; other schemes (``SignScheme``) hash on card and/or use RSASSA-PSS. The input
        length is checked before anything is sent."""
        key = KeyKind(key)
        try:
            p1 = SignScheme(scheme)
        except ValueError:
            raise UsageError(f"unknown signing scheme P1={int(scheme):02X} (00-05)") from None
        p1.check_input(bytes(digest_info))
        self.protocol.select_ef(key.key_fid)
        apdu = CommandApdu(0x80, INS_COMPUTE_SIGNATURE, p1.value, 0x80, bytes(digest_info), le=256)
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
