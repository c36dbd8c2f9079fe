"""Card-info input support AP (券面入力補助AP): My Number, basic 4 information, integrity."""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from jpki.card.constants import Aid, TextFile
from jpki.card.pin import PinStatus, check_digits, guarded_verify, pin_status
from jpki.card.protocol import CardProtocol, as_protocol
from jpki.errors import ApduError, JpkiError, MyNumberError, ParseError, PinFormatError
from jpki.mynumber import MyNumber
from jpki.secret import Secret
from jpki.tlv import Tlv, decode_one, iter_tlv, iter_tlv_spans
from jpki.transport.base import Connection

TAG_MY_NUMBER = 0xFF10
TAG_BASIC_INFO = 0xFF20
TAG_INTEGRITY = 0xFF30
TAG_CVC = 0x7F21
TAG_CVC_BODY = 0x5F4E
TAG_CVC_SIGNATURE = 0x5F37
PIN_TRIES = 3
#: EF 0001 is 17 bytes; read a little more so a differently padded card still fits one read.
MY_NUMBER_FILE_MAX = 64


class CardSex(enum.IntEnum):
    """Sex as the card codes it (JIS X 0303): not the certificate coding."""

    UNKNOWN = 0
    MALE = 1
    FEMALE = 2
    NOT_APPLICABLE = 9


class IntegrityStatus(enum.StrEnum):
    """The card-info integrity verdict: issuer signature and hashes checked."""

    VALID = "valid"
    INVALID = "invalid"
    INDETERMINATE = "indeterminate"


@dataclass(frozen=True)
class IntegrityResult:
    """Outcome of checking card data against the issuer's hashes and signature."""

    status: IntegrityStatus
    reasons: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return self.status is IntegrityStatus.VALID


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


def container(raw: bytes, tag: int, what: str) -> tuple[list[tuple[Tlv, int, int]], bytes]:
    """Children of the ``tag`` TLV at the start of ``raw`` with their offsets in its value.

    Returns ([(tlv, start, end)], value). Padding (00/FF runs) after the children is skipped.
    """
    outer, _ = decode_one(raw, 0)
    if outer.tag != tag:
        raise ParseError(f"{what}: expected tag {tag:X}, found {outer.tag:X}")
    return list(iter_tlv_spans(outer.value, skip_padding=True)), outer.value


def rsa_key_from_cvc(raw: bytes) -> rsa.RSAPublicKey:
    """The RSA key in a card-verifiable certificate ``7F21 { 5F4E {… 90 e, 91 n …}; 5F37 }``.

    Also accepts an ISO 7816-8 key template ``7F49 { 81 n, 82 e }`` inside the body.
    """
    children, _ = container(raw, TAG_CVC, "issuer certificate")
    body = next((c.value for c, _, _ in children if c.tag == TAG_CVC_BODY), None)
    if body is None:
        raise ParseError("issuer certificate has no 5F4E body")
    found: dict[int, bytes] = {}
    for item in iter_tlv(body, skip_padding=True):
        if item.tag == 0x7F49:
            for sub in item.children():
                found.setdefault({0x81: 0x91, 0x82: 0x90}.get(sub.tag, sub.tag), sub.value)
        else:
            found.setdefault(item.tag, item.value)
    if 0x90 not in found or 0x91 not in found:
        raise ParseError("issuer certificate has no RSA key (90 exponent, 91 modulus)")
    e = int.from_bytes(found[0x90], "big")
    n = int.from_bytes(found[0x91], "big")
    try:
        return rsa.RSAPublicNumbers(e, n).public_key()
    except ValueError:
        raise ParseError("issuer certificate RSA key is invalid") from None


def rsa_sha256_valid(key: rsa.RSAPublicKey, signature: bytes, messages: Iterable[bytes]) -> bool:
    """PKCS#1 v1.5 SHA-256 check against each candidate message (layouts vary by card)."""
    for message in messages:
        try:
            key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError):
            continue
        return True
    return False


