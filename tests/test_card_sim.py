"""End to end: the card client against the real simulator (jpki.sim) through SimulatedConnection."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from jpki.card import (
    CertSlot,
    IntegrityStatus,
    JpkiAp,
    KeyKind,
    TextAp,
    TokenKind,
    VisualAp,
    collation_b,
)
from jpki.card.protocol import CardProtocol
from jpki.errors import (
    JpkiError,
    LastTryWrongPin,
    PinBlocked,
    PinFormatError,
    PinGuardError,
    SecurityStatusError,
    WrongPin,
)
from jpki.secret import Secret
from jpki.sim import Corruption, FaultConfig, open_simulated_card
from jpki.sim.create import create_profile
from jpki.sim.profile import KeyId, ProfileStore
from jpki.transport.simulated import SimulatedConnection
from sim_trust import sim_keyring

AUTH_PIN, SIGN_PIN, SUPPORT_PIN = Secret("1234"), Secret("JPKITEST01"), Secret("5678")


def connect(path: Path, faults: FaultConfig | None = None) -> CardProtocol:
    return CardProtocol(SimulatedConnection(open_simulated_card(path, faults=faults)))


@pytest.fixture
def proto(sim_profile: Path) -> Iterator[CardProtocol]:
    p = connect(sim_profile)
    yield p
    p.connection.close()


def rsa_pub(der: bytes) -> rsa.RSAPublicKey:
    key = x509.load_der_x509_certificate(der).public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    return key


# --- JPKI AP ------------------------------------------------------------------------------


def test_token_info_and_fresh_counters(proto: CardProtocol) -> None:
    jpki = JpkiAp(proto)
    assert jpki.token_info().kind is TokenKind.MY_NUMBER_CARD
    assert jpki.pin_status(KeyKind.AUTH).tries_left == 3
    assert jpki.pin_status(KeyKind.SIGNING).tries_left == 5
    assert jpki.pin_status(KeyKind.AUTH).tries_left == 3  # reading spends nothing


def test_certificates_match_the_profile(proto: CardProtocol, sim_profile: Path) -> None:
    profile = ProfileStore(sim_profile).profile
    jpki = JpkiAp(proto)
    assert jpki.read_certificate(CertSlot.AUTH) == profile.auth_cert
    assert jpki.read_certificate(CertSlot.AUTH_CA) == profile.auth_ca_cert
    assert jpki.read_certificate(CertSlot.SIGNING_CA) == profile.sign_ca_cert
    with pytest.raises(SecurityStatusError):
        jpki.read_certificate(CertSlot.SIGNING)
    jpki.verify_pin(KeyKind.SIGNING, Secret("jpkitest01"))  # lower case is upper-cased
    assert jpki.read_certificate(CertSlot.SIGNING) == profile.sign_cert


@pytest.mark.parametrize(("key", "pin"), [(KeyKind.AUTH, AUTH_PIN), (KeyKind.SIGNING, SIGN_PIN)])
@pytest.mark.parametrize("hash_name", ["sha1", "sha256", "sha384", "sha512"])
def test_sign_verifies_with_certificate(
    proto: CardProtocol, key: KeyKind, pin: Secret, hash_name: str
) -> None:
    jpki = JpkiAp(proto)
    with pytest.raises(SecurityStatusError):
        jpki.sign_data(key, b"challenge")
    jpki.verify_pin(key, pin)
    der = jpki.read_certificate(key.cert_slot)
    signature = jpki.sign_data(key, b"challenge", hash_name)
    algo = {"sha1": hashes.SHA1(), "sha256": hashes.SHA256(), "sha384": hashes.SHA384(),
            "sha512": hashes.SHA512()}[hash_name]  # fmt: skip
    rsa_pub(der).verify(signature, b"challenge", padding.PKCS1v15(), algo)


# CI installs the openssl CLI (.ci/run): there its absence is a failure, not a skip.
@pytest.mark.skipif(
    shutil.which("openssl") is None
    and os.environ.get("CI", "").lower() not in ("1", "true", "yes"),
    reason="openssl CLI not installed",
)
def test_signature_verifies_with_openssl(proto: CardProtocol, tmp_path: Path) -> None:
    jpki = JpkiAp(proto)
    jpki.verify_pin(KeyKind.AUTH, AUTH_PIN)
    data = tmp_path / "data"
    data.write_bytes(b"openssl interop")
    (tmp_path / "sig").write_bytes(jpki.sign_data(KeyKind.AUTH, data.read_bytes()))
    pub = rsa_pub(jpki.read_certificate(CertSlot.AUTH)).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "pub.pem").write_bytes(pub)
    out = subprocess.run(
        ["openssl", "dgst", "-sha256", "-verify", str(tmp_path / "pub.pem"),
         "-signature", str(tmp_path / "sig"), str(data)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0 and "Verified OK" in out.stdout


def test_selecting_another_df_clears_the_pin(proto: CardProtocol) -> None:
    jpki = JpkiAp(proto)
    jpki.verify_pin(KeyKind.AUTH, AUTH_PIN)
    TextAp(proto)
    jpki.select()
    with pytest.raises(SecurityStatusError):
        jpki.sign_data(KeyKind.AUTH, b"x")


def test_wrong_pins_guard_and_block_persist(sim_profile: Path) -> None:
    proto = connect(sim_profile)
    jpki = JpkiAp(proto)
    with pytest.raises(WrongPin) as e1:
        jpki.verify_pin(KeyKind.AUTH, Secret("0000"))
    assert e1.value.retries_left == 2
    with pytest.raises(WrongPin) as e2:
        jpki.verify_pin(KeyKind.AUTH, Secret("0000"))
    assert e2.value.retries_left == 1
    # Guard: nothing is spent, even with the right PIN.
    with pytest.raises(PinGuardError):
        jpki.verify_pin(KeyKind.AUTH, AUTH_PIN)
    assert jpki.pin_status(KeyKind.AUTH).tries_left == 1
    proto.connection.close()

    # A restarted simulator remembers the counter.
    proto = connect(sim_profile)
    jpki = JpkiAp(proto)
    assert jpki.pin_status(KeyKind.AUTH).tries_left == 1
    with pytest.raises(LastTryWrongPin):
        jpki.verify_pin(KeyKind.AUTH, Secret("0000"), force=True)
    assert jpki.pin_status(KeyKind.AUTH).blocked
    with pytest.raises(PinBlocked):
        jpki.verify_pin(KeyKind.AUTH, AUTH_PIN, force=True)
    proto.connection.close()
    assert ProfileStore(sim_profile).load_state().tries_left[KeyId.AUTH_PIN] == 0
    # The signing password is a separate counter.
    proto = connect(sim_profile)
    assert JpkiAp(proto).pin_status(KeyKind.SIGNING).tries_left == 5


def test_good_verify_resets_counter(proto: CardProtocol) -> None:
    jpki = JpkiAp(proto)
    with pytest.raises(WrongPin):
        jpki.verify_pin(KeyKind.SIGNING, Secret("WRONG1"))
    assert jpki.pin_status(KeyKind.SIGNING).tries_left == 4
    jpki.verify_pin(KeyKind.SIGNING, SIGN_PIN)
    assert jpki.pin_status(KeyKind.SIGNING).tries_left == 5


def test_change_pin_persists(sim_profile: Path) -> None:
    proto = connect(sim_profile)
    JpkiAp(proto).change_pin(KeyKind.AUTH, AUTH_PIN, Secret("4321"))
    proto.connection.close()
    jpki = JpkiAp(connect(sim_profile))
    with pytest.raises(WrongPin):
        jpki.verify_pin(KeyKind.AUTH, AUTH_PIN)
    jpki.verify_pin(KeyKind.AUTH, Secret("4321"))


# --- text AP / visual AP --------------------------------------------------------------------


def test_text_ap_card_info(proto: CardProtocol, sim_profile: Path) -> None:
    person = ProfileStore(sim_profile).profile.person
    text_ap = TextAp(proto, keyring=sim_keyring(sim_profile))
    with pytest.raises(SecurityStatusError):
        text_ap.read_my_number()
    assert text_ap.pin_status().tries_left == 3
    text_ap.verify_pin(SUPPORT_PIN)
    info = text_ap.read_card_info()
    assert info.my_number.reveal() == person.my_number
    assert person.my_number not in repr(info)
    assert (info.name, info.address, info.birth_date) == (
        person.name,
        person.address,
        person.birth_date,
    )
    assert info.integrity.status is IntegrityStatus.VALID, info.integrity.reasons


def test_text_ap_long_form_profile(tmp_path: Path) -> None:
    path = tmp_path / "long"
    create_profile(path, text_long_form=True)
    text_ap = TextAp(connect(path), keyring=sim_keyring(path))
    text_ap.verify_pin(SUPPORT_PIN)
    assert text_ap.verify_integrity().status is IntegrityStatus.VALID


def test_text_ap_collations(proto: CardProtocol, sim_profile: Path) -> None:
    profile = ProfileStore(sim_profile).profile
    text_ap = TextAp(proto)
    text_ap.unlock_collation_a(profile.person.my_number)
    assert text_ap.read_my_number().reveal() == profile.person.my_number
    with pytest.raises(SecurityStatusError):
        text_ap.read_basic_info()
    # Integrity needs the PIN: with a collation only it is indeterminate, not an error.
    assert text_ap.verify_integrity().status is IntegrityStatus.INDETERMINATE
    b = collation_b(profile.person.birth_date, profile.expiry_date.year, profile.security_code)
    text_ap.unlock_collation_b(b)
    assert text_ap.read_basic_info().name == profile.person.name


def test_text_ap_collation_status(proto: CardProtocol) -> None:
    text_ap = TextAp(proto)
    for which in ("A", "b"):
        assert text_ap.collation_status(which).tries_left == 10
    with pytest.raises(PinFormatError):
        text_ap.collation_status("Z")


def test_visual_birth_date_key(proto: CardProtocol, sim_profile: Path) -> None:
    birth = ProfileStore(sim_profile).profile.person.birth_date
    visual = VisualAp(proto)
    before = visual.collation_status("birth").tries_left
    assert before is not None and before > 1
    with pytest.raises(WrongPin):
        visual.unlock_birth_date(birth.replace(year=birth.year - 1))
    assert visual.collation_status("birth").tries_left == before - 1
    visual.unlock_birth_date(birth)
    assert visual.collation_status("birth").tries_left == before


def test_visual_ap_with_collation_a_and_b(proto: CardProtocol, sim_profile: Path) -> None:
    profile = ProfileStore(sim_profile).profile
    expected = IntegrityStatus.VALID
    visual = VisualAp(proto, keyring=sim_keyring(sim_profile))
    with pytest.raises(SecurityStatusError):
        visual.read_surface()
    visual.unlock_collation_a(profile.person.my_number)
    surface = visual.read_surface()
    assert surface.birth_date == profile.person.birth_date
    assert surface.expiry_date == profile.expiry_date
    assert surface.face_jp2.startswith(b"\x00\x00\x00\x0cjP  ")
    assert visual.check(surface).status is expected
    assert visual.check(visual.read_my_number_image()).status is expected

    visual.select()
    with pytest.raises(WrongPin):
        visual.unlock_collation_b(Secret("00000000000000"))
    b = collation_b(profile.person.birth_date, profile.expiry_date.year, profile.security_code)
    visual.unlock_collation_b(b)
    assert visual.verify_surface().status is expected
    with pytest.raises(SecurityStatusError):
        visual.read_my_number_image()  # EF 0005 needs collation A


def test_visual_images_open_in_pillow(proto: CardProtocol, sim_profile: Path) -> None:
    import io

    from PIL import Image  # Pillow is a test dependency: missing, this fails (no skip)

    visual = VisualAp(proto)
    visual.unlock_collation_a(ProfileStore(sim_profile).profile.person.my_number)
    surface = visual.read_surface()
    for blob in (surface.name_png, surface.address_png):
        assert Image.open(io.BytesIO(blob)).format == "PNG"


# --- faults: a misbehaving chip ends in JpkiError, never anything else -----------------------


@pytest.mark.parametrize("corruption", list(Corruption))
@pytest.mark.parametrize("ins", [0xB0, 0x20, 0xA4])
def test_corrupted_answers_raise_only_jpki_errors(
    sim_profile: Path, corruption: Corruption, ins: int
) -> None:
    faults = FaultConfig(corrupt_ins=frozenset({ins}), corruption=corruption)
    proto = connect(sim_profile, faults)
    try:
        jpki = JpkiAp(proto)
        jpki.token_info()
        jpki.pin_status(KeyKind.AUTH)
        jpki.read_certificate(CertSlot.AUTH)
        text_ap = TextAp(proto)
        text_ap.verify_pin(SUPPORT_PIN)
        text_ap.read_card_info()
    except JpkiError:
        pass


# --- the same client over a real socket: vpcd reader side ↔ simulator card side ---------------


def test_client_over_vpcd_bridge(sim_profile: Path) -> None:
    from jpki.sim.vpcd_card import VpcdCardSide
    from jpki.transport.vpcd import VpcdListener

    with VpcdListener("127.0.0.1", 0, timeout=5.0) as listener:
        side = VpcdCardSide(
            open_simulated_card(sim_profile), *listener.address, retry_interval=0.05
        )
        side.start()
        try:
            with listener.accept_connection(timeout=5) as conn:
                jpki = JpkiAp(conn)
                assert jpki.token_info().kind is TokenKind.MY_NUMBER_CARD
                der = jpki.read_certificate(CertSlot.AUTH)
                jpki.verify_pin(KeyKind.AUTH, AUTH_PIN)
                signature = jpki.sign_data(KeyKind.AUTH, b"over the bridge")
                rsa_pub(der).verify(
                    signature, b"over the bridge", padding.PKCS1v15(), hashes.SHA256()
                )
                text_ap = TextAp(conn, keyring=sim_keyring(sim_profile))
                text_ap.verify_pin(SUPPORT_PIN)
                status = text_ap.read_card_info().integrity.status
                assert status is IntegrityStatus.VALID
        finally:
            side.stop()


def test_support_pin_guard_block_and_persistence(sim_profile: Path) -> None:
    """Issue 7: the input-support PIN has 3 tries and the same guard as the JPKI PINs."""
    proto = connect(sim_profile)
    text_ap = TextAp(proto)
    assert text_ap.pin_status().tries_left == 3
    for left in (2, 1):
        with pytest.raises(WrongPin) as wrong:
            text_ap.verify_pin(Secret("0000"))
        assert wrong.value.retries_left == left
    with pytest.raises(PinGuardError):
        text_ap.verify_pin(SUPPORT_PIN)  # refused before anything is sent
    assert text_ap.pin_status().tries_left == 1
    proto.connection.close()
    proto = connect(sim_profile)  # a restarted simulator remembers the counter
    text_ap = TextAp(proto)
    assert text_ap.pin_status().tries_left == 1
    text_ap.verify_pin(SUPPORT_PIN, force=True)  # a good VERIFY restores the counter
    assert text_ap.pin_status().tries_left == 3
    for _ in range(2):
        with pytest.raises(WrongPin):
            text_ap.verify_pin(Secret("0000"))
    with pytest.raises(LastTryWrongPin):
        text_ap.verify_pin(Secret("0000"), force=True)
    with pytest.raises(PinBlocked):
        text_ap.verify_pin(SUPPORT_PIN, force=True)
    proto.connection.close()
    assert ProfileStore(sim_profile).load_state().tries_left[KeyId.SUPPORT_PIN] == 0
    # The JPKI PINs are separate counters.
    assert JpkiAp(connect(sim_profile)).pin_status(KeyKind.AUTH).tries_left == 3


def test_visual_collation_guard(sim_profile: Path) -> None:
    profile = ProfileStore(sim_profile).profile
    proto = connect(sim_profile)
    visual = VisualAp(proto, keyring=sim_keyring(sim_profile))
    wrong = Secret("0" * 14)
    tries = visual.collation_status("B").tries_left
    assert tries is not None and tries > 1
    for _ in range(tries - 1):
        with pytest.raises(WrongPin):
            visual.unlock_collation_b(wrong)
    with pytest.raises(PinGuardError):
        visual.unlock_collation_b(
            collation_b(profile.person.birth_date, profile.expiry_date.year, profile.security_code)
        )
    visual.unlock_collation_a(profile.person.my_number)  # a separate counter
    assert visual.verify_surface().status is IntegrityStatus.VALID
