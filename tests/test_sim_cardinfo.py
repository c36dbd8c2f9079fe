"""Text AP (券面入力補助AP) and visual AP (券面事項確認AP) of the simulator, by raw APDUs."""

from __future__ import annotations

import hashlib
import io
from datetime import date
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from jpki import tlv
from jpki.sim import SimulatedCard, open_simulated_card
from jpki.sim.create import create_profile
from jpki.sim.layout import collation_b, era_yymmdd
from test_sim_card import TEXT, VISUAL, select_ap, sw, tx


def verify(card: SimulatedCard, fid: str, value: str) -> str:
    raw = value.encode()
    assert sw(card, f"00 A4 02 0C 02 {fid}") == "9000"
    return sw(card, f"00 20 00 80 {len(raw):02X} {raw.hex()}")


def read(card: SimulatedCard, fid: str) -> tuple[str, bytes]:
    """(SW of the first read, whole file) with 15-bit offsets and 256-byte chunks."""
    assert sw(card, f"00 A4 02 0C 02 {fid}") == "9000"
    out = b""
    while True:
        r = tx(card, f"00 B0 {len(out) >> 8:02X} {len(out) & 0xFF:02X} 00")
        if r[-2:] != b"\x90\x00":
            return (r[-2:].hex().upper() if not out else "9000"), out
        out += r[:-2]
        if len(r) < 258:
            return "9000", out


@pytest.fixture
def card(sim_profile: Path) -> SimulatedCard:
    c = open_simulated_card(sim_profile)
    c.reset()
    return c


def rsa_from_cvc(ef4: bytes) -> tuple[rsa.RSAPublicKey, bytes, bytes]:
    """(issuer key, 5F4E TLV bytes, 5F37 signature) from EF 0004."""
    outer, end = tlv.decode_one(ef4)
    assert outer.tag == 0x7F21 and end == len(ef4)
    body_tlv, pos = tlv.decode_one(outer.value)
    assert body_tlv.tag == 0x5F4E
    sig = tlv.decode_one(outer.value, pos)[0]
    assert sig.tag == 0x5F37
    fields = {t.tag: t.value for t in tlv.decode_all(body_tlv.value)}
    key = rsa.RSAPublicNumbers(
        int.from_bytes(fields[0x90], "big"), int.from_bytes(fields[0x91], "big")
    ).public_key()
    return key, outer.value[:pos], sig.value


# --- text AP -----------------------------------------------------------------------------------


def test_text_ap_files_need_pin_except_the_certificate(card: SimulatedCard) -> None:
    select_ap(card, TEXT)
    for fid in ("0001", "0002", "0003"):
        assert read(card, fid)[0] == "6982"
    status, ef4 = read(card, "0004")
    assert status == "9000" and ef4[:2] == b"\x7f\x21"
    for fid in ("0011", "0014", "0015"):
        assert read(card, fid)[0] == "6981"


def test_text_ap_my_number_file(card: SimulatedCard) -> None:
    select_ap(card, TEXT)
    assert verify(card, "0011", "5678") == "9000"
    _, ef1 = read(card, "0001")
    mn = card.profile.person.my_number
    assert ef1 == b"\xff\x10\x0c" + mn.encode() + b"\xff\xff"
    assert len(ef1) == 17


def test_text_ap_basic_information_layout(card: SimulatedCard) -> None:
    select_ap(card, TEXT)
    assert verify(card, "0011", "5678") == "9000"
    _, ef2 = read(card, "0002")
    top, end = tlv.decode_one(ef2)
    assert top.tag == 0xFF20 and end == len(ef2)
    items = tlv.decode_all(top.value)
    assert [t.tag for t in items] == [0xDF21, 0xDF22, 0xDF23, 0xDF24, 0xDF25]
    p = card.profile.person
    values = {t.tag: t.value for t in items}
    assert values[0xDF22].decode() == p.name and "\u3000" in p.name
    assert values[0xDF23].decode() == p.address
    assert values[0xDF24] == f"{p.birth_date:%Y%m%d}".encode()
    assert values[0xDF25] == b"1"
    offsets = [int.from_bytes(values[0xDF21][i : i + 2], "big") for i in range(0, 8, 2)]
    for off, tag in zip(offsets, (0xDF22, 0xDF23, 0xDF24, 0xDF25), strict=True):
        assert tlv.parse_tag(ef2, off)[0] == tag


