"""The simulated chip, driven with raw APDU bytes written from the spec (not via the client)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from jpki.errors import CardRemovedError
from jpki.sim import KeyId, ProfileStore, SimulatedCard, open_simulated_card
from jpki.sim import card as card_mod
from jpki.sim.card import pkcs1_type1_sign

JPKI = "D392F000260100000001"
TEXT = "D3921000310001010408"
VISUAL = "D3921000310001010402"
SHA256_PREFIX = "3031300d060960864801650304020105000420"


def tx(card: SimulatedCard, hexstr: str) -> bytes:
    return card.process(bytes.fromhex(hexstr.replace(" ", "")))


def sw(card: SimulatedCard, hexstr: str) -> str:
    return tx(card, hexstr)[-2:].hex().upper()


def select_ap(card: SimulatedCard, aid: str = JPKI) -> None:
    assert sw(card, f"00 A4 04 0C {len(aid) // 2:02X} {aid}") == "9000"


def select_ef(card: SimulatedCard, fid: str) -> str:
    return sw(card, f"00 A4 02 0C 02 {fid}")


def verify(card: SimulatedCard, fid: str, value: bytes | str) -> str:
    raw = value.encode() if isinstance(value, str) else value
    select_ef(card, fid)
    return sw(card, f"00 20 00 80 {len(raw):02X} {raw.hex()}")


def read_all(card: SimulatedCard, fid: str) -> bytes:
    """READ BINARY in 256-byte chunks until a short tail (or 6B00 exactly at the end)."""
    assert select_ef(card, fid) == "9000"
    out = b""
    while True:
        r = tx(card, f"00 B0 {len(out) >> 8:02X} {len(out) & 0xFF:02X} 00")
        if r[-2:] == b"\x6b\x00":
            return out
        assert r[-2:] == b"\x90\x00", r[-2:].hex()
        out += r[:-2]
        if len(r) - 2 < 256:
            return out


@pytest.fixture
def card(sim_profile: Path) -> SimulatedCard:
    c = open_simulated_card(sim_profile)
    c.reset()
    return c


def test_atr_is_the_contact_atr_from_the_spec(card: SimulatedCard) -> None:
    assert card.atr == bytes.fromhex("3B E0 00 FF 81 31 FE 45 14")
    assert card.reset() == card.atr


# --- SELECT --------------------------------------------------------------------------------


@pytest.mark.parametrize("aid", [JPKI, TEXT, VISUAL])
def test_select_known_application_answers_bare_9000(card: SimulatedCard, aid: str) -> None:
    assert tx(card, f"00 A4 04 0C 0A {aid}") == b"\x90\x00"


@pytest.mark.parametrize(
    "aid",
    [
        "D3921000310001010401",  # Juki AP: not modelled
        "D3921000310001010100",  # common AP: not modelled
        "D392F0002601",  # a prefix of the JPKI AID
        "A000000003000000",  # another card type (OpenSC probe)
        "D392F000260100000001FF",  # longer than the AID
    ],
)
def test_select_unknown_application_is_6a82(card: SimulatedCard, aid: str) -> None:
    assert sw(card, f"00 A4 04 0C {len(aid) // 2:02X} {aid}") == "6A82"


def test_select_p2_00_is_tolerated_without_fci(card: SimulatedCard) -> None:
    assert tx(card, f"00 A4 04 00 0A {JPKI} 00") == b"\x90\x00"
    assert tx(card, "00 A4 02 00 02 000A") == b"\x90\x00"


@pytest.mark.parametrize(
    ("apdu", "want"),
    [
        (f"00 A4 04 01 0A {JPKI}", "6A86"),  # P2 "next occurrence"
        (f"00 A4 01 0C 0A {JPKI}", "6A86"),  # P1 child DF
        (f"00 A4 08 0C 0A {JPKI}", "6A86"),  # P1 path
        ("00 A4 04 0C", "6700"),  # no AID
        ("00 A4 04 0C 11 " + "00" * 17, "6700"),  # AID longer than 16
        ("00 A4 02 0C 01 0A", "6700"),  # FID of 1 byte
        ("00 A4 02 0C 03 000A00", "6700"),
    ],
)
def test_select_bad_parameters(card: SimulatedCard, apdu: str, want: str) -> None:
    select_ap(card)
    assert sw(card, apdu) == want


def test_select_ef_missing_or_without_application_is_6a82(card: SimulatedCard) -> None:
    assert select_ef(card, "000A") == "6A82"  # the MF holds no EF
    select_ap(card)
    assert select_ef(card, "0099") == "6A82"
    assert select_ef(card, "000A") == "9000"


def test_select_mf_as_a_real_card(card: SimulatedCard) -> None:
    """Spec §1: 6A86 after a cold reset; 9000 that changes nothing with an AP current."""
    assert sw(card, "00 A4 00 00") == "6A86"
    assert sw(card, "00 A4 00 0C") == "6A86"
    select_ap(card)
    assert verify(card, "001B", "JPKITEST01") == "9000"
    assert sw(card, "00 A4 00 00") == "9000"
    # the DF and its verified password survive (what a phone relay's fake reset relies on)
    select_ef(card, "0001")
    assert sw(card, "00 B0 00 00 04") == "9000"
    assert sw(card, "00 A4 00 0C 02 3F00") == "6A82"  # 3F00 by FID
    assert sw(card, "00 A4 02 0C 02 3F00") == "6A82"
    card.reset()
    assert sw(card, "00 A4 00 00") == "6A86"


# --- READ BINARY -----------------------------------------------------------------------------


@pytest.mark.parametrize(("fid", "attr"), [("000A", "auth_cert"), ("000B", "auth_ca_cert")])
def test_read_certificate_sized_from_der_header(card: SimulatedCard, fid: str, attr: str) -> None:
    select_ap(card)
    select_ef(card, fid)
    head = tx(card, "00 B0 00 00 04")
    assert head[-2:] == b"\x90\x00" and head[:2] == b"\x30\x82"
    size = int.from_bytes(head[2:4], "big") + 4
    data = read_all(card, fid)
    assert data == getattr(card.profile, attr)
    assert len(data) == size
    x509.load_der_x509_certificate(data)


def test_read_binary_chunks_tail_and_end(card: SimulatedCard) -> None:
    select_ap(card)
    cert = card.profile.auth_cert
    n = len(cert)
    assert n > 512
    select_ef(card, "000A")
    assert tx(card, "00 B0 00 00 00") == cert[:256] + b"\x90\x00"  # Le 00 = 256
    assert tx(card, "00 B0 01 00 00") == cert[256:512] + b"\x90\x00"  # P1 carries offset bits
    tail_at = n - 10
    r = tx(card, f"00 B0 {tail_at >> 8:02X} {tail_at & 0xFF:02X} 00")
    assert r == cert[tail_at:] + b"\x90\x00"  # short tail with 9000
    assert sw(card, f"00 B0 {n >> 8:02X} {n & 0xFF:02X} 01") == "6B00"  # offset at the end
    assert sw(card, "00 B0 7F FF 00") == "6B00"  # far past the end (15-bit offset)


def test_read_binary_extended_le_returns_up_to_the_end(card: SimulatedCard) -> None:
    select_ap(card)
    select_ef(card, "000A")
    assert tx(card, "00 B0 00 00 00 00 00") == card.profile.auth_cert + b"\x90\x00"


def test_read_binary_length_and_state_errors(card: SimulatedCard) -> None:
    select_ap(card)
    assert sw(card, "00 B0 00 00 00") == "6986"  # no current EF
    select_ef(card, "000A")
    assert sw(card, "00 B0 00 00") == "6700"  # no Le
    assert sw(card, "00 B0 00 00 01 00") == "6700"  # command data


def test_read_binary_short_ef_form(card: SimulatedCard) -> None:
    select_ap(card)
    r = tx(card, "00 B0 8A 00 00")  # SFI 0A = auth certificate, P2 = offset
    assert r == card.profile.auth_cert[:256] + b"\x90\x00"
    assert tx(card, "00 B0 00 04 04") == card.profile.auth_cert[4:8] + b"\x90\x00"  # now current
    assert sw(card, "00 B0 8A 10 04")[-4:] == "9000"
    assert sw(card, "00 B0 99 00 00") == "6A82"  # no SFI 19
    assert sw(card, "00 B0 AA 00 00") == "6A86"  # bits 7-6 of P1 must be 0
    assert sw(card, "00 B0 80 00 00") == "6A86"  # SFI 0


@pytest.mark.parametrize("fid", ["0017", "001A", "0018", "001B"])
def test_read_of_key_files_is_6981(card: SimulatedCard, fid: str) -> None:
    select_ap(card)
    assert select_ef(card, fid) == "9000"
    assert sw(card, "00 B0 00 00 00") == "6981"


def test_signing_certificate_needs_the_signing_password(card: SimulatedCard) -> None:
    select_ap(card)
    select_ef(card, "0001")
    assert sw(card, "00 B0 00 00 04") == "6982"
    assert verify(card, "0018", "1234") == "9000"  # the auth PIN does not open it
    select_ef(card, "0001")
    assert sw(card, "00 B0 00 00 04") == "6982"
    assert verify(card, "001B", "JPKITEST01") == "9000"
    assert read_all(card, "0001") == card.profile.sign_cert  # kept across EF selects
    select_ap(card)  # re-selecting the DF clears it
    select_ef(card, "0001")
    assert sw(card, "00 B0 00 00 04") == "6982"
    assert verify(card, "001B", "JPKITEST01") == "9000"
    card.reset()  # so does a reset
    select_ap(card)
    select_ef(card, "0001")
    assert sw(card, "00 B0 00 00 04") == "6982"


def test_token_info_label(card: SimulatedCard) -> None:
    select_ap(card)
    data = read_all(card, "0006")
    assert data[:32] == b"JPKIAPICCTOKEN2".ljust(32, b" ")


# --- VERIFY ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fid", "tries"), [("0018", 3), ("001B", 5)])
def test_empty_verify_reports_tries_without_spending(
    card: SimulatedCard, fid: str, tries: int
) -> None:
    select_ap(card)
    select_ef(card, fid)
    for _ in range(tries + 2):
        assert sw(card, "00 20 00 80") == f"63C{tries:X}"


@pytest.mark.parametrize(
    ("fid", "good", "bad", "tries"),
    [("0018", "1234", "9999", 3), ("001B", "JPKITEST01", "WRONGPASS1", 5)],
)
def test_wrong_pin_counts_down_blocks_and_stays_blocked(
    card: SimulatedCard, fid: str, good: str, bad: str, tries: int
) -> None:
    select_ap(card)
    for left in range(tries - 1, -1, -1):
        assert verify(card, fid, bad) == f"63C{left:X}"  # the last spent try answers 63C0
    assert verify(card, fid, bad) == "6984"
    assert verify(card, fid, good) == "6984"
    select_ef(card, fid)
    assert sw(card, "00 20 00 80") == "63C0"  # the status query on a blocked key (spec §3)
    # a restarted simulator remembers it
    again = open_simulated_card(card.path)
    select_ap(again)
    assert verify(again, fid, good) == "6984"


def test_good_verify_resets_counter_and_empty_verify_still_answers_63cx(
    card: SimulatedCard,
) -> None:
    select_ap(card)
    assert verify(card, "0018", "0000") == "63C2"
    assert verify(card, "0018", "1234") == "9000"
    assert sw(card, "00 20 00 80") == "63C3"  # does not tell that we are logged in
    assert ProfileStore(card.path).load_state().tries_left[KeyId.AUTH_PIN] == 3
    select_ef(card, "0017")
    assert sw(card, "80 2A 00 80 05 0102030405 00")[-4:] == "9000"  # still verified


def test_wrong_verify_after_good_one_drops_the_security_state(card: SimulatedCard) -> None:
    select_ap(card)
    assert verify(card, "0018", "1234") == "9000"
    assert verify(card, "0018", "4321") == "63C2"
    select_ef(card, "0017")
    assert sw(card, "80 2A 00 80 05 0102030405 00") == "6982"


def test_counters_are_separate(card: SimulatedCard) -> None:
    select_ap(card)
    assert verify(card, "0018", "5678") == "63C2"  # the support PIN is not the auth PIN
    select_ap(card, TEXT)
    select_ef(card, "0011")
    assert sw(card, "00 20 00 80") == "63C3"
    assert verify(card, "0011", "1234") == "63C2"
    select_ap(card)
    select_ef(card, "001B")
    assert sw(card, "00 20 00 80") == "63C5"
    select_ef(card, "0018")
    assert sw(card, "00 20 00 80") == "63C2"


def test_verify_short_ef_form(card: SimulatedCard) -> None:
    select_ap(card)
    assert sw(card, "00 20 00 98") == "63C3"  # 80 | SFI 18 without selecting it
    assert sw(card, "00 20 00 98 04 31323334") == "9000"
    assert sw(card, "00 20 00 9B") == "63C5"


@pytest.mark.parametrize(
    ("apdu", "want"),
    [
        ("00 20 01 80 04 31323334", "6A86"),  # P1
        ("00 20 00 00 04 31323334", "6A86"),  # global reference
        ("00 20 00 A0", "6A86"),  # bits 7-6 of the SFI byte
        ("00 20 00 8A", "6A88"),  # SFI 0A is a certificate, not a key
        ("00 20 00 99", "6A88"),  # no such file
    ],
)
def test_verify_bad_references(card: SimulatedCard, apdu: str, want: str) -> None:
    select_ap(card)
    assert sw(card, apdu) == want


def test_verify_p2_80_needs_a_selected_key_file(card: SimulatedCard) -> None:
    select_ap(card)
    assert sw(card, "00 20 00 80") == "6A88"
    select_ef(card, "000A")
    assert sw(card, "00 20 00 80 04 31323334") == "6A88"


def test_counter_is_persisted_before_the_comparison(
    card: SimulatedCard, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    real = card_mod.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        # At the moment of comparison the spent try is already on disk.
        seen.append(ProfileStore(card.path).load_state().tries_left[KeyId.AUTH_PIN])
        return real(a, b)

    monkeypatch.setattr(card_mod.hmac, "compare_digest", spy)
    select_ap(card)
    assert verify(card, "0018", "1234") == "9000"
    assert verify(card, "0018", "9999") == "63C2"
    assert seen == [2, 2]  # compared in constant time, after persisting


# --- CHANGE REFERENCE DATA ---------------------------------------------------------------------


def test_change_pin_after_verify_and_persisted(card: SimulatedCard) -> None:
    select_ap(card)
    select_ef(card, "0018")
    assert sw(card, "00 24 01 80 04 39383736") == "6982"  # not verified
    assert verify(card, "0018", "1234") == "9000"
    assert sw(card, "00 24 01 80 04 39383736") == "9000"
    again = open_simulated_card(card.path)
    select_ap(again)
    assert verify(again, "0018", "1234") == "63C2"
    assert verify(again, "0018", "9876") == "9000"


@pytest.mark.parametrize(
    ("fid", "old", "new", "want"),
    [
        ("0018", "1234", b"123", "6A80"),
        ("0018", "1234", b"12345", "6A80"),
        ("0018", "1234", b"12a4", "6A80"),
        ("001B", "JPKITEST01", b"abcdef", "6A80"),  # lower case is not sent by clients
        ("001B", "JPKITEST01", b"ABC12", "6A80"),  # too short
        ("001B", "JPKITEST01", b"A" * 17, "6A80"),  # too long
        ("001B", "JPKITEST01", b"NEWPASS99", "9000"),
        ("001B", "JPKITEST01", b"A" * 16, "9000"),
    ],
)
def test_change_pin_format(card: SimulatedCard, fid: str, old: str, new: bytes, want: str) -> None:
    select_ap(card)
    assert verify(card, fid, old) == "9000"
    assert sw(card, f"00 24 01 80 {len(new):02X} {new.hex()}") == want


def test_change_pin_other_errors(card: SimulatedCard) -> None:
    select_ap(card)
    assert verify(card, "0018", "1234") == "9000"
    assert sw(card, "00 24 00 80 08 3132333435363738") == "6A86"  # old+new form
    assert sw(card, "00 24 01 80") == "6700"
    assert sw(card, "00 24 01 8A 04 31323334") == "6A88"
    select_ap(card, TEXT)
    assert verify(card, "0014", card.profile.person.my_number) == "9000"
    assert sw(card, "00 24 01 80 04 31323334") == "6985"  # collation keys are not changeable


# --- COMPUTE DIGITAL SIGNATURE -----------------------------------------------------------------


def _digest_info(alg: hashes.HashAlgorithm, data: bytes) -> bytes:
    prefixes = {
        "sha1": "3021300906052b0e03021a05000414",
        "sha256": SHA256_PREFIX,
        "sha384": "3041300d060960864801650304020205000430",
        "sha512": "3051300d060960864801650304020305000440",
    }
    return bytes.fromhex(prefixes[alg.name]) + hashlib.new(alg.name, data).digest()


@pytest.mark.parametrize(
    ("key_fid", "pin_fid", "pin", "cert"),
    [("0017", "0018", "1234", "auth_cert"), ("001A", "001B", "JPKITEST01", "sign_cert")],
)
@pytest.mark.parametrize("alg", [hashes.SHA1(), hashes.SHA256(), hashes.SHA384(), hashes.SHA512()])
def test_signature_verifies_with_the_certificate(
    card: SimulatedCard,
    key_fid: str,
    pin_fid: str,
    pin: str,
    cert: str,
    alg: hashes.HashAlgorithm,
) -> None:
    data = b"jpki simulator signing test"
    di = _digest_info(alg, data)
    select_ap(card)
    select_ef(card, key_fid)
    assert sw(card, f"80 2A 00 80 {len(di):02X} {di.hex()} 00") == "6982"
    assert verify(card, pin_fid, pin) == "9000"
    select_ef(card, key_fid)
    r = tx(card, f"80 2A 00 80 {len(di):02X} {di.hex()} 00")
    assert r[-2:] == b"\x90\x00" and len(r) == 258
    public = x509.load_der_x509_certificate(getattr(card.profile, cert)).public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(r[:-2], data, padding.PKCS1v15(), alg)


def test_signature_is_type1_padding_over_the_bytes_as_sent(card: SimulatedCard) -> None:
    select_ap(card)
    assert verify(card, "0018", "1234") == "9000"
    select_ef(card, "0017")
    public = x509.load_der_x509_certificate(card.profile.auth_cert).public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    n, e = public.public_numbers().n, public.public_numbers().e
    for payload in (b"\x01", b"not a DigestInfo", b"\xab" * 245):
        r = tx(card, f"80 2A 00 80 {len(payload):02X} {payload.hex()} 00")
        assert r[-2:] == b"\x90\x00"
        em = pow(int.from_bytes(r[:-2], "big"), e, n).to_bytes(256, "big")
        assert em == b"\x00\x01" + b"\xff" * (253 - len(payload)) + b"\x00" + payload


def test_fast_and_raw_signing_paths_agree(card: SimulatedCard) -> None:
    key = card.profile.private_key("auth")
    di = _digest_info(hashes.SHA256(), b"x")
    fast = pkcs1_type1_sign(key, di)  # OpenSSL path (a known DigestInfo)
    priv = key.private_numbers()
    em = b"\x00\x01" + b"\xff" * (253 - len(di)) + b"\x00" + di
    assert fast == pow(int.from_bytes(em, "big"), priv.d, priv.public_numbers.n).to_bytes(
        256, "big"
    )


@pytest.mark.parametrize(
    ("apdu", "want"),
    [
        ("80 2A 00 80 00", "6700"),  # no data (Le only)
        ("80 2A 00 80 F6 " + "00" * 246 + " 00", "6700"),  # 246 > 245 bytes
        ("80 2A 06 80 05 0102030405 00", "6A86"),  # P1 beyond the six schemes
        ("80 2A 02 80 05 0102030405 00", "6700"),  # P1 02 takes exactly 32 bytes
        ("80 2A 04 80 05 0102030405 00", "6700"),  # P1 04 likewise
        ("80 2A 00 00 05 0102030405 00", "6A86"),  # P2
        ("80 2A 00 8A 05 0102030405 00", "6A88"),  # SFI 0A is not a key
        ("80 2A 00 80 05 0102030405 80", "6C00"),  # Le shorter than the signature
        ("00 2A 00 80 05 0102030405 00", "6E00"),  # wrong class for this INS
    ],
)
def test_sign_errors(card: SimulatedCard, apdu: str, want: str) -> None:
    select_ap(card)
    assert verify(card, "0018", "1234") == "9000"
    select_ef(card, "0017")
    assert sw(card, apdu) == want


def test_sign_short_ef_form_and_key_checks(card: SimulatedCard) -> None:
    select_ap(card)
    assert verify(card, "0018", "1234") == "9000"
    select_ef(card, "000A")
    assert sw(card, "80 2A 00 80 05 0102030405 00") == "6985"  # current EF is not a key
    assert sw(card, "80 2A 00 97 05 0102030405 00") == "9000"  # 80 | SFI 17
    assert sw(card, "80 2A 00 9A 05 0102030405 00") == "6982"  # signing key needs its own PIN
    assert sw(card, "80 2A 00 97 05 0102030405")[-4:] == "9000"  # Le absent: still answered


# --- CLA / INS / malformed ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("apdu", "want"),
    [
        ("", "6700"),
        ("00", "6700"),
        ("00 A4 04", "6700"),
        (f"00 A4 04 0C 0A {JPKI[:8]}", "6700"),  # Lc larger than the data
        (f"00 A4 04 0C 05 {JPKI}", "6700"),  # Lc smaller than the data
        ("00 CA 01 00 00", "6D00"),  # GET DATA: not supported
        ("00 C0 00 00 00", "6D00"),  # GET RESPONSE: never needed
        ("80 50 00 00 08 0000000000000000", "6D00"),  # GP INITIALIZE UPDATE
        ("00 B1 00 00 00", "6D00"),  # odd INS
        ("FF CA 00 00 00", "6E00"),  # reader pseudo-APDU
        (f"0C A4 04 0C 0A {JPKI}", "6E00"),  # secure messaging
        (f"04 A4 04 0C 0A {JPKI}", "6E00"),
        (f"10 A4 04 0C 0A {JPKI}", "6E00"),  # command chaining
        (f"80 A4 04 0C 0A {JPKI}", "6E00"),  # proprietary class for an ISO INS
        (f"01 A4 04 0C 0A {JPKI}", "6881"),  # logical channel 1
        (f"03 A4 04 0C 0A {JPKI}", "6881"),
    ],
)
def test_class_instruction_and_length_errors(card: SimulatedCard, apdu: str, want: str) -> None:
    assert sw(card, apdu) == want


def test_opensc_binding_sequence(card: SimulatedCard) -> None:
    """card-protocol.md §8: what pkcs15-tool sends with the jpki driver."""
    select_ap(card)
    for fid, tries in (("0018", 3), ("001B", 5)):
        assert select_ef(card, fid) == "9000"
        assert sw(card, "00 20 00 80") == f"63C{tries}"
    assert verify(card, "001B", "JPKITEST01") == "9000"
    for fid, attr in (
        ("000A", "auth_cert"),
        ("0001", "sign_cert"),
        ("000B", "auth_ca_cert"),
        ("0002", "sign_ca_cert"),
    ):
        select_ef(card, fid)
        head = tx(card, "00 B0 00 00 04")
        size = int.from_bytes(head[2:4], "big") + 4
        got = head[:4]
        while len(got) < size:
            want = min(256, size - len(got))
            r = tx(card, f"00 B0 {len(got) >> 8:02X} {len(got) & 0xFF:02X} {want & 0xFF:02X}")
            assert r[-2:] == b"\x90\x00"
            got += r[:-2]
        assert got == getattr(card.profile, attr)


def test_closed_card_raises_card_removed(card: SimulatedCard) -> None:
    card.close()
    with pytest.raises(CardRemovedError):
        card.process(bytes.fromhex(f"00A4040C0A{JPKI}"))
    with pytest.raises(CardRemovedError):
        card.reset()


def test_reset_rereads_the_state_file(card: SimulatedCard) -> None:
    select_ap(card)
    for _ in range(3):
        verify(card, "0018", "0000")
    ProfileStore(card.path).reset_state()  # e.g. `jpki sim reset` while the card is open
    card.reset()
    select_ap(card)
    assert verify(card, "0018", "1234") == "9000"


def test_connection_through_the_in_process_transport(sim_profile: Path) -> None:
    from jpki.transport.simulated import SimulatedConnection

    with SimulatedConnection(open_simulated_card(sim_profile)) as conn:
        assert conn.atr == bytes.fromhex("3BE000FF8131FE4514")
        assert conn.transmit(bytes.fromhex(f"00A4040C0A{JPKI}")) == b"\x90\x00"


def test_model_bug_answers_6f00_not_an_exception(
    card: SimulatedCard, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(_apdu: object) -> bytes:
        raise KeyError("bug")

    monkeypatch.setitem(card._handlers, 0xB0, (0x00, boom))  # type: ignore[index]
    assert tx(card, "00 B0 00 00 00") == b"\x6f\x00"
    assert sw(card, f"00 A4 04 0C 0A {JPKI}") == "9000"  # the card keeps working
