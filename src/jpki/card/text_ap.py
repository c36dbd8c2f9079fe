"""Card-info input support AP (券面入力補助AP): My Number, basic 4 information, integrity.

Layouts as read off a JPKI test card (card-protocol.md §5): EF 0001 ``FF10`` + 12 digits + two
filler bytes; EF 0002 ``FF20 { DF21 offsets; DF22 name; DF23 address; DF24 birth; DF25 sex }``;
EF 0003 ``FF30 { DF31 SHA-256(physical EF 0001); DF32 SHA-256(EF 0002 value after DF21);
DF33 signature over the DF31 and DF32 TLVs }``, signed by the key the EF 0004 CVC certifies.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import ClassVar

from cryptography.hazmat.primitives.asymmetric import rsa

from jpki.apdu import CommandApdu
from jpki.card.constants import Aid, TextFile
from jpki.card.cvc import (
    CardVerifiableCertificate,
    IntegrityResult,
    IntegrityStatus,
    chain_result,
    check_cvc,
    indeterminate,
    parse_rsa_key,
    pkcs1_sha256_ok,
    sha256,
    sha256_digest_info,
)
from jpki.card.pin import PinStatus, check_digits, guarded_verify, pin_status
from jpki.card.protocol import CardProtocol, as_protocol
from jpki.card.records import key_id, outer_tlv, parse_record
from jpki.errors import (
    ApduError,
    CardError,
    JpkiError,
    MyNumberError,
    ParseError,
    PinFormatError,
    SecurityStatusError,
)
from jpki.mynumber import MyNumber
from jpki.secret import Secret
from jpki.transport.base import Connection
from jpki.trust.cvca import CvcaKeyring

TAG_MY_NUMBER = 0xFF10
TAG_BASIC_INFO = 0xFF20
TAG_INTEGRITY = 0xFF30
TAG_AP_BASIC = 0xFF40
TAG_SESSION_KEY = 0xA1
TAG_SIGNED_KEY = 0xFF50
TAG_OFFSETS = 0xDF21
PIN_TRIES = 3
INS_COMPUTE_SIGNATURE = 0x2A
#: Largest physical file the card-info APs hold (the visual AP card face is a few KB).
MAX_RECORD_FILE = 0x7FFF


class CardSex(enum.IntEnum):
    """Sex as the card codes it (JIS X 0303): not the certificate coding."""

    UNKNOWN = 0
    MALE = 1
    FEMALE = 2
    NOT_APPLICABLE = 9


# --- parsing helpers shared with the visual AP --------------------------------------------


def parse_sex(raw: bytes) -> CardSex:
    """One byte, ASCII digit (``'1'``) or binary (``01``); anything else is a ``ParseError``."""
    if len(raw) != 1:
        raise ParseError(f"sex field must be 1 byte, not {len(raw)}")
    code = raw[0] - 0x30 if 0x30 <= raw[0] <= 0x39 else raw[0]
    try:
        return CardSex(code)
    except ValueError:
        raise ParseError(f"unknown sex code {raw.hex()}") from None


def parse_yyyymmdd(raw: bytes, what: str) -> date:
    """``YYYYMMDD`` ASCII (Gregorian) → date, or ``ParseError``."""
    text = raw.decode("ascii", "replace").strip()
    if len(text) != 8 or not text.isdigit():
        raise ParseError(f"{what} is not YYYYMMDD")
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise ParseError(f"{what} is not a valid date") from None


def parse_utf8(raw: bytes, what: str) -> str:
    """``raw`` as UTF-8 text, or ``ParseError`` naming the field ``what``."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError(f"{what} is not UTF-8") from None