def sha256(data: bytes) -> bytes:
    """SHA-256 digest of ``data``."""
    return hashlib.sha256(data).digest()


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
        """EF 0002: ``FF20 { DF21 offsets; DF22 name; DF23 address; DF24 YYYYMMDD; DF25 sex }``."""
        children, _ = container(raw, TAG_BASIC_INFO, "basic information")
        fields = {c.tag: c.value for c, _, _ in children}
        missing = [f"{t:X}" for t in (0xDF22, 0xDF23, 0xDF24, 0xDF25) if t not in fields]
        if missing:
            raise ParseError(f"basic information lacks {', '.join(missing)}")
        return cls(
            name=parse_utf8(fields[0xDF22], "name"),
            address=parse_utf8(fields[0xDF23], "address"),
            birth_date=parse_yyyymmdd(fields[0xDF24], "birth date"),
            sex=parse_sex(fields[0xDF25]),
        )


def parse_my_number_file(raw: bytes) -> MyNumber:
    """EF 0001: ``FF 10 0C`` + 12 ASCII digits (+ padding); the check digit is validated."""
    tlv, _ = decode_one(raw, 0)
    if tlv.tag != TAG_MY_NUMBER:
        raise ParseError(f"My Number file: expected tag FF10, found {tlv.tag:X}")
    try:
        text = tlv.value.decode("ascii")
    except UnicodeDecodeError:
        raise MyNumberError("My Number on the card is not ASCII digits") from None
    return MyNumber(text)


@dataclass(frozen=True)
class CardInfo:
    """What the text AP tells: My Number (redacted in repr), basic 4 info, integrity."""

    my_number: MyNumber
    basic: CardBasicInfo
    integrity: IntegrityResult

    @property
    def name(self) -> str:
        return self.basic.name

    @property
    def address(self) -> str:
        return self.basic.address

    @property
    def birth_date(self) -> date:
        return self.basic.birth_date

    @property
    def sex(self) -> CardSex:
        return self.basic.sex


def check_text_integrity(ef1: bytes, ef2: bytes, ef3: bytes, ef4: bytes) -> IntegrityResult:
    """EF 0003 hashes + signature against EF 0001/0002 as read and the EF 0004 issuer key.

    DF31 = SHA-256 of EF 0001; DF32 = SHA-256 of EF 0002 from DF22 to the end; DF33 = PKCS#1
    v1.5 SHA-256 signature over the DF31 and DF32 TLVs. The spec is loose about exact byte
    ranges ([M]), so a few readings of it are accepted; all of them cover the same data.
    """
    reasons: list[str] = []
    try:
        sig_children, sig_value = container(ef3, TAG_INTEGRITY, "integrity file")
        parts = {c.tag: (c, s, e) for c, s, e in sig_children}
        if not all(t in parts for t in (0xDF31, 0xDF32, 0xDF33)):
            return IntegrityResult(IntegrityStatus.INVALID, ("EF 0003 lacks DF31/DF32/DF33",))
        key = rsa_key_from_cvc(ef4)
        my_tlv, my_end = decode_one(ef1, 0)
        basic_children, basic_value = container(ef2, TAG_BASIC_INFO, "basic information")
    except JpkiError as exc:
        return IntegrityResult(IntegrityStatus.INVALID, (f"malformed: {exc}",))
    h1 = parts[0xDF31][0].value
    h2 = parts[0xDF32][0].value
    if h1 not in (sha256(ef1), sha256(ef1[:my_end]), sha256(my_tlv.value)):
        reasons.append("My Number hash (DF31) does not match EF 0001")
    start = next((s for c, s, _ in basic_children if c.tag == 0xDF22), None)
    if start is None:
        reasons.append("basic information lacks DF22")
    else:
        end = basic_children[-1][2]
        if h2 not in (sha256(basic_value[start:end]), sha256(basic_value[start:])):
            reasons.append("basic information hash (DF32) does not match EF 0002")
    signed = sig_value[parts[0xDF31][1] : parts[0xDF32][2]]
    signature = parts[0xDF33][0].value
    if not rsa_sha256_valid(key, signature, (signed, h1 + h2)):
        reasons.append("issuer signature (DF33) does not verify with the EF 0004 key")
    if reasons:
        return IntegrityResult(IntegrityStatus.INVALID, tuple(reasons))
    return IntegrityResult(IntegrityStatus.VALID, ("hashes and issuer signature match",))


