"""Text AP / visual AP file parsing and integrity, from vectors built here after the spec."""

from __future__ import annotations

import contextlib
import hashlib
from datetime import date

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jpki.card.text_ap import (
    CardBasicInfo,
    CardSex,
    IntegrityStatus,
    check_text_integrity,
    parse_my_number_file,
    rsa_key_from_cvc,
)
from jpki.card.visual_ap import MyNumberImage, Surface, collation_b, era_yymmdd
from jpki.errors import JpkiError, MyNumberError, ParseError, PinFormatError
from jpki.tlv import encode_length

MY_NUMBER = "123456789018"
NAME = "山田\u3000太郎"
ADDRESS = "東京都千代田区霞が関一丁目1番1号"


def tlv(tag: int, value: bytes, *, long_form: bool = False) -> bytes:
    tb = tag.to_bytes((tag.bit_length() + 7) // 8, "big")
    n = len(value)
    length = bytes([0x81, n]) if long_form and n < 0x80 else encode_length(n)
    return tb + length + value


def sign(key: rsa.RSAPrivateKey, message: bytes) -> bytes:
    return key.sign(message, padding.PKCS1v15(), hashes.SHA256())


@pytest.fixture(scope="module")
def issuer() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 2048)


def ef0001(number: str = MY_NUMBER) -> bytes:
    return b"\xff\x10\x0c" + number.encode() + b"\xff\xff"


def ef0002(*, long_form: bool = False, sex: bytes = b"1", birth: bytes = b"19850401") -> bytes:
    items = (
        tlv(0xDF22, NAME.encode(), long_form=long_form)
        + tlv(0xDF23, ADDRESS.encode(), long_form=long_form)
        + tlv(0xDF24, birth, long_form=long_form)
        + tlv(0xDF25, sex, long_form=long_form)
    )
    return tlv(0xFF20, tlv(0xDF21, bytes(8), long_form=long_form) + items, long_form=long_form)


def basic_items(ef2: bytes) -> bytes:
    return ef2[ef2.index(b"\xdf\x22") :]


def ef0003(key: rsa.RSAPrivateKey, ef1: bytes, ef2: bytes) -> bytes:
    hashed = tlv(0xDF31, hashlib.sha256(ef1).digest()) + tlv(
        0xDF32, hashlib.sha256(basic_items(ef2)).digest()
    )
    return tlv(0xFF30, hashed + tlv(0xDF33, sign(key, hashed)))


def ef0004(key: rsa.RSAPrivateKey) -> bytes:
    pub = key.public_key().public_numbers()
    body = tlv(
        0x5F4E,
        tlv(0x42, b"ROOT")
        + tlv(0x90, pub.e.to_bytes(3, "big"))
        + tlv(0x91, pub.n.to_bytes(256, "big")),
    )
    return tlv(0x7F21, body + tlv(0x5F37, b"\x00" * 256))


# --- My Number / basic info ------------------------------------------------------------------


def test_parse_my_number() -> None:
    assert parse_my_number_file(ef0001()).reveal() == MY_NUMBER


def test_my_number_with_bad_check_digit_is_rejected() -> None:
    with pytest.raises(MyNumberError):
        parse_my_number_file(ef0001("123456789010"))


def test_my_number_wrong_tag() -> None:
    with pytest.raises(ParseError):
        parse_my_number_file(b"\xff\x11\x0c" + MY_NUMBER.encode())


@pytest.mark.parametrize("long_form", [False, True])
def test_parse_basic_info_both_length_forms(long_form: bool) -> None:
    info = CardBasicInfo.parse(ef0002(long_form=long_form) + b"\xff" * 10)
    assert info == CardBasicInfo(NAME, ADDRESS, date(1985, 4, 1), CardSex.MALE)


@pytest.mark.parametrize(
    ("raw", "sex"),
    [
        (b"1", CardSex.MALE),
        (b"2", CardSex.FEMALE),
        (b"9", CardSex.NOT_APPLICABLE),
        (b"0", CardSex.UNKNOWN),
        (b"\x02", CardSex.FEMALE),
    ],
)
def test_sex_codes(raw: bytes, sex: CardSex) -> None:
    assert CardBasicInfo.parse(ef0002(sex=raw)).sex is sex