# --- values --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CardBasicInfo:
    """The basic 4 information (基本4情報) as the text AP stores it."""

    name: str
    address: str
    birth_date: date
    sex: CardSex

    @classmethod
    def parse(cls, raw: bytes) -> CardBasicInfo:
        """EF 0002 (offset table checked, filler ignored)."""
        rec = parse_record(raw, TAG_BASIC_INFO, "basic information", table=TAG_OFFSETS)
        missing = [f"{t:X}" for t in (0xDF22, 0xDF23, 0xDF24, 0xDF25) if not rec.has(t)]
        if missing:
            raise ParseError(f"basic information lacks {', '.join(missing)}")
        return cls(
            name=parse_utf8(rec.value_of(0xDF22), "name"),
            address=parse_utf8(rec.value_of(0xDF23), "address"),
            birth_date=parse_yyyymmdd(rec.value_of(0xDF24), "birth date"),
            sex=parse_sex(rec.value_of(0xDF25)),
        )


def basic_info_digest_source(raw: bytes) -> bytes:
    """What DF32 hashes: EF 0002's outer value with the leading DF21 table skipped."""
    rec = parse_record(raw, TAG_BASIC_INFO, "basic information", table=TAG_OFFSETS)
    if not rec.table_raw:
        raise ParseError("basic information does not open with its DF21 offset table")
    return rec.value[len(rec.table_raw) :]


def parse_my_number_file(raw: bytes) -> MyNumber:
    """EF 0001: ``FF 10 0C`` + 12 ASCII digits (+ filler); the check digit is validated."""
    tlv = outer_tlv(raw, TAG_MY_NUMBER, "My Number file")
    try:
        text = tlv.value.decode("ascii")
    except UnicodeDecodeError:
        raise MyNumberError("My Number on the card is not ASCII digits") from None
    return MyNumber(text)


@dataclass(frozen=True)
class IntegrityRecord:
    """EF 0003: the two digests and the signature over their TLVs."""

    my_number_digest: bytes
    basic_info_digest: bytes
    signature: bytes = field(repr=False)
    signed: bytes = field(repr=False)

    @classmethod
    def parse(cls, raw: bytes) -> IntegrityRecord:
        """Parse EF 0003; DF31 and DF32 must be 32-byte digests (else ``ParseError``)."""
        rec = parse_record(raw, TAG_INTEGRITY, "integrity record")
        for tag in (0xDF31, 0xDF32):
            if len(rec.value_of(tag)) != 32:
                raise ParseError(f"integrity record {tag:04X} is not a 32-byte digest")
        return cls(
            rec.value_of(0xDF31),
            rec.value_of(0xDF32),
            rec.value_of(0xDF33),
            rec.raw_of(0xDF31, 0xDF32),
        )


@dataclass(frozen=True)
class TextApBasicData:
    """EF 0005 (free, unsigned): 4 identification bytes, a key id, 128 opaque bytes."""

    identification: bytes
    key_id: bytes
    trailing: bytes = field(repr=False)

    @classmethod
    def parse(cls, raw: bytes) -> TextApBasicData:
        """Parse EF 0005; DF41 must be 4 bytes and DF42 a 16-byte key id (else ``ParseError``)."""
        rec = parse_record(raw, TAG_AP_BASIC, "text AP basic data")
        ident = rec.value_of(0xDF41)
        if len(ident) != 4:
            raise ParseError("text AP basic data DF41 is not 4 bytes")
        return cls(ident, key_id(rec.value_of(0xDF42), "DF42"), rec.value_of(0xDF43))


def parse_session_key(raw: bytes) -> rsa.RSAPublicKey:
    """EF 0006: ``A1 { 90 e; 91 n }`` (a terminal encrypts a session key to it)."""
    return parse_rsa_key(outer_tlv(raw, TAG_SESSION_KEY, "session key").value, "session key")


@dataclass(frozen=True)
class SignedCardKey:
    """EF 0007: the AP's own signing key (DF51) and the issuer's signature over it (DF52)."""

    card_key: rsa.RSAPublicKey = field(repr=False)
    signature: bytes = field(repr=False)
    signed: bytes = field(repr=False)

    @classmethod
    def parse(cls, raw: bytes) -> SignedCardKey:
        """Parse EF 0007: the DF51 RSA key, the DF52 signature and the signed DF51 TLV."""
        rec = parse_record(raw, TAG_SIGNED_KEY, "signed card key")
        key = parse_rsa_key(rec.value_of(0xDF51), "card key (DF51)")
        return cls(key, rec.value_of(0xDF52), rec.raw_of(0xDF51))


