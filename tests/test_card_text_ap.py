"""Text AP / visual AP records and the CVCA chain, from real test-card bytes and spec layouts.

EF 0001/0002 of the text AP are the bytes read off a JPKI test card (vectors/real-card/, with
their source). Signatures cannot be made under the real CVCA, so the signed records are built
here, byte by byte from card-protocol.md §5–§6, under a CVCA key generated for the test; the
simulator's builder is never used for expected bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from card_model import digest_info, key_tlvs, raw_pkcs1, sign, tlv
from jpki.card.cvc import BODY_LEN, CardVerifiableCertificate, IntegrityStatus, check_cvc
from jpki.card.text_ap import (
    CardBasicInfo,
    CardSex,
    IntegrityRecord,
    TextApBasicData,
    basic_info_digest_source,
    check_signed_card_key,
    check_text_integrity,
    parse_my_number_file,
    parse_session_key,
)
from jpki.card.visual_ap import (
    AgeRecord,
    MyNumberImage,
    Surface,
    VisualApBasicData,
    age_on,
    check_visual_record,
    collation_b,
    era_yymmdd,
)
from jpki.errors import JpkiError, MyNumberError, ParseError, PinFormatError
from jpki.tlv import encode_length
from jpki.trust.cvca import CvcaKey, CvcaKeyring

REAL = Path(__file__).resolve().parents[1] / "vectors" / "real-card"
TEST_CVCA_ID = b"7000033" + b"\x08\x05" + b"001" + bytes(4)
AP_KEY_ID = b"1322121" + b"\x08\x05" + b"000" + bytes(4)
REAL_TEST_CVCA_ID = b"6000033" + b"\x08\x05" + b"001" + bytes(4)


def real(name: str) -> bytes:
    return (REAL / name).read_bytes()


def cvc(cvca: rsa.RSAPrivateKey, certified: rsa.RSAPublicKey, issuer_id: bytes) -> bytes:
    body = issuer_id + AP_KEY_ID + key_tlvs(certified)
    assert len(body) == 297
    return tlv(0x7F21, tlv(0x5F4E, body) + tlv(0x5F37, sign(cvca, body)))


@pytest.fixture(scope="module")
def keys() -> dict[str, rsa.RSAPrivateKey]:
    return {n: rsa.generate_private_key(65537, 2048) for n in ("cvca", "ap", "card")}


@pytest.fixture(scope="module")
def keyring(keys: dict[str, rsa.RSAPrivateKey]) -> CvcaKeyring:
    return CvcaKeyring([CvcaKey(TEST_CVCA_ID, keys["cvca"].public_key())])


@pytest.fixture(scope="module")
def ef4(keys: dict[str, rsa.RSAPrivateKey]) -> bytes:
    return cvc(keys["cvca"], keys["ap"].public_key(), TEST_CVCA_ID)


def text_ef3(ap: rsa.RSAPrivateKey, ef1: bytes, ef2: bytes) -> bytes:
    source = ef2[ef2.index(b"\xdf\x22") : 3 + ef2[2]]  # FF20 65: short form outer header
    hashed = tlv(0xDF31, hashlib.sha256(ef1).digest()) + tlv(
        0xDF32, hashlib.sha256(source).digest()
    )
    return tlv(0xFF30, hashed + tlv(0xDF33, sign(ap, hashed)))


# --- the real test-card bytes ----------------------------------------------------------------


def test_real_my_number_file_is_17_bytes_with_filler() -> None:
    raw = real("text-0001-physical.bin")
    assert len(raw) == 17 and raw[15:] == b"\xff\xff"
    assert parse_my_number_file(raw).reveal() == "537686677188"


def test_real_basic_info() -> None:
    info = CardBasicInfo.parse(real("text-0002.bin"))
    assert info.name == "黒桐\u3000幹也"
    assert info.address == "東京都清瀬市観布子南１２－７－２０２"
    assert info.birth_date == date(1980, 2, 17)
    assert info.sex is CardSex.MALE


def test_real_offset_table_is_checked_not_trusted() -> None:
    raw = bytearray(real("text-0002.bin"))
    assert raw[6:8] == b"\x00\x0e"  # DF22 starts at 0x0E from the file's first byte
    raw[7] = 0x0F
    with pytest.raises(ParseError, match="offset 0"):
        CardBasicInfo.parse(bytes(raw))


def test_real_filler_after_the_record_is_ignored() -> None:
    raw = real("text-0002.bin")
    assert CardBasicInfo.parse(raw + b"\xff" * 300) == CardBasicInfo.parse(raw)
    assert basic_info_digest_source(raw + b"\x00" * 7) == basic_info_digest_source(raw)


def test_real_digest_source_skips_the_offset_table() -> None:
    raw = real("text-0002.bin")
    source = basic_info_digest_source(raw)
    assert source.startswith(b"\xdf\x22") and source.endswith(b"\xdf\x25\x01\x31")
    assert len(source) == len(raw) - 3 - 11  # outer header, DF21 TLV (3 + 8)


def test_real_files_integrity_valid(
    keys: dict[str, rsa.RSAPrivateKey], keyring: CvcaKeyring, ef4: bytes
) -> None:
    ef1, ef2 = real("text-0001-physical.bin"), real("text-0002.bin")
    result = check_text_integrity(ef1, ef2, text_ef3(keys["ap"], ef1, ef2), ef4, keyring)
    assert result.status is IntegrityStatus.VALID, result.reasons
    assert result.cvca == "7000033/001" and result.hierarchy == "other"


def test_trimmed_my_number_file_does_not_match(
    keys: dict[str, rsa.RSAPrivateKey], keyring: CvcaKeyring, ef4: bytes
) -> None:
    ef1, ef2 = real("text-0001-physical.bin"), real("text-0002.bin")
    ef3 = text_ef3(keys["ap"], ef1, ef2)
    result = check_text_integrity(ef1[:15], ef2, ef3, ef4, keyring)
    assert result.status is IntegrityStatus.INVALID
    assert any("DF31" in r for r in result.reasons)
    changed = bytearray(ef2)
    changed[-1] ^= 0x01  # sex: the last field
    result = check_text_integrity(ef1, bytes(changed), ef3, ef4, keyring)
    assert result.status is IntegrityStatus.INVALID and any("DF32" in r for r in result.reasons)


def test_record_signed_by_the_card_key_is_invalid(
    keys: dict[str, rsa.RSAPrivateKey], keyring: CvcaKeyring, ef4: bytes
) -> None:
    ef1, ef2 = real("text-0001-physical.bin"), real("text-0002.bin")
    ef3 = text_ef3(keys["card"], ef1, ef2)
    result = check_text_integrity(ef1, ef2, ef3, ef4, keyring)
    assert result.status is IntegrityStatus.INVALID and any("DF33" in r for r in result.reasons)


def test_unknown_cvca_is_indeterminate_never_invalid(keys: dict[str, rsa.RSAPrivateKey]) -> None:
    ef1, ef2 = real("text-0001-physical.bin"), real("text-0002.bin")
    other = b"7999999" + b"\x08\x05" + b"001" + bytes(4)
    ef4 = cvc(keys["cvca"], keys["ap"].public_key(), other)
    # Even with a broken record: nothing was checked, so nothing is claimed.
    result = check_text_integrity(ef1[:15], ef2, text_ef3(keys["ap"], ef1, ef2), ef4)
    assert result.status is IntegrityStatus.INDETERMINATE
    assert result.cvca == "7999999/001"
    assert "not known" in result.reasons[0]


def test_key_ids_compared_on_all_16_bytes(keys: dict[str, rsa.RSAPrivateKey]) -> None:
    ring = CvcaKeyring([CvcaKey(TEST_CVCA_ID, keys["cvca"].public_key())])
    almost = TEST_CVCA_ID[:15] + b"\xa8"  # the padding's last byte differs
    step = check_cvc(cvc(keys["cvca"], keys["ap"].public_key(), almost), ring, "EF 0004")
    assert step.key is None and step.result is not None
    assert step.result.status is IntegrityStatus.INDETERMINATE


def test_builtin_test_cvca_id_with_a_forged_signature_is_invalid(
    keys: dict[str, rsa.RSAPrivateKey],
) -> None:
    # 6000033/001 is the real JPKI test CVCA (built in); our key did not make this signature.
    forged = cvc(keys["cvca"], keys["ap"].public_key(), REAL_TEST_CVCA_ID)
    step = check_cvc(forged, CvcaKeyring(), "EF 0004")
    assert step.result is not None and step.result.status is IntegrityStatus.INVALID
    assert step.result.hierarchy == "test" and step.result.cvca == "6000033/001"


def test_cvc_with_and_without_template(ef4: bytes, keys: dict[str, rsa.RSAPrivateKey]) -> None:
    wrapped = CardVerifiableCertificate.parse(ef4)
    bare = CardVerifiableCertificate.parse(ef4[5:])
    assert wrapped == bare or (wrapped.body, wrapped.signature) == (bare.body, bare.signature)
    assert len(wrapped.body) == BODY_LEN and wrapped.issuer == "7000033/001"
    assert wrapped.subject == "1322121/000"
    assert wrapped.public_key.public_numbers() == keys["ap"].public_key().public_numbers()
    assert CardVerifiableCertificate.parse(ef4 + b"\xff" * 40).body == wrapped.body


def test_cvc_with_another_body_length_is_unreadable() -> None:
    body = tlv(0x42, b"ROOT") + tlv(0x90, b"\x01\x00\x01") + tlv(0x91, b"\xc9" + b"\xaa" * 255)
    old = tlv(0x7F21, tlv(0x5F4E, body) + tlv(0x5F37, bytes(256)))
    with pytest.raises(ParseError, match="297"):
        CardVerifiableCertificate.parse(old)
    step = check_cvc(old, CvcaKeyring(), "EF 0004")
    assert step.result is not None and step.result.status is IntegrityStatus.INDETERMINATE


def test_tampered_cvc_is_invalid(ef4: bytes, keyring: CvcaKeyring) -> None:
    bad = bytearray(ef4)
    bad[10 + 32 + 20] ^= 0x01  # inside the certified modulus
    step = check_cvc(bytes(bad), keyring, "EF 0004")
    assert step.result is not None and step.result.status is IntegrityStatus.INVALID


def test_text_ap_basic_data_session_key_and_signed_key(
    keys: dict[str, rsa.RSAPrivateKey], keyring: CvcaKeyring, ef4: bytes
) -> None:
    ef5 = tlv(
        0xFF40,
        tlv(0xDF41, bytes.fromhex("01030e01"))
        + tlv(0xDF42, b"6000034\x08\x05001" + bytes(4))
        + tlv(0xDF43, b"\x11" * 32 + b"\xff" * 96),
    )
    basic = TextApBasicData.parse(ef5 + b"\xff\xff")
    assert basic.identification == bytes.fromhex("01030e01") and len(basic.trailing) == 128
    session = keys["card"].public_key()
    assert parse_session_key(tlv(0xA1, key_tlvs(session))).public_numbers() == (
        session.public_numbers()
    )
    df51 = tlv(0xDF51, key_tlvs(keys["card"].public_key()))
    ef7 = tlv(0xFF50, df51 + tlv(0xDF52, sign(keys["ap"], df51)))
    result, card_key = check_signed_card_key(ef7, ef4, keyring)
    assert result.status is IntegrityStatus.VALID and card_key is not None
    forged = tlv(0xFF50, df51 + tlv(0xDF52, sign(keys["card"], df51)))
    assert check_signed_card_key(forged, ef4, keyring)[0].status is IntegrityStatus.INVALID


def test_integrity_record_needs_32_byte_digests() -> None:
    ef3 = tlv(0xFF30, tlv(0xDF31, bytes(31)) + tlv(0xDF32, bytes(32)) + tlv(0xDF33, bytes(256)))
    with pytest.raises(ParseError):
        IntegrityRecord.parse(ef3)


# --- visual AP -------------------------------------------------------------------------------


def age_record(ap: rsa.RSAPrivateKey, card: rsa.RSAPublicKey, birth: bytes) -> bytes:
    signed = tlv(0xDF11, birth) + tlv(0xDF12, key_tlvs(card))
    return tlv(0xFF10, signed + tlv(0xDF13, sign(ap, signed)))


def surface_file(
    ap: rsa.RSAPrivateKey, card: rsa.RSAPublicKey, *, df28_hashed: bool = False
) -> bytes:
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 20
    fields = [
        tlv(0xDF22, b"19800217"),
        tlv(0xDF23, b"1"),
        tlv(0xDF24, key_tlvs(card)),
        tlv(0xDF25, png + b"name"),
        tlv(0xDF26, png + b"address"),
        tlv(0xDF27, b"\x00\x00\x00\x0cjP  \r\n\x87\n" + b"\x42" * 300),
    ]
    groups = [fields[0:3], fields[3:5], fields[5:6]]
    digests = b"".join(hashlib.sha256(b"".join(g)).digest() for g in groups)
    sig = sign(ap, digests) if df28_hashed else raw_pkcs1(ap, digest_info(digests))
    fields += [tlv(0xDF28, sig), tlv(0xDF29, b"20350217"), tlv(0xDF2A, png + b"code")]
    table_len = 3 + 2 * len(fields)
    body_len = table_len + sum(map(len, fields))
    header = 2 + len(encode_length(body_len))
    offsets, pos = b"", header + table_len
    for f in fields:
        offsets += pos.to_bytes(2, "big")
        pos += len(f)
    return tlv(0xFF20, tlv(0xDF21, offsets) + b"".join(fields))


def test_age_record_and_age(
    keys: dict[str, rsa.RSAPrivateKey], keyring: CvcaKeyring, ef4: bytes
) -> None:
    raw = age_record(keys["ap"], keys["card"].public_key(), b"19800217")
    rec = AgeRecord.parse(raw + b"\xff" * 10)
    assert rec.birth_date == date(1980, 2, 17)
    assert check_visual_record(rec, ef4, keyring).status is IntegrityStatus.VALID
    assert age_on(rec.birth_date, date(2000, 2, 16)) == 19
    assert age_on(rec.birth_date, date(2000, 2, 17)) == 20
    assert age_on(date(2004, 2, 29), date(2022, 2, 28)) == 17
    assert age_on(date(2004, 2, 29), date(2022, 3, 1)) == 18
    # Signed by the card key it carries, not the EF 0004 key: invalid.
    self_signed = age_record(keys["card"], keys["card"].public_key(), b"19800217")
    result = check_visual_record(AgeRecord.parse(self_signed), ef4, keyring)
    assert result.status is IntegrityStatus.INVALID


def test_surface_df28_is_digest_info_of_96_bytes_not_hashed_again(
    keys: dict[str, rsa.RSAPrivateKey], keyring: CvcaKeyring, ef4: bytes
) -> None:
    good = Surface.parse(surface_file(keys["ap"], keys["card"].public_key()) + b"\x00" * 64)
    assert good.expiry_date == date(2035, 2, 17) and good.sex is CardSex.MALE
    assert good.card_key.public_numbers() == keys["card"].public_key().public_numbers()
    assert check_visual_record(good, ef4, keyring).status is IntegrityStatus.VALID
    hashed = Surface.parse(surface_file(keys["ap"], keys["card"].public_key(), df28_hashed=True))
    assert check_visual_record(hashed, ef4, keyring).status is IntegrityStatus.INVALID


def test_surface_offset_table_checked(keys: dict[str, rsa.RSAPrivateKey]) -> None:
    raw = bytearray(surface_file(keys["ap"], keys["card"].public_key()))
    raw[raw.index(b"\xdf\x21") + 4 + 2] ^= 0x01  # second entry
    with pytest.raises(ParseError, match="offset 1"):
        Surface.parse(bytes(raw))


def test_surface_photo_change_is_invalid(
    keys: dict[str, rsa.RSAPrivateKey], keyring: CvcaKeyring, ef4: bytes
) -> None:
    raw = bytearray(surface_file(keys["ap"], keys["card"].public_key()))
    raw[raw.index(b"\x42" * 300) + 5] ^= 0x01
    result = check_visual_record(Surface.parse(bytes(raw)), ef4, keyring)
    assert result.status is IntegrityStatus.INVALID


def test_my_number_image_df43_covers_df41_and_df42(
    keys: dict[str, rsa.RSAPrivateKey], keyring: CvcaKeyring, ef4: bytes
) -> None:
    df41 = tlv(0xDF41, b"\x89PNG\r\n\x1a\n" + b"\x01" * 40)
    df42 = tlv(0xDF42, key_tlvs(keys["card"].public_key()))
    good = tlv(0xFF40, df41 + df42 + tlv(0xDF43, sign(keys["ap"], df41 + df42)))
    only41 = tlv(0xFF40, df41 + df42 + tlv(0xDF43, sign(keys["ap"], df41)))
    ok = check_visual_record(MyNumberImage.parse(good), ef4, keyring)
    assert ok.status is IntegrityStatus.VALID
    bad = check_visual_record(MyNumberImage.parse(only41), ef4, keyring)
    assert bad.status is IntegrityStatus.INVALID


def test_visual_ap_basic_data_municipality_code() -> None:
    ef3 = tlv(
        0xFF30,
        tlv(0xDF31, bytes.fromhex("06030e01"))
        + tlv(0xDF32, b"6000024\x08\x05001" + bytes(4))
        + tlv(0xDF33, b"\x00")
        + tlv(0xDF34, b"13221")
        + tlv(0xDF35, b"5900025\x08\x05001" + bytes(4) + b"\x77" * 256),
    )
    basic = VisualApBasicData.parse(ef3 + b"\xff" * 5)
    assert basic.municipality_code == "13221" and basic.version == 0
    assert len(basic.df35_data) == 256 and basic.df35_key_id.startswith(b"5900025")


# --- My Number, sex, eras --------------------------------------------------------------------


def test_my_number_with_bad_check_digit_is_rejected() -> None:
    with pytest.raises(MyNumberError):
        parse_my_number_file(b"\xff\x10\x0c537686677189\xff\xff")


def test_my_number_wrong_tag() -> None:
    with pytest.raises(ParseError):
        parse_my_number_file(b"\xff\x11\x0c537686677188")


@pytest.mark.parametrize(
    ("birth", "yymmdd"),
    [
        (date(1980, 2, 17), "550217"),  # the test card (昭和55)
        (date(1989, 1, 7), "640107"),
        (date(1989, 1, 8), "010108"),
        (date(2019, 4, 30), "310430"),
        (date(2019, 5, 1), "010501"),
    ],
)
def test_era_year(birth: date, yymmdd: str) -> None:
    assert era_yymmdd(birth) == yymmdd


def test_collation_b_of_the_test_card() -> None:
    assert collation_b(date(1980, 2, 17), 2035, "2285").reveal() == b"55021720352285"
    with pytest.raises(PinFormatError):
        collation_b(date(1980, 2, 17), 2035, "22X5")


# --- property: malformed card data only ever raises JpkiError --------------------------------


def _parsers(ef4: bytes) -> list[Callable[[bytes], Any]]:
    return [
        parse_my_number_file,
        CardBasicInfo.parse,
        basic_info_digest_source,
        CardVerifiableCertificate.parse,
        AgeRecord.parse,
        Surface.parse,
        MyNumberImage.parse,
        VisualApBasicData.parse,
        TextApBasicData.parse,
        lambda raw: check_text_integrity(raw, raw, raw, ef4),
        lambda raw: check_text_integrity(b"", real("text-0002.bin"), raw, raw),
        lambda raw: check_signed_card_key(raw, ef4),
    ]


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_jpki_errors(ef4: bytes, raw: bytes) -> None:
    for parse in _parsers(ef4):
        with contextlib.suppress(JpkiError):
            parse(raw)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_truncated_and_mutated_files_raise_only_jpki_errors(
    ef4: bytes, keys: dict[str, rsa.RSAPrivateKey], data: st.DataObject
) -> None:
    files = [real("text-0001-physical.bin"), real("text-0002.bin"), ef4]
    raw = bytearray(data.draw(st.sampled_from(files)))
    raw = raw[: data.draw(st.integers(0, len(raw)))]
    if raw and data.draw(st.booleans()):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    for parse in _parsers(ef4):
        with contextlib.suppress(JpkiError):
            parse(bytes(raw))