@pytest.mark.parametrize(
    ("sex", "birth"), [(b"3", b"19850401"), (b"1", b"19851301"), (b"1", b"1985")]
)
def test_bad_fields_are_parse_errors(sex: bytes, birth: bytes) -> None:
    with pytest.raises(ParseError):
        CardBasicInfo.parse(ef0002(sex=sex, birth=birth))


def test_missing_field() -> None:
    with pytest.raises(ParseError, match="DF25"):
        CardBasicInfo.parse(tlv(0xFF20, tlv(0xDF22, b"x") + tlv(0xDF23, b"y") + tlv(0xDF24, b"z")))


# --- integrity ------------------------------------------------------------------------------


@pytest.mark.parametrize("long_form", [False, True])
def test_integrity_valid(issuer: rsa.RSAPrivateKey, long_form: bool) -> None:
    ef1, ef2 = ef0001(), ef0002(long_form=long_form)
    result = check_text_integrity(ef1, ef2, ef0003(issuer, ef1, ef2), ef0004(issuer))
    assert result.status is IntegrityStatus.VALID, result.reasons


def test_integrity_detects_changed_address(issuer: rsa.RSAPrivateKey) -> None:
    ef1, ef2 = ef0001(), ef0002()
    ef3 = ef0003(issuer, ef1, ef2)
    forged = ef2.replace("霞が関".encode(), "霞ヶ関".encode())
    result = check_text_integrity(ef1, forged, ef3, ef0004(issuer))
    assert result.status is IntegrityStatus.INVALID
    assert any("DF32" in r for r in result.reasons)


def test_integrity_detects_changed_my_number(issuer: rsa.RSAPrivateKey) -> None:
    ef1, ef2 = ef0001(), ef0002()
    ef3 = ef0003(issuer, ef1, ef2)
    result = check_text_integrity(ef0001("000000000000"), ef2, ef3, ef0004(issuer))
    assert result.status is IntegrityStatus.INVALID


def test_integrity_detects_other_issuer(issuer: rsa.RSAPrivateKey) -> None:
    other = rsa.generate_private_key(65537, 2048)
    ef1, ef2 = ef0001(), ef0002()
    result = check_text_integrity(ef1, ef2, ef0003(other, ef1, ef2), ef0004(issuer))
    assert result.status is IntegrityStatus.INVALID
    assert any("DF33" in r for r in result.reasons)


def test_integrity_malformed_is_invalid_not_exception(issuer: rsa.RSAPrivateKey) -> None:
    result = check_text_integrity(ef0001(), ef0002(), b"\xff\x30\x05abc", ef0004(issuer))
    assert result.status is IntegrityStatus.INVALID


def test_cvc_key_and_iso_template(issuer: rsa.RSAPrivateKey) -> None:
    assert rsa_key_from_cvc(ef0004(issuer)).public_numbers() == issuer.public_key().public_numbers()
    pub = issuer.public_key().public_numbers()
    iso = tlv(
        0x7F21,
        tlv(
            0x5F4E, tlv(0x7F49, tlv(0x81, pub.n.to_bytes(256, "big")) + tlv(0x82, b"\x01\x00\x01"))
        ),
    )
    assert rsa_key_from_cvc(iso).public_numbers() == pub
    with pytest.raises(ParseError):
        rsa_key_from_cvc(tlv(0x7F21, tlv(0x5F4E, tlv(0x42, b"x"))))


# --- visual AP ------------------------------------------------------------------------------


def surface_file(key: rsa.RSAPrivateKey, *, tamper: bool = False) -> bytes:
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    g1 = tlv(0xDF22, b"19850401") + tlv(0xDF23, b"2") + tlv(0xDF24, spki)
    g2 = tlv(0xDF25, b"\x89PNG name") + tlv(0xDF26, b"\x89PNG addr")
    g3 = tlv(0xDF27, b"\x00\x00\x00\x0cjP  face" * 20)
    message = b"".join(hashlib.sha256(g).digest() for g in (g1, g2, g3))
    if tamper:
        g2 = tlv(0xDF25, b"\x89PNG NAME") + tlv(0xDF26, b"\x89PNG addr")
    body = g1 + g2 + g3 + tlv(0xDF28, sign(key, message)) + tlv(0xDF29, b"20360401")
    return tlv(0xFF20, tlv(0xDF21, bytes(20)) + body + tlv(0xDF2A, b"\x89PNG code"))