@dataclass(frozen=True)
class CardInfo:
    """What the text AP tells: My Number (redacted in repr), basic 4 info, integrity."""

    my_number: MyNumber
    basic: CardBasicInfo
    integrity: IntegrityResult

    @property
    def name(self) -> str:
        """The holder's name (basic 4 information)."""
        return self.basic.name

    @property
    def address(self) -> str:
        """The holder's address (basic 4 information)."""
        return self.basic.address

    @property
    def birth_date(self) -> date:
        """The holder's date of birth (basic 4 information)."""
        return self.basic.birth_date

    @property
    def sex(self) -> CardSex:
        """The holder's sex as the card codes it (basic 4 information)."""
        return self.basic.sex


def check_text_integrity(
    ef1: bytes, ef2: bytes, ef3: bytes, ef4: bytes, keyring: CvcaKeyring | None = None
) -> IntegrityResult:
    """CVCA → EF 0004 CVC → EF 0003 signature → DF31/DF32 digests of EF 0001/0002.

    ``ef1`` is the **physical** EF 0001 (filler included), as DF31 covers it.
    """
    step = check_cvc(ef4, keyring or CvcaKeyring(), "text AP EF 0004")
    if step.key is None:
        return chain_result(step, (), "")
    try:
        record = IntegrityRecord.parse(ef3)
        source = basic_info_digest_source(ef2)
    except JpkiError as exc:
        return indeterminate(step, f"cannot read the records: {exc}")
    failures: list[str] = []
    if not pkcs1_sha256_ok(step.key, record.signature, record.signed):
        failures.append("EF 0003 signature (DF33) does not verify with the EF 0004 key")
    if sha256(ef1) != record.my_number_digest:
        failures.append("My Number digest (DF31) does not match EF 0001")
    if sha256(source) != record.basic_info_digest:
        failures.append("basic information digest (DF32) does not match EF 0002")
    return chain_result(step, failures, "EF 0003 signature and the EF 0001/0002 digests")


def check_signed_card_key(
    ef7: bytes, ef4: bytes, keyring: CvcaKeyring | None = None
) -> tuple[IntegrityResult, rsa.RSAPublicKey | None]:
    """EF 0007's card key, with the result of checking DF52 along the CVCA chain."""
    step = check_cvc(ef4, keyring or CvcaKeyring(), "text AP EF 0004")
    try:
        signed = SignedCardKey.parse(ef7)
    except JpkiError as exc:
        return indeterminate(step, f"cannot read EF 0007: {exc}"), None
    if step.key is None:
        return chain_result(step, (), ""), signed.card_key
    failures = []
    if not pkcs1_sha256_ok(step.key, signed.signature, signed.signed):
        failures.append("EF 0007 signature (DF52) does not verify with the EF 0004 key")
    return chain_result(step, failures, "EF 0007 signature"), signed.card_key


def challenge_digest_info(challenge: bytes) -> bytes:
    """What a card-info AP is asked to sign for a presence check: DigestInfo(SHA-256)."""
    return sha256_digest_info(sha256(challenge))


def sign_challenge(protocol: CardProtocol, challenge: bytes) -> bytes:
    """``80 2A 00 00 Lc DigestInfo 00``: the current card-info AP signs with its own key."""
    if not challenge:
        raise PinFormatError("the challenge is empty")
    apdu = CommandApdu(
        0x80, INS_COMPUTE_SIGNATURE, 0x00, 0x00, challenge_digest_info(challenge), le=256
    )
    signature = protocol.send(apdu, what="sign the challenge with the AP key")
    if not signature:
        raise CardError("card returned an empty signature")
    return signature