class TextAp:
    """A session with the text AP (券面入力補助AP); the constructor selects it."""

    def __init__(self, protocol_or_conn: CardProtocol | Connection, *, select: bool = True):
        self.protocol = as_protocol(protocol_or_conn)
        if select:
            self.select()

    def select(self) -> None:
        self.protocol.select_df(Aid.TEXT)

    # --- unlocking -------------------------------------------------------------------------

    def pin_status(self) -> PinStatus:
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
        """Open EF 0001 with the My Number (collation A), where the card allows it."""
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
        """Open EF 0002 with collation B (14 digits: see ``visual_ap.collation_b``)."""
        value = check_digits(secret, "collation B", 14)
        guarded_verify(
            self.protocol, TextFile.COLLATION_B, "collation B", value, max_tries=None, force=force
        )

    # --- reading ---------------------------------------------------------------------------

    def _read(self, fid: TextFile, *, der: bool = True) -> bytes:
        self.protocol.select_ef(fid)
        if der:
            return self.protocol.read_der_file()
        return self.protocol.read_file(MY_NUMBER_FILE_MAX)

    def read_my_number(self) -> MyNumber:
        """The My Number (check digit validated); needs the PIN or collation A."""
        return parse_my_number_file(self._read(TextFile.MY_NUMBER, der=False))

    def read_basic_info(self) -> CardBasicInfo:
        """Name, address, birth date, sex; needs the PIN or collation B."""
        return CardBasicInfo.parse(self._read(TextFile.BASIC_INFO))

    def read_issuer_key(self) -> rsa.RSAPublicKey:
        """The issuer key from the card-verifiable certificate in EF 0004 (free to read).

        Its own signature (5F37) is by a root key that is not published; the key is taken as
        the card presents it.
        """
        return rsa_key_from_cvc(self._read(TextFile.ISSUER_CERT))

    def verify_integrity(self) -> IntegrityResult:
        """Check EF 0001/0002 against the hashes and issuer signature in EF 0003 (needs PIN)."""
        try:
            ef1 = self._read(TextFile.MY_NUMBER, der=False)
            ef2 = self._read(TextFile.BASIC_INFO)
            ef3 = self._read(TextFile.SIGNATURE)
            ef4 = self._read(TextFile.ISSUER_CERT)
        except ApduError as exc:
            return IntegrityResult(IntegrityStatus.INDETERMINATE, (f"cannot read: {exc}",))
        return check_text_integrity(ef1, ef2, ef3, ef4)

    def read_card_info(self) -> CardInfo:
        """My Number, basic 4 information and the integrity result in one value."""
        ef1 = self._read(TextFile.MY_NUMBER, der=False)
        ef2 = self._read(TextFile.BASIC_INFO)
        my_number = parse_my_number_file(ef1)
        basic = CardBasicInfo.parse(ef2)
        try:
            ef3 = self._read(TextFile.SIGNATURE)
            ef4 = self._read(TextFile.ISSUER_CERT)
        except ApduError as exc:
            integrity = IntegrityResult(IntegrityStatus.INDETERMINATE, (f"cannot read: {exc}",))
        else:
            integrity = check_text_integrity(ef1, ef2, ef3, ef4)
        return CardInfo(my_number, basic, integrity)


__all__ = [
    "CardBasicInfo",
    "CardInfo",
    "CardSex",
    "IntegrityResult",
    "IntegrityStatus",
    "TextAp",
    "check_text_integrity",
    "parse_my_number_file",
    "rsa_key_from_cvc",
]