def test_surface_parse_and_verify(issuer: rsa.RSAPrivateKey) -> None:
    surface = Surface.parse(surface_file(issuer))
    assert surface.birth_date == date(1985, 4, 1)
    assert surface.sex is CardSex.FEMALE
    assert surface.expiry_date == date(2036, 4, 1)
    assert surface.name_png.startswith(b"\x89PNG")
    assert "PNG" not in repr(surface)
    assert surface.verify().status is IntegrityStatus.VALID
    assert surface.verify(issuer.public_key()).status is IntegrityStatus.VALID


def test_surface_tampered_or_foreign_key(issuer: rsa.RSAPrivateKey) -> None:
    assert (
        Surface.parse(surface_file(issuer, tamper=True)).verify().status is IntegrityStatus.INVALID
    )
    other = rsa.generate_private_key(65537, 2048).public_key()
    result = Surface.parse(surface_file(issuer)).verify(other)
    assert result.status is IntegrityStatus.INVALID
    assert any("expected issuer key" in r for r in result.reasons)


def test_my_number_image(issuer: rsa.RSAPrivateKey) -> None:
    spki = issuer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    img = tlv(0xDF41, b"\x89PNG my number")
    raw = tlv(
        0xFF40, img + tlv(0xDF42, spki) + tlv(0xDF43, sign(issuer, hashlib.sha256(img).digest()))
    )
    parsed = MyNumberImage.parse(raw)
    assert parsed.png == b"\x89PNG my number"
    assert parsed.verify().status is IntegrityStatus.VALID


@pytest.mark.parametrize(
    ("birth", "yymmdd"),
    [
        (date(1985, 4, 1), "600401"),
        (date(1989, 1, 7), "640107"),
        (date(1989, 1, 8), "010108"),
        (date(2019, 4, 30), "310430"),
        (date(2019, 5, 1), "010501"),
        (date(1926, 12, 25), "011225"),
    ],
)
def test_era_year(birth: date, yymmdd: str) -> None:
    assert era_yymmdd(birth) == yymmdd


def test_collation_b() -> None:
    assert collation_b(date(1985, 4, 1), 2036, "1234").reveal() == b"60040120361234"
    with pytest.raises(PinFormatError):
        collation_b(date(1985, 4, 1), 2036, "12a4")
    with pytest.raises(PinFormatError):
        collation_b(date(1985, 4, 1), 36, "1234")


# --- property: malformed card data only ever raises JpkiError --------------------------------


def _parsers(issuer_key_file: bytes) -> list:  # type: ignore[type-arg]
    return [
        parse_my_number_file,
        CardBasicInfo.parse,
        rsa_key_from_cvc,
        lambda raw: Surface.parse(raw).verify(),
        lambda raw: MyNumberImage.parse(raw).verify(),
        lambda raw: check_text_integrity(raw, raw, raw, issuer_key_file),
    ]


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_jpki_errors(issuer: rsa.RSAPrivateKey, raw: bytes) -> None:
    for parse in _parsers(ef0004(issuer)):
        with contextlib.suppress(JpkiError):
            parse(raw)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_truncated_and_mutated_files_raise_only_jpki_errors(
    issuer: rsa.RSAPrivateKey, data: st.DataObject
) -> None:
    files = [ef0001(), ef0002(), ef0002(long_form=True), ef0004(issuer), surface_file(issuer)]
    raw = bytearray(data.draw(st.sampled_from(files)))
    cut = data.draw(st.integers(0, len(raw)))
    raw = raw[:cut]
    if raw and data.draw(st.booleans()):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    for parse in _parsers(ef0004(issuer)):
        with contextlib.suppress(JpkiError):
            parse(bytes(raw))