def test_text_ap_integrity_hashes_and_signature(card: SimulatedCard) -> None:
    select_ap(card, TEXT)
    assert verify(card, "0011", "5678") == "9000"
    ef1, ef2, ef3, ef4 = (read(card, f)[1] for f in ("0001", "0002", "0003", "0004"))
    top = tlv.decode_one(ef3)[0]
    assert top.tag == 0xFF30
    items = tlv.decode_all(top.value)
    assert [t.tag for t in items] == [0xDF31, 0xDF32, 0xDF33]
    assert items[0].value == hashlib.sha256(ef1).digest()
    offset_df22 = int.from_bytes(tlv.find(tlv.decode_one(ef2)[0].value, 0xDF21) or b"", "big") >> 48
    assert items[1].value == hashlib.sha256(ef2[offset_df22:]).digest()
    issuer, _, _ = rsa_from_cvc(ef4)
    signed = items[0].encode() + items[1].encode()
    issuer.verify(items[2].value, signed, padding.PKCS1v15(), hashes.SHA256())


def test_text_ap_cvc_is_signed_by_the_root(card: SimulatedCard) -> None:
    select_ap(card, TEXT)
    issuer, body, sig = rsa_from_cvc(read(card, "0004")[1])
    root = card.profile.private_key("cvc_root").public_key()
    root.verify(sig, body, padding.PKCS1v15(), hashes.SHA256())
    assert (
        issuer.public_numbers() == card.profile.private_key("issuer").public_key().public_numbers()
    )


def test_text_ap_collation_a_opens_my_number_only(card: SimulatedCard) -> None:
    select_ap(card, TEXT)
    assert verify(card, "0014", "000000000000") == "63C9"
    assert verify(card, "0014", card.profile.person.my_number) == "9000"
    assert read(card, "0001")[0] == "9000"
    assert read(card, "0002")[0] == "6982"
    assert read(card, "0003")[0] == "6982"


def test_text_ap_collation_b_opens_basic_information_only(card: SimulatedCard) -> None:
    p = card.profile
    b = collation_b(p.person.birth_date, p.expiry_date.year, p.security_code)
    assert len(b) == 14 and b.isdigit()
    select_ap(card, TEXT)
    assert verify(card, "0015", b) == "9000"
    assert read(card, "0002")[0] == "9000"
    assert read(card, "0001")[0] == "6982"


def test_support_pin_blocks_after_three(card: SimulatedCard) -> None:
    select_ap(card, TEXT)
    assert [verify(card, "0011", "0000") for _ in range(4)] == ["63C2", "63C1", "63C0", "6984"]
    assert verify(card, "0011", "5678") == "6984"
    select_ap(card, "D392F000260100000001")  # the JPKI auth PIN is unaffected
    assert sw(card, "00 20 00 98") == "63C3"


def test_long_form_lengths(tmp_path: Path) -> None:
    c = open_simulated_card(create_profile(tmp_path / "lf", text_long_form=True).path)
    select_ap(c, TEXT)
    assert verify(c, "0011", "5678") == "9000"
    _, ef2 = read(c, "0002")
    assert bytes.fromhex("DF2481") in ef2 and bytes.fromhex("DF258101") in ef2
    items = tlv.decode_all(tlv.decode_one(ef2)[0].value)
    assert items[4].value == b"1"
    # hashes still cover the bytes as stored
    _, ef3 = read(c, "0003")
    df32 = tlv.decode_all(tlv.decode_one(ef3)[0].value)[1].value
    start = ef2.index(bytes.fromhex("DF22"))
    assert df32 == hashlib.sha256(ef2[start:]).digest()


# --- visual AP ---------------------------------------------------------------------------------


def _visual_ef2(card: SimulatedCard) -> bytes:
    select_ap(card, VISUAL)
    assert verify(card, "0013", card.profile.person.my_number) == "9000"
    status, ef2 = read(card, "0002")
    assert status == "9000"
    return ef2