def read_physical(protocol: CardProtocol, fid: int) -> bytes:
    """SELECT ``fid`` and read its whole physical content (filler included)."""
    protocol.select_ef(fid)
    return protocol.read_file(MAX_RECORD_FILE)


class CardInfoAp:
    """A session with a card-info AP (text or visual); the constructor selects it.

    ``keyring`` holds the CVCA keys the EF 0004 CVC is checked against (built-in J-LIS keys
    by default; add a simulator's or another hierarchy's with ``CvcaKeyring(extra_keys)``).
    """

    #: The AP's AID, its name in messages, and what opens each protected EF (else ``_need``).
    _aid: ClassVar[Aid]
    _label: ClassVar[str]
    _needs: ClassVar[Mapping[int, str]]
    _need: ClassVar[str]

    def __init__(
        self,
        protocol_or_conn: CardProtocol | Connection,
        *,
        select: bool = True,
        keyring: CvcaKeyring | None = None,
    ):
        self.protocol = as_protocol(protocol_or_conn)
        self.keyring = keyring or CvcaKeyring()
        if select:
            self.select()

    def select(self) -> None:
        """SELECT this AP by its AID."""
        self.protocol.select_df(self._aid)

    def read_file(self, fid: int) -> bytes:
        """The physical content of one EF (filler included), as a dump stores it."""
        return self._read(fid)

    def sign_challenge(self, challenge: bytes) -> bytes:
        """Sign ``challenge`` (SHA-256 DigestInfo) with this AP's own key (no credential)."""
        return sign_challenge(self.protocol, challenge)

    def _read(self, fid: int) -> bytes:
        try:
            return read_physical(self.protocol, fid)
        except ApduError as exc:
            if exc.sw == 0x6982:
                need = self._needs.get(fid, self._need)
                raise SecurityStatusError(
                    exc.sw, f"{self._label} EF {fid:04X} needs {need}"
                ) from None
            raise


