"""Text AP (券面入力補助AP) and visual AP (券面事項確認AP) of the simulator, by raw APDUs.

Every record is checked against the byte layouts of the card protocol spec (§5, §6) with a
TLV walker and signature checks written here (``cryptography`` directly), not with the client.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from hypothesis import given, settings
from hypothesis import strategies as st

from jpki.sim import SimulatedCard, open_simulated_card
from jpki.sim.create import create_profile
from jpki.sim.layout import collation_b, era_yymmdd
from jpki.sim.profile import KeyId
from test_sim_card import TEXT, VISUAL, select_ap, sw, tx

SHA256_DI = bytes.fromhex("3031300d060960864801650304020105000420")


# --- an independent BER-TLV walker ------------------------------------------------------------


def tlv_at(data: bytes, pos: int) -> tuple[int, int, int, int]:
    """(tag, value start, value end, header length) of the TLV at ``pos``."""
    start = pos
    tag = data[pos]
    pos += 1
    if tag & 0x1F == 0x1F:
        while True:
            tag = (tag << 8) | data[pos]
            pos += 1
            if not data[pos - 1] & 0x80:
                break
    n = data[pos]
    pos += 1
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(data[pos : pos + k], "big")
        pos += k
    assert pos + n <= len(data), "TLV runs past the end"
    return tag, pos, pos + n, pos - start


def children(value: bytes) -> list[tuple[int, int, bytes, bytes]]:
    """(tag, offset inside ``value``, value, whole TLV) of each child; stops at 00/FF filler."""
    out = []
    pos = 0
    while pos < len(value):
        if value[pos] in (0x00, 0xFF) and value[pos:] == bytes([value[pos]]) * (len(value) - pos):
            break
        tag, vs, ve, _ = tlv_at(value, pos)
        out.append((tag, pos, value[vs:ve], value[pos:ve]))
        pos = ve
    return out


def outer(data: bytes, want: int) -> tuple[bytes, int, int]:
    """(value, header length, end) of the file's first TLV, which must have tag ``want``."""
    tag, vs, ve, hl = tlv_at(data, 0)
    assert tag == want, f"{tag:X} != {want:X}"
    return data[vs:ve], hl, ve


def fields(data: bytes, want: int) -> dict[int, bytes]:
    value, _, _ = outer(data, want)
    return {tag: v for tag, _, v, _ in children(value)}


def key_9091(value: bytes) -> rsa.RSAPublicKey:
    f = {tag: v for tag, _, v, _ in children(value)}
    assert set(f) == {0x90, 0x91}
    return rsa.RSAPublicNumbers(
        int.from_bytes(f[0x90], "big"), int.from_bytes(f[0x91], "big")
    ).public_key()