def test_visual_ap_locked_until_collation(card: SimulatedCard) -> None:
    select_ap(card, VISUAL)
    assert read(card, "0002")[0] == "6982"
    assert read(card, "0005")[0] == "6982"
    assert sw(card, "00 A4 02 0C 02 0012") == "9000"
    assert sw(card, "00 20 00 80") == "63CA"  # collation B: 10 tries
    # the birth-date key verifies but opens nothing
    p = card.profile
    assert verify(card, "0011", era_yymmdd(p.person.birth_date)) == "9000"
    assert read(card, "0002")[0] == "6982"


def test_visual_ap_collation_b_opens_surface_not_my_number(card: SimulatedCard) -> None:
    p = card.profile
    select_ap(card, VISUAL)
    b = collation_b(p.person.birth_date, p.expiry_date.year, p.security_code)
    assert verify(card, "0012", "0" * 14) == "63C9"
    assert verify(card, "0012", b) == "9000"
    assert read(card, "0002")[0] == "9000"
    assert read(card, "0005")[0] == "6982"


def test_visual_ap_layout_signature_and_images(card: SimulatedCard) -> None:
    from PIL import Image  # Pillow is a test dependency: missing, this fails (no skip)

    ef2 = _visual_ef2(card)
    assert len(ef2) > 512  # needs offsets beyond 8 bits
    top, end = tlv.decode_one(ef2)
    assert top.tag == 0xFF20 and end == len(ef2)
    items = tlv.decode_all(top.value)
    tags = [t.tag for t in items]
    assert tags == [0xDF21, *range(0xDF22, 0xDF2B)]
    v = {t.tag: t for t in items}
    table = v[0xDF21].value
    offsets = [int.from_bytes(table[i : i + 2], "big") for i in range(0, len(table), 2)]
    assert [tlv.parse_tag(ef2, o)[0] for o in offsets] == tags[1:]
    p = card.profile
    assert v[0xDF22].value == f"{p.person.birth_date:%Y%m%d}".encode()
    assert v[0xDF23].value == b"1"
    assert v[0xDF29].value == f"{p.expiry_date:%Y%m%d}".encode()
    key = serialization.load_der_public_key(v[0xDF24].value)
    assert isinstance(key, rsa.RSAPublicKey)
    groups = [(0xDF22, 0xDF23, 0xDF24), (0xDF25, 0xDF26), (0xDF27,)]
    message = b"".join(hashlib.sha256(b"".join(v[t].encode() for t in g)).digest() for g in groups)
    key.verify(v[0xDF28].value, message, padding.PKCS1v15(), hashes.SHA256())
    formats = {0xDF25: "PNG", 0xDF26: "PNG", 0xDF27: "JPEG2000", 0xDF2A: "PNG"}
    for tag, fmt in formats.items():
        img = Image.open(io.BytesIO(v[tag].value))
        img.load()
        assert img.format == fmt and img.size[0] > 10


def test_visual_ap_my_number_image_file(card: SimulatedCard) -> None:
    from PIL import Image  # Pillow is a test dependency: missing, this fails (no skip)

    _visual_ef2(card)
    status, ef5 = read(card, "0005")
    assert status == "9000"
    top = tlv.decode_one(ef5)[0]
    assert top.tag == 0xFF40
    items = tlv.decode_all(top.value)
    assert [t.tag for t in items] == [0xDF41, 0xDF42, 0xDF43]
    key = serialization.load_der_public_key(items[1].value)
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(
        items[2].value,
        hashlib.sha256(items[0].encode()).digest(),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )
    assert Image.open(io.BytesIO(items[0].value)).format == "PNG"