class TextAp(CardInfoAp):
    """A session with the text AP (券面入力補助AP); the constructor selects it.

    ``keyring`` holds the CVCA keys the EF 0004 CVC is checked against (built-in J-LIS keys
    by default; add a simulator's or another hierarchy's with ``CvcaKeyring(extra_keys)``).
    """

    _aid = Aid.TEXT
    _label = "text AP"
    _needs: ClassVar[Mapping[int, str]] = {
        TextFile.MY_NUMBER: "the input-support PIN or collation A",
        TextFile.BASIC_INFO: "the input-support PIN or collation B",
    }
    _need = "the input-support PIN or a collation value"

    # --- unlocking -------------------------------------------------------------------------

    def pin_status(self) -> PinStatus:
        """Tries left on the input-support PIN (free: spends no try)."""
        return pin_status(self.protocol, TextFile.PIN, "input-support PIN", PIN_TRIES)

    def verify_pin(self, secret: Secret, *, force: bool = False) -> None:
        """Input-support PIN (4 digits, 3 tries): counter first, last-try guard, one VERIFY."""
        name = "input-support PIN"
        value = check_digits(secret, name, 4)
        guarded_verify(self.protocol, TextFile.PIN, name, value, max_tries=PIN_TRIES, force=force)

    def collation_status(self, which: str) -> PinStatus:
        """Tries left for collation ``"A"`` or ``"B"`` (free)."""
        fids = {"A": TextFile.COLLATION_A, "B": TextFile.COLLATION_B}
        key = which.upper()
        if key not in fids:
            # Anything else used to read collation B's counter under a made-up name.
            raise PinFormatError(f"unknown text AP collation {which!r} (A or B)")
        return pin_status(self.protocol, fids[key], f"collation {key}", None)

    def unlock_collation_a(self, my_number: MyNumber | str, *, force: bool = False) -> None:
        """Open EF 0001 (not 0002) with the My Number (collation A)."""
        mn = my_number if isinstance(my_number, MyNumber) else MyNumber(my_number)
        guarded_verify(
            self.protocol,
            TextFile.COLLATION_A,
            "collation A",
            Secret(mn.reveal()),
            max_tries=None,
            force=force,
        )

    def unlock_collation_b(self, secret: Secret, *, force: bool = False) -> None:
        """Open EF 0002 (not 0001) with collation B (14 digits: see ``visual_ap.collation_b``)."""
        value = check_digits(secret, "collation B", 14)
        guarded_verify(
            self.protocol, TextFile.COLLATION_B, "collation B", value, max_tries=None, force=force
        )

    # --- reading ---------------------------------------------------------------------------

    def read_my_number(self) -> MyNumber:
        """The My Number (check digit validated); needs the PIN or collation A."""
        return parse_my_number_file(self._read(TextFile.MY_NUMBER))

    def read_basic_info(self) -> CardBasicInfo:
        """Name, address, birth date, sex; needs the PIN or collation B."""
        return CardBasicInfo.parse(self._read(TextFile.BASIC_INFO))

    def read_cvc(self) -> CardVerifiableCertificate:
        """EF 0004, the CVC certifying this AP's record-signing key (free)."""
        return CardVerifiableCertificate.parse(self._read(TextFile.ISSUER_CERT))

    def read_issuer_key(self) -> rsa.RSAPublicKey:
        """The key the EF 0004 CVC certifies (not checked here: see ``verify_integrity``)."""
        return self.read_cvc().public_key

    def read_ap_basic_data(self) -> TextApBasicData:
        """EF 0005 (free)."""
        return TextApBasicData.parse(self._read(TextFile.AP_BASIC_DATA))

    def read_session_key(self) -> rsa.RSAPublicKey:
        """EF 0006 (the PIN or either collation)."""
        return parse_session_key(self._read(TextFile.SESSION_KEY))

    def read_signed_card_key(self) -> tuple[IntegrityResult, rsa.RSAPublicKey | None]:
        """EF 0007's card key and its chain check (the PIN or either collation)."""
        ef7 = self._read(TextFile.SIGNED_KEY)
        ef4 = self._read(TextFile.ISSUER_CERT)
        return check_signed_card_key(ef7, ef4, self.keyring)

    def verify_integrity(self) -> IntegrityResult:
        """Check EF 0001/0002 along CVCA → EF 0004 → EF 0003 (needs the PIN)."""
        try:
            ef1, ef2, ef3, ef4 = (self._read(f) for f in (1, 2, 3, 4))
        except ApduError as exc:
            return IntegrityResult(IntegrityStatus.INDETERMINATE, (f"cannot read: {exc}",))
        return check_text_integrity(ef1, ef2, ef3, ef4, self.keyring)

    def read_card_info(self) -> CardInfo:
        """My Number, basic 4 information and the integrity result in one value."""
        ef1 = self._read(TextFile.MY_NUMBER)
        ef2 = self._read(TextFile.BASIC_INFO)
        my_number = parse_my_number_file(ef1)
        basic = CardBasicInfo.parse(ef2)
        try:
            ef3 = self._read(TextFile.SIGNATURE)
            ef4 = self._read(TextFile.ISSUER_CERT)
        except ApduError as exc:
            integrity = IntegrityResult(IntegrityStatus.INDETERMINATE, (f"cannot read: {exc}",))
        else:
            integrity = check_text_integrity(ef1, ef2, ef3, ef4, self.keyring)
        return CardInfo(my_number, basic, integrity)


__all__ = [
    "CardBasicInfo",
    "CardInfo",
    "CardInfoAp",
    "CardSex",
    "IntegrityRecord",
    "IntegrityResult",
    "IntegrityStatus",
    "SignedCardKey",
    "TextAp",
    "TextApBasicData",
    "basic_info_digest_source",
    "check_signed_card_key",
    "check_text_integrity",
    "parse_my_number_file",
    "parse_session_key",
    "sign_challenge",
]