def pkcs1_ok(key: rsa.RSAPublicKey, sig: bytes, message: bytes) -> bool:
    try:
        key.verify(sig, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def recover(key: rsa.RSAPublicKey, sig: bytes) -> bytes:
    """The encoded message under a signature (raw RSA with the public key)."""
    pub = key.public_numbers()
    return pow(int.from_bytes(sig, "big"), pub.e, pub.n).to_bytes(256, "big")


def cvca_keys(profile: Path) -> dict[bytes, rsa.RSAPublicKey]:
    """The profile's test CVCA keys from PROFILE/cvca (index.json + PEM)."""
    index = json.loads((profile / "cvca" / "index.json").read_text())
    out = {}
    for entry in index:
        key = serialization.load_pem_public_key((profile / "cvca" / entry["file"]).read_bytes())
        assert isinstance(key, rsa.RSAPublicKey)
        out[bytes.fromhex(entry["key_id_hex"])] = key
    return out


def check_cvc(ef4: bytes, cvcas: dict[bytes, rsa.RSAPublicKey], issuer: str) -> rsa.RSAPublicKey:
    """Spec §5.1 byte for byte; returns the certified key after checking the CVCA signature."""
    assert ef4[:5] == bytes.fromhex("7F21820233") and len(ef4) == 5 + 0x233
    assert ef4[5:10] == bytes.fromhex("5F4E820129")
    body = ef4[10 : 10 + 297]
    assert ef4[307:312] == bytes.fromhex("5F37820100")
    sig = ef4[312:]
    issuer_id, subject_id, key_part = body[:16], body[16:32], body[32:]
    assert issuer_id == issuer.encode() + b"\x08\x05" + b"001" + b"\x00" * 4
    assert subject_id[7:9] == b"\x08\x05" and subject_id != issuer_id
    assert key_part[:5] == bytes.fromhex("9003010001") and key_part[5:9] == bytes.fromhex(
        "91820100"
    )
    assert len(key_part) == 265
    assert issuer_id[0] not in b"56"  # never the J-LIS production or test hierarchy
    assert pkcs1_ok(cvcas[issuer_id], sig, body)
    return key_9091(key_part)


# --- APDU helpers ---------------------------------------------------------------------------


def verify(card: SimulatedCard, fid: str, value: str) -> str:
    raw = value.encode()
    assert sw(card, f"00 A4 02 0C 02 {fid}") == "9000"
    return sw(card, f"00 20 00 80 {len(raw):02X} {raw.hex()}")


def read(card: SimulatedCard, fid: str) -> tuple[str, bytes]:
    """(SW of the first read, whole physical file) with 15-bit offsets and 256-byte chunks."""
    assert sw(card, f"00 A4 02 0C 02 {fid}") == "9000"
    out = b""
    while True:
        r = tx(card, f"00 B0 {len(out) >> 8:02X} {len(out) & 0xFF:02X} 00")
        if r[-2:] != b"\x90\x00":
            return (r[-2:].hex().upper() if not out else "9000"), out
        out += r[:-2]
        if len(r) < 258:
            return "9000", out


def must_read(card: SimulatedCard, fid: str) -> bytes:
    status, data = read(card, fid)
    assert status == "9000", (fid, status)
    return data


@pytest.fixture
def card(sim_profile: Path) -> SimulatedCard:
    c = open_simulated_card(sim_profile)
    c.reset()
    return c


def text_with_pin(card: SimulatedCard) -> None:
    select_ap(card, TEXT)
    assert verify(card, "0011", "5678") == "9000"


def visual_with_a(card: SimulatedCard) -> None:
    select_ap(card, VISUAL)
    assert verify(card, "0013", card.profile.person.my_number) == "9000"


# --- collation values (the spec's test-card example) ------------------------------------------


def test_collation_values_match_the_test_card_example() -> None:
    # Spec §6: 1980-02-17 (昭和55) → birth-date key 550217; 55021720352285 opened a test card.
    assert era_yymmdd(date(1980, 2, 17)) == "550217"
    assert collation_b(date(1980, 2, 17), 2035, "2285") == "55021720352285"


# --- text AP -------------------------------------------------------------------------------


def test_text_ap_my_number_file_is_17_physical_bytes(card: SimulatedCard) -> None:
    text_with_pin(card)
    ef1 = must_read(card, "0001")
    assert ef1 == b"\xff\x10\x0c" + card.profile.person.my_number.encode() + b"\xff\xff"
    assert len(ef1) == 17


def test_text_ap_basic_information_offsets_from_the_file_start(card: SimulatedCard) -> None:
    text_with_pin(card)
    ef2 = must_read(card, "0002")
    value, hl, end = outer(ef2, 0xFF20)
    assert set(ef2[end:]) <= {0xFF}  # filler after the TLV
    kids = children(value)
    assert [k[0] for k in kids] == [0xDF21, 0xDF22, 0xDF23, 0xDF24, 0xDF25]
    table = kids[0][2]
    offsets = [int.from_bytes(table[i : i + 2], "big") for i in range(0, len(table), 2)]
    assert offsets == [hl + off for _, off, _, _ in kids[1:]]
    for (tag, _, v, _), off in zip(kids[1:], offsets, strict=True):
        assert tlv_at(ef2, off)[0] == tag and ef2[tlv_at(ef2, off)[1] :].startswith(v)
    p = card.profile.person
    got = {tag: v for tag, _, v, _ in kids}
    assert got[0xDF22].decode() == p.name and "\u3000" in p.name
    assert got[0xDF23].decode() == p.address
    assert got[0xDF24] == f"{p.birth_date:%Y%m%d}".encode()
    assert got[0xDF25] == str(p.sex).encode()


def test_text_ap_integrity_record_chains_to_the_profile_cvca(
    card: SimulatedCard, sim_profile: Path
) -> None:
    text_with_pin(card)
    ef1, ef2, ef3, ef4 = (must_read(card, f) for f in ("0001", "0002", "0003", "0004"))
    ap_key = check_cvc(ef4, cvca_keys(sim_profile), "7000033")
    value, _, _ = outer(ef3, 0xFF30)
    kids = children(value)
    assert [k[0] for k in kids] == [0xDF31, 0xDF32, 0xDF33]
    assert kids[0][2] == hashlib.sha256(ef1).digest()  # physical 17 bytes, filler included
    v2, _, _ = outer(ef2, 0xFF20)
    skip = children(v2)[1][1]  # DF22 onwards, the DF21 table skipped
    assert kids[1][2] == hashlib.sha256(v2[skip:]).digest()
    assert kids[1][2] != hashlib.sha256(ef2).digest()
    covered = kids[0][3] + kids[1][3]
    assert pkcs1_ok(ap_key, kids[2][2], covered)
    assert not pkcs1_ok(ap_key, kids[2][2], covered[:-1] + bytes([covered[-1] ^ 1]))


def test_text_ap_basic_data_session_key_and_own_key(card: SimulatedCard, sim_profile: Path) -> None:
    text_with_pin(card)
    ef4 = must_read(card, "0004")
    ap_key = check_cvc(ef4, cvca_keys(sim_profile), "7000033")
    f5 = fields(must_read(card, "0005"), 0xFF40)
    assert len(f5[0xDF41]) == 4 and len(f5[0xDF42]) == 16 and len(f5[0xDF43]) == 128
    assert f5[0xDF42] != ef4[26:42]  # not the key EF 0004 certifies
    v6, _, _ = outer(must_read(card, "0006"), 0xA1)
    session = key_9091(v6)
    v7, _, _ = outer(must_read(card, "0007"), 0xFF50)
    kids = children(v7)
    assert [k[0] for k in kids] == [0xDF51, 0xDF52]
    own = key_9091(kids[0][2])
    assert pkcs1_ok(ap_key, kids[1][2], kids[0][3])
    numbers = {k.public_numbers().n for k in (ap_key, session, own)}
    assert len(numbers) == 3


@pytest.mark.parametrize(
    ("key", "opens", "closed"),
    [
        ("0011", {"0001", "0002", "0003", "0006", "0007"}, set()),
        ("0014", {"0001", "0003", "0006", "0007"}, {"0002"}),
        ("0015", {"0002", "0003", "0006", "0007"}, {"0001"}),
        (None, set(), {"0001", "0002", "0003", "0006", "0007"}),
    ],
)
def test_text_ap_access_rules(
    card: SimulatedCard, key: str | None, opens: set[str], closed: set[str]
) -> None:
    select_ap(card, TEXT)
    if key is not None:
        value = {
            "0011": "5678",
            "0014": card.profile.person.my_number,
            "0015": card.profile.initial_value(KeyId.TEXT_B),
        }[key]
        assert verify(card, key, value) == "9000"
    for fid in sorted(opens | {"0004", "0005"}):
        assert read(card, fid)[0] == "9000", fid
    for fid in sorted(closed):
        assert read(card, fid)[0] == "6982", fid


def test_text_ap_key_0012_is_blocked_from_issue(card: SimulatedCard) -> None:
    select_ap(card, TEXT)
    assert sw(card, "00 A4 02 0C 02 0012") == "9000"
    assert sw(card, "00 20 00 80") == "63C0"
    assert sw(card, "00 20 00 80 04 31323334") == "6984"
    assert sw(card, "00 20 00 80") == "63C0"


@settings(max_examples=8, deadline=None)
@given(person=st.integers(min_value=0, max_value=40))
def test_text_ap_layout_for_any_person(
    tmp_path_factory: pytest.TempPathFactory, person: int
) -> None:
    path = tmp_path_factory.mktemp("p") / "card"
    create_profile(path, person=person)
    c = open_simulated_card(path, durable=False)
    text_with_pin(c)
    ef1, ef2, ef3 = (must_read(c, f) for f in ("0001", "0002", "0003"))
    f3 = fields(ef3, 0xFF30)
    v2, _, _ = outer(ef2, 0xFF20)
    assert f3[0xDF31] == hashlib.sha256(ef1).digest()
    assert f3[0xDF32] == hashlib.sha256(v2[children(v2)[1][1] :]).digest()


def test_long_form_lengths_keep_the_offsets_right(tmp_path: Path) -> None:
    create_profile(tmp_path / "c", text_long_form=True)
    c = open_simulated_card(tmp_path / "c", durable=False)
    text_with_pin(c)
    ef2 = must_read(c, "0002")
    value, hl, _ = outer(ef2, 0xFF20)
    kids = children(value)
    table = kids[0][2]
    assert value[2] == 0x81  # DF21 81 08: a long-form length below 128
    offsets = [int.from_bytes(table[i : i + 2], "big") for i in range(0, len(table), 2)]
    assert offsets == [hl + off for _, off, _, _ in kids[1:]]


# --- visual AP -----------------------------------------------------------------------------


def test_visual_ap_age_record_with_the_birth_date_key_only(
    card: SimulatedCard, sim_profile: Path
) -> None:
    select_ap(card, VISUAL)
    assert read(card, "0001")[0] == "6982"
    assert verify(card, "0011", era_yymmdd(card.profile.person.birth_date)) == "9000"
    ef1 = must_read(card, "0001")
    for fid in ("0002", "0005", "0006"):
        assert read(card, fid)[0] == "6982", fid  # least disclosure
    ap_key = check_cvc(must_read(card, "0004"), cvca_keys(sim_profile), "7000023")
    value, _, _ = outer(ef1, 0xFF10)
    kids = children(value)
    assert [k[0] for k in kids] == [0xDF11, 0xDF12, 0xDF13]
    assert kids[0][2] == f"{card.profile.person.birth_date:%Y%m%d}".encode()
    key_9091(kids[1][2])
    assert pkcs1_ok(ap_key, kids[2][2], kids[0][3] + kids[1][3])


def test_visual_ap_card_face_signature_is_one_digest_info_of_three_digests(
    card: SimulatedCard, sim_profile: Path
) -> None:
    visual_with_a(card)
    ef2 = must_read(card, "0002")
    ap_key = check_cvc(must_read(card, "0004"), cvca_keys(sim_profile), "7000023")
    value, hl, end = outer(ef2, 0xFF20)
    assert set(ef2[end:]) <= {0xFF}
    kids = children(value)
    tags = [k[0] for k in kids]
    assert tags == [0xDF21, *range(0xDF22, 0xDF2B)]
    table = kids[0][2]
    assert [int.from_bytes(table[i : i + 2], "big") for i in range(0, len(table), 2)] == [
        hl + off for _, off, _, _ in kids[1:]
    ]
    whole = {k[0]: k[3] for k in kids}
    val = {k[0]: k[2] for k in kids}
    card_key = key_9091(val[0xDF24])  # 90/91, not SubjectPublicKeyInfo
    h1 = hashlib.sha256(whole[0xDF22] + whole[0xDF23] + whole[0xDF24]).digest()
    h2 = hashlib.sha256(whole[0xDF25] + whole[0xDF26]).digest()
    h3 = hashlib.sha256(whole[0xDF27]).digest()
    di = bytes.fromhex("3071300d060960864801650304020105000460") + h1 + h2 + h3
    em = recover(ap_key, val[0xDF28])
    assert em == b"\x00\x01" + b"\xff" * (256 - 3 - len(di)) + b"\x00" + di
    assert recover(card_key, val[0xDF28]) != em  # made by the AP key, not the card key
    assert val[0xDF29] == f"{card.profile.expiry_date:%Y%m%d}".encode()
    assert val[0xDF25].startswith(b"\x89PNG") and val[0xDF2A].startswith(b"\x89PNG")


def test_visual_ap_basic_data_and_my_number_image(card: SimulatedCard, sim_profile: Path) -> None:
    visual_with_a(card)
    f3 = fields(must_read(card, "0003"), 0xFF30)
    assert f3[0xDF34] == card.profile.municipality_code.encode() == b"13101"
    assert len(f3[0xDF32]) == 16 and len(f3[0xDF35]) == 16 + 256
    ap_key = check_cvc(must_read(card, "0004"), cvca_keys(sim_profile), "7000023")
    value, _, _ = outer(must_read(card, "0005"), 0xFF40)
    kids = children(value)
    assert [k[0] for k in kids] == [0xDF41, 0xDF42, 0xDF43]
    assert kids[0][2].startswith(b"\x89PNG")
    key_9091(kids[1][2])
    assert pkcs1_ok(ap_key, kids[2][2], kids[0][3] + kids[1][3])  # DF41 AND DF42
    assert not pkcs1_ok(ap_key, kids[2][2], kids[0][3])


@pytest.mark.parametrize(
    ("key", "opens", "closed"),
    [
        ("0013", {"0002", "0003", "0004", "0005", "0006"}, {"0001"}),
        ("0012", {"0002", "0003", "0004", "0006"}, {"0001", "0005"}),
        (None, {"0003", "0004"}, {"0001", "0002", "0005", "0006"}),
    ],
)
def test_visual_ap_access_rules(
    card: SimulatedCard, key: str | None, opens: set[str], closed: set[str]
) -> None:
    select_ap(card, VISUAL)
    p = card.profile
    if key == "0013":
        assert verify(card, key, p.person.my_number) == "9000"
    elif key == "0012":
        value = collation_b(p.person.birth_date, p.expiry_date.year, p.security_code)
        assert verify(card, key, value) == "9000"
    for fid in sorted(opens):
        assert read(card, fid)[0] == "9000", fid
    for fid in sorted(closed):
        assert read(card, fid)[0] == "6982", fid


# --- card presence (spec §6.1) ---------------------------------------------------------------


@pytest.mark.parametrize("aid", [TEXT, VISUAL])
def test_presence_challenge_is_signed_by_the_card_key_without_credential(
    card: SimulatedCard, sim_profile: Path, aid: str
) -> None:
    challenge = hashlib.sha256(b"nonce from the relying party").digest()
    select_ap(card, aid)
    r = tx(card, f"80 2A 00 00 33 {(SHA256_DI + challenge).hex()} 00")
    assert r[-2:] == b"\x90\x00" and len(r) == 258
    # the card key as a record signed by the CVCA-certified AP key carries it
    if aid == TEXT:
        text_with_pin(card)
        v7, _, _ = outer(must_read(card, "0007"), 0xFF50)
        card_key = key_9091(children(v7)[0][2])
    else:
        visual_with_a(card)
        card_key = key_9091(fields(must_read(card, "0005"), 0xFF40)[0xDF42])
    card_key.verify(r[:-2], challenge, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
    assert sw(card, f"80 2A 00 80 33 {(SHA256_DI + challenge).hex()} 00") == "6A86"
