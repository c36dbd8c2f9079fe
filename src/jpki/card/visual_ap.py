"""Card-surface confirmation AP (券面事項確認AP): face photo, name/address images, signature."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from jpki import wareki
from jpki.card.constants import Aid, VisualFile
from jpki.card.pin import PinStatus, check_digits, guarded_verify, pin_status
from jpki.card.protocol import CardProtocol, as_protocol
from jpki.card.text_ap import (
    CardSex,
    IntegrityResult,
    IntegrityStatus,
    container,
    parse_sex,
    parse_yyyymmdd,
    rsa_sha256_valid,
    sha256,
)
from jpki.errors import ParseError, PinFormatError
from jpki.mynumber import MyNumber
from jpki.secret import Secret
from jpki.transport.base import Connection

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


def load_public_key(raw: bytes) -> rsa.RSAPublicKey:
    """DF24/DF42: a DER SubjectPublicKeyInfo (RSA)."""
    try:
        key = serialization.load_der_public_key(raw)
    except (ValueError, TypeError, UnsupportedAlgorithm):  # unknown key OID: found by tests/fuzz
        raise ParseError("public key on the card is not a DER SubjectPublicKeyInfo") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ParseError("public key on the card is not RSA")
    return key


def _spki(key: rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _verify(
    message: bytes, signature: bytes, card_key_der: bytes, issuer_key: rsa.RSAPublicKey | None
) -> IntegrityResult:
    """Check ``signature`` over ``message``: with ``issuer_key`` if given (trusted), else the
    key the card presents next to the data (which proves consistency, not origin)."""
    try:
        card_key = load_public_key(card_key_der)
    except ParseError as exc:
        if issuer_key is None:
            return IntegrityResult(IntegrityStatus.INDETERMINATE, (str(exc),))
        card_key = None
    key = issuer_key or card_key
    assert key is not None
    reasons: list[str] = []
    if issuer_key is not None and card_key is not None and _spki(card_key) != _spki(issuer_key):
        reasons.append("the key on the card is not the expected issuer key")
    if not rsa_sha256_valid(key, signature, (message,)):
        reasons.append("issuer signature does not verify over the covered data")
    if reasons:
        return IntegrityResult(IntegrityStatus.INVALID, tuple(reasons))
    how = "the given issuer key" if issuer_key is not None else "the key stored on the card"
    return IntegrityResult(IntegrityStatus.VALID, (f"signature verifies with {how}",))


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
    public_key_der: bytes = field(repr=False)
    signature: bytes = field(repr=False)
    #: SHA-256(DF22–24) ‖ SHA-256(DF25–26) ‖ SHA-256(DF27): what the signature covers.
    signed_message: bytes = field(repr=False)

    @classmethod
    def parse(cls, raw: bytes) -> Surface:
        children, value = container(raw, TAG_SURFACE, "card surface")
        spans = {c.tag: (s, e) for c, s, e in children}
        fields = {c.tag: c.value for c, _, _ in children}
        needed = [t for g in SIGNED_GROUPS for t in g] + [0xDF28]
        missing = [f"{t:X}" for t in needed if t not in fields]
        if missing:
            raise ParseError(f"card surface lacks {', '.join(missing)}")
        message = b"".join(
            sha256(b"".join(value[spans[t][0] : spans[t][1]] for t in group))
            for group in SIGNED_GROUPS
        )
        sex: CardSex | None
        try:
            sex = parse_sex(fields[0xDF23])
        except ParseError:
            sex = None
        return cls(
            birth_date=_date_or_none(fields[0xDF22], "birth date"),
            sex=sex,
            expiry_date=_date_or_none(fields[0xDF29], "expiry") if 0xDF29 in fields else None,
            name_png=fields[0xDF25],
            address_png=fields[0xDF26],
            face_jp2=fields[0xDF27],
            security_code_png=fields.get(0xDF2A),
            public_key_der=fields[0xDF24],
            signature=fields[0xDF28],
            signed_message=message,
        )

    def verify(self, issuer_key: rsa.RSAPublicKey | None = None) -> IntegrityResult:
        """Signature over DF22–24, DF25–26 and DF27 (DF29/DF2A are not covered)."""
        return _verify(self.signed_message, self.signature, self.public_key_der, issuer_key)


@dataclass(frozen=True)
class MyNumberImage:
    """EF 0005: the My Number as printed on the back (PNG) and its signature."""

    png: bytes = field(repr=False)
    public_key_der: bytes = field(repr=False)
    signature: bytes = field(repr=False)
    signed_message: bytes = field(repr=False)

    @classmethod
    def parse(cls, raw: bytes) -> MyNumberImage:
        children, value = container(raw, TAG_MY_NUMBER_IMAGE, "My Number image")
        spans = {c.tag: (s, e) for c, s, e in children}
        fields = {c.tag: c.value for c, _, _ in children}
        if not all(t in fields for t in (0xDF41, 0xDF42, 0xDF43)):
            raise ParseError("My Number image file lacks DF41/DF42/DF43")
        s, e = spans[0xDF41]
        return cls(fields[0xDF41], fields[0xDF42], fields[0xDF43], sha256(value[s:e]))

    def verify(self, issuer_key: rsa.RSAPublicKey | None = None) -> IntegrityResult:
        return _verify(self.signed_message, self.signature, self.public_key_der, issuer_key)


class VisualAp:
    """A session with the visual AP (券面事項確認AP); the constructor selects it."""

    def __init__(self, protocol_or_conn: CardProtocol | Connection, *, select: bool = True):
        self.protocol = as_protocol(protocol_or_conn)
        if select:
            self.select()

    def select(self) -> None:
        self.protocol.select_df(Aid.VISUAL)

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

    def read_surface(self) -> Surface:
        """EF 0002: face photo, name/address images, birth date, sex, expiry, signature."""
        self.protocol.select_ef(VisualFile.SURFACE)
        return Surface.parse(self.protocol.read_der_file())

    def read_my_number_image(self) -> MyNumberImage:
        """EF 0005 (opened by collation A)."""
        self.protocol.select_ef(VisualFile.MY_NUMBER_IMAGE)
        return MyNumberImage.parse(self.protocol.read_der_file())

    def verify_surface(self, issuer_key: rsa.RSAPublicKey | None = None) -> IntegrityResult:
        """Read the surface and check its signature; malformed data is INVALID, not an error."""
        try:
            surface = self.read_surface()
        except ParseError as exc:
            return IntegrityResult(IntegrityStatus.INVALID, (f"malformed: {exc}",))
        return surface.verify(issuer_key)


__all__ = [
    "MyNumberImage",
    "Surface",
    "VisualAp",
    "collation_b",
    "era_yymmdd",
]