def test_visual_ap_tampered_image_fails_the_signature(card: SimulatedCard) -> None:
    ef2 = bytearray(_visual_ef2(card))
    v = {t.tag: t for t in tlv.decode_all(tlv.decode_one(bytes(ef2))[0].value)}
    face_at = bytes(ef2).index(v[0xDF27].value) + 100
    ef2[face_at] ^= 1
    v2 = {t.tag: t for t in tlv.decode_all(tlv.decode_one(bytes(ef2))[0].value)}
    key = serialization.load_der_public_key(v2[0xDF24].value)
    assert isinstance(key, rsa.RSAPublicKey)
    groups = [(0xDF22, 0xDF23, 0xDF24), (0xDF25, 0xDF26), (0xDF27,)]
    message = b"".join(hashlib.sha256(b"".join(v2[t].encode() for t in g)).digest() for g in groups)
    from cryptography.exceptions import InvalidSignature

    with pytest.raises(InvalidSignature):
        key.verify(v2[0xDF28].value, message, padding.PKCS1v15(), hashes.SHA256())


def test_committed_assets_open_with_pillow() -> None:
    from PIL import Image  # Pillow is a test dependency: missing, this fails (no skip)

    assets = Path(__file__).resolve().parents[1] / "src" / "jpki" / "sim" / "assets"
    expect = {
        "name.png": "PNG",
        "address.png": "PNG",
        "security_code.png": "PNG",
        "my_number.png": "PNG",
        "face.jp2": "JPEG2000",
    }
    for name, fmt in expect.items():
        with Image.open(assets / name) as img:
            img.load()
            assert img.format == fmt


@pytest.mark.parametrize(
    ("d", "want"),
    [
        (date(1985, 4, 1), "600401"),  # Showa 60
        (date(1989, 1, 7), "640107"),  # last day of Showa
        (date(1989, 1, 8), "010108"),  # Heisei 1
        (date(2019, 4, 30), "310430"),
        (date(2019, 5, 1), "010501"),  # Reiwa 1
        (date(1926, 12, 24), "151224"),  # Taisho 15
        (date(1926, 12, 25), "011225"),  # Showa 1
        (date(1912, 7, 29), "450729"),  # Meiji 45
        (date(1912, 7, 30), "010730"),  # Taisho 1
    ],
)
def test_era_yymmdd(d: date, want: str) -> None:
    assert era_yymmdd(d) == want


def test_collation_b_shape() -> None:
    assert collation_b(date(1985, 4, 1), 2035, "0427") == "60040120350427"


@pytest.fixture(scope="module")
def layout_keys(sim_template: Path) -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]:
    from jpki.sim import ProfileStore

    p = ProfileStore(sim_template).profile
    return p.private_key("issuer"), p.private_key("cvc_root")


@settings(max_examples=60, deadline=None)
@given(
    name=st.text(min_size=1, max_size=90),
    address=st.text(min_size=1, max_size=200),
    birth=st.dates(min_value=date(1868, 10, 23), max_value=date(2030, 12, 31)),
    sex=st.sampled_from([1, 2, 9]),
    long_form=st.booleans(),
)
def test_text_ap_layout_for_any_person(
    layout_keys: tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey],
    name: str,
    address: str,
    birth: date,
    sex: int,
    long_form: bool,
) -> None:
    from jpki.sim.layout import text_ap_files

    issuer, root = layout_keys
    t = text_ap_files(
        my_number="123456789018", name=name, address=address, birth_date=birth, sex=sex,
        issuer=issuer, cvc_root=root, long_form=long_form,
    )  # fmt: skip
    top, end = tlv.decode_one(t.ef0002)
    assert top.tag == 0xFF20 and end == len(t.ef0002)
    v = {x.tag: x.value for x in tlv.decode_all(top.value)}
    assert v[0xDF22].decode() == name and v[0xDF23].decode() == address
    assert v[0xDF24] == f"{birth:%Y%m%d}".encode() and v[0xDF25] == str(sex).encode()
    offsets = [int.from_bytes(v[0xDF21][i : i + 2], "big") for i in range(0, 8, 2)]
    assert [tlv.parse_tag(t.ef0002, o)[0] for o in offsets] == [0xDF22, 0xDF23, 0xDF24, 0xDF25]
    h = {x.tag: x for x in tlv.decode_all(tlv.decode_one(t.ef0003)[0].value)}
    assert h[0xDF32].value == hashlib.sha256(t.ef0002[offsets[0] :]).digest()
    issuer.public_key().verify(
        h[0xDF33].value,
        h[0xDF31].encode() + h[0xDF32].encode(),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )
