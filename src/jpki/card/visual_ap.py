"""Card-surface confirmation AP (券面事項確認AP): face photo, name/address images, signature."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import ClassVar

from cryptography.hazmat.primitives.asymmetric import rsa

from jpki import wareki
from jpki.card.constants import Aid, VisualFile
from jpki.card.cvc import (
    CardVerifiableCertificate,
    IntegrityResult,
    IntegrityStatus,
    chain_result,
    check_cvc,
    parse_rsa_key,
    pkcs1_payload_ok,
    pkcs1_sha256_ok,
    sha256,
    sha256_digest_info,
)
from jpki.card.pin import PinStatus, check_digits, guarded_verify, pin_status
from jpki.card.records import key_id, parse_record
from jpki.card.text_ap import CardInfoAp, CardSex, parse_sex, parse_yyyymmdd
from jpki.errors import ApduError, ParseError, PinFormatError
from jpki.mynumber import MyNumber
from jpki.secret import Secret
from jpki.trust.cvca import CvcaKeyring

TAG_AGE_RECORD = 0xFF10
TAG_AP_BASIC = 0xFF30
TAG_SURFACE = 0xFF20
TAG_MY_NUMBER_IMAGE = 0xFF40
#: The signature covers SHA-256 of each group (TLVs tag to end), concatenated in this order.
SIGNED_GROUPS: tuple[tuple[int, ...], ...] = ((0xDF22, 0xDF23, 0xDF24), (0xDF25, 0xDF26), (0xDF27,))


def era_yymmdd(birth_date: date) -> str:
    """Birth date as era year + month + day, 6 digits (1985-04-01 → ``600401``, Showa 60)."""
    try:
        return wareki.era_yymmdd(birth_date)
    except ValueError:
        raise PinFormatError("birth date is before the Meiji era") from None


def collation_b(birth_date: date, expiry_year: int, security_code: str) -> Secret:
    """Collation B (14 digits): era-year YYMMDD of birth + card expiry year + security code."""
    if not 1000 <= expiry_year <= 9999:
        raise PinFormatError("expiry year must have 4 digits")
    if len(security_code) != 4 or not (security_code.isascii() and security_code.isdigit()):
        raise PinFormatError("security code must be 4 digits")
    return Secret(f"{era_yymmdd(birth_date)}{expiry_year:04d}{security_code}")


def _date_or_none(raw: bytes, what: str) -> date | None:
    try:
        return parse_yyyymmdd(raw, what)
    except ParseError:
        return None


def _card_key(raw: bytes) -> rsa.RSAPublicKey | None:
    try:
        return parse_rsa_key(raw, "card key")
    except ParseError:
        return None


@dataclass(frozen=True)
class AgeRecord:
    """EF 0001 (birth-date key): ``FF10 { DF11 YYYYMMDD; DF12 card key; DF13 signature }``.

    DF13 is PKCS#1 v1.5 SHA-256 over the DF11 and DF12 TLVs, by the EF 0004 key.
    """

    birth_date: date
    #: None when DF12 is not a ``90``/``91`` key (the signature is still checkable).
    card_key: rsa.RSAPublicKey | None = field(repr=False)
    signature: bytes = field(repr=False)
    signed: bytes = field(repr=False)

    @classmethod
    def parse(cls, raw: bytes) -> AgeRecord:
        """Parse EF 0001; an unreadable DF12 key leaves ``card_key`` None."""
        rec = parse_record(raw, TAG_AGE_RECORD, "age record")
        return cls(
            parse_yyyymmdd(rec.value_of(0xDF11), "birth date"),
            _card_key(rec.value_of(0xDF12)),
            rec.value_of(0xDF13),
            rec.raw_of(0xDF11, 0xDF12),
        )

    def failures(self, key: rsa.RSAPublicKey) -> list[str]:
        """Empty when DF13 verifies with ``key`` (the EF 0004 key), else the reason."""
        if pkcs1_sha256_ok(key, self.signature, self.signed):
            return []
        return ["age record signature (DF13) does not verify with the EF 0004 key"]


def age_on(birth_date: date, on: date) -> int:
    """Completed years on ``on`` (a 29 February birthday counts from 1 March in other years)."""
    years = on.year - birth_date.year
    if (on.month, on.day) < (birth_date.month, birth_date.day):
        years -= 1
    return years


@dataclass(frozen=True)
class Surface:
    """The card face as the visual AP stores it. Images are raw file bytes (not in repr)."""

    birth_date: date | None
    sex: CardSex | None
    expiry_date: date | None
    name_png: bytes = field(repr=False)
    address_png: bytes = field(repr=False)
    face_jp2: bytes = field(repr=False)
    security_code_png: bytes | None = field(repr=False)
    #: None when DF24 is not a ``90``/``91`` key (the signature is still checkable).
    card_key: rsa.RSAPublicKey | None = field(repr=False)
    signature: bytes = field(repr=False)
    #: SHA-256(DF22–24) ‖ SHA-256(DF25–26) ‖ SHA-256(DF27): the 96 bytes inside the DigestInfo.
    digests: bytes = field(repr=False)

    @classmethod
    def parse(cls, raw: bytes) -> Surface:
        """Parse EF 0002 and hash its signed groups; a missing signed field is a ``ParseError``."""
        rec = parse_record(raw, TAG_SURFACE, "card surface", table=0xDF21)
        needed = [t for g in SIGNED_GROUPS for t in g] + [0xDF28]
        missing = [f"{t:X}" for t in needed if not rec.has(t)]
        if missing:
            raise ParseError(f"card surface lacks {', '.join(missing)}")
        digests = b"".join(sha256(rec.raw_of(*group)) for group in SIGNED_GROUPS)
        sex: CardSex | None
        try:
            sex = parse_sex(rec.value_of(0xDF23))
        except ParseError:
            sex = None
        expiry = _date_or_none(rec.value_of(0xDF29), "expiry") if rec.has(0xDF29) else None
        return cls(
            birth_date=_date_or_none(rec.value_of(0xDF22), "birth date"),
            sex=sex,
            expiry_date=expiry,
            name_png=rec.value_of(0xDF25),
            address_png=rec.value_of(0xDF26),
            face_jp2=rec.value_of(0xDF27),
            security_code_png=rec.value_of(0xDF2A) if rec.has(0xDF2A) else None,
            card_key=_card_key(rec.value_of(0xDF24)),
            signature=rec.value_of(0xDF28),
            digests=digests,
        )

    def failures(self, key: rsa.RSAPublicKey) -> list[str]:
        """DF28 = PKCS#1 v1.5 over DigestInfo(sha256, h1‖h2‖h3), the 96 bytes not hashed again."""
        if pkcs1_payload_ok(key, self.signature, sha256_digest_info(self.digests)):
            return []
        return ["card surface signature (DF28) does not verify with the EF 0004 key"]


@dataclass(frozen=True)
class MyNumberImage:
    """EF 0005 (collation A): the My Number as printed (PNG), card key, signature."""

    png: bytes = field(repr=False)
    card_key: rsa.RSAPublicKey | None = field(repr=False)
    signature: bytes = field(repr=False)
    signed: bytes = field(repr=False)

    @classmethod
    def parse(cls, raw: bytes) -> MyNumberImage:
        """Parse EF 0005; an unreadable DF42 key leaves ``card_key`` None."""
        rec = parse_record(raw, TAG_MY_NUMBER_IMAGE, "My Number image")
        return cls(
            rec.value_of(0xDF41),
            _card_key(rec.value_of(0xDF42)),
            rec.value_of(0xDF43),
            rec.raw_of(0xDF41, 0xDF42),
        )

    def failures(self, key: rsa.RSAPublicKey) -> list[str]:
        """DF43 covers the DF41 **and** DF42 TLVs."""
        if pkcs1_sha256_ok(key, self.signature, self.signed):
            return []
        return ["My Number image signature (DF43) does not verify with the EF 0004 key"]


@dataclass(frozen=True)
class VisualApBasicData:
    """EF 0003 (free, unsigned): layout id, a key id, version, municipality code, DF35."""

    identification: bytes
    key_id: bytes
    version: int
    municipality_code: str
    df35_key_id: bytes
    df35_data: bytes = field(repr=False)

    @classmethod
    def parse(cls, raw: bytes) -> VisualApBasicData:
        """Parse EF 0003; a wrong-sized DF33, DF34 or DF35 is a ``ParseError``."""
        rec = parse_record(raw, TAG_AP_BASIC, "visual AP basic data")
        version = rec.value_of(0xDF33)
        code = rec.value_of(0xDF34)
        df35 = rec.value_of(0xDF35)
        if len(version) != 1:
            raise ParseError("visual AP basic data DF33 (version) is not 1 byte")
        if len(code) != 5 or not code.isdigit():
            raise ParseError("visual AP basic data DF34 is not a 5-digit municipality code")
        if len(df35) < 16:
            raise ParseError("visual AP basic data DF35 is shorter than its key id")
        return cls(
            rec.value_of(0xDF31),
            key_id(rec.value_of(0xDF32), "DF32"),
            version[0],
            code.decode("ascii"),
            df35[:16],
            df35[16:],
        )


def check_visual_record(
    record: AgeRecord | Surface | MyNumberImage, ef4: bytes, keyring: CvcaKeyring | None = None
) -> IntegrityResult:
    """CVCA → visual AP EF 0004 CVC → the record's signature."""
    step = check_cvc(ef4, keyring or CvcaKeyring(), "visual AP EF 0004")
    if step.key is None:
        return chain_result(step, (), "")
    names = {AgeRecord: "age record", Surface: "card surface", MyNumberImage: "My Number image"}
    return chain_result(step, record.failures(step.key), f"{names[type(record)]} signature")


class VisualAp(CardInfoAp):
    """A session with the visual AP (券面事項確認AP); the constructor selects it."""

    _aid = Aid.VISUAL
    _label = "visual AP"
    _needs: ClassVar[Mapping[int, str]] = {
        VisualFile.AGE_RECORD: "the birth-date key",
        VisualFile.MY_NUMBER_IMAGE: "collation A",
    }
    _need = "collation A or B"

    def collation_status(self, which: str) -> PinStatus:
        """Tries left for ``"A"``, ``"B"`` or ``"birth"`` (free)."""
        fid, name = self._key(which)
        return pin_status(self.protocol, fid, name, None)

    @staticmethod
    def _key(which: str) -> tuple[VisualFile, str]:
        table = {
            "A": (VisualFile.COLLATION_A, "collation A"),
            "B": (VisualFile.COLLATION_B, "collation B"),
            "BIRTH": (VisualFile.BIRTH_DATE_KEY, "birth date key"),
        }
        try:
            return table[which.upper()]
        except KeyError:
            raise PinFormatError(f"unknown visual AP key {which!r} (A, B or birth)") from None

    def unlock_collation_a(self, my_number: MyNumber | str, *, force: bool = False) -> None:
        """Unlock with the My Number (collation A)."""
        mn = my_number if isinstance(my_number, MyNumber) else MyNumber(my_number)
        fid, name = self._key("A")
        guarded_verify(self.protocol, fid, name, Secret(mn.reveal()), max_tries=None, force=force)

    def unlock_collation_b(self, secret: Secret, *, force: bool = False) -> None:
        """Unlock with collation B (14 digits; build it with ``collation_b``)."""
        fid, name = self._key("B")
        value = check_digits(secret, name, 14)
        guarded_verify(self.protocol, fid, name, value, max_tries=None, force=force)

    def unlock_birth_date(self, birth_date: date, *, force: bool = False) -> None:
        """Unlock with the era-year birth date (YYMMDD)."""
        fid, name = self._key("birth")
        guarded_verify(
            self.protocol, fid, name, Secret(era_yymmdd(birth_date)), max_tries=None, force=force
        )

    def read_cvc_file(self) -> bytes:
        """EF 0004 as stored (free): the raw CVC the records' key is certified by."""
        return self._read(VisualFile.ISSUER_CERT)

    def read_cvc(self) -> CardVerifiableCertificate:
        """EF 0004 (free): the CVC certifying the key that signs this AP's records."""
        return CardVerifiableCertificate.parse(self.read_cvc_file())

    def read_age_record(self) -> AgeRecord:
        """EF 0001 (opened by the birth-date key alone)."""
        return AgeRecord.parse(self._read(VisualFile.AGE_RECORD))

    def read_surface(self) -> Surface:
        """EF 0002: face photo, name/address images, birth date, sex, expiry, signature."""
        return Surface.parse(self._read(VisualFile.SURFACE))

    def read_ap_basic_data(self) -> VisualApBasicData:
        """EF 0003 (free): the municipality code among others."""
        return VisualApBasicData.parse(self._read(VisualFile.AP_BASIC_DATA))

    def read_my_number_image(self) -> MyNumberImage:
        """EF 0005 (opened by collation A only)."""
        return MyNumberImage.parse(self._read(VisualFile.MY_NUMBER_IMAGE))

    def check(self, record: AgeRecord | Surface | MyNumberImage) -> IntegrityResult:
        """The record's signature along CVCA → EF 0004 (read here, free)."""
        try:
            ef4 = self.read_cvc_file()
        except ApduError as exc:
            return IntegrityResult(IntegrityStatus.INDETERMINATE, (f"cannot read EF 0004: {exc}",))
        return check_visual_record(record, ef4, self.keyring)

    def verify_surface(self) -> IntegrityResult:
        """Read the surface and check it; an unreadable layout is INDETERMINATE."""
        try:
            surface = self.read_surface()
        except ParseError as exc:
            return IntegrityResult(IntegrityStatus.INDETERMINATE, (f"cannot read: {exc}",))
        return self.check(surface)


__all__ = [
    "AgeRecord",
    "MyNumberImage",
    "Surface",
    "VisualAp",
    "VisualApBasicData",
    "age_on",
    "check_visual_record",
    "collation_b",
    "era_yymmdd",
]
