"""JPKI AP details of the simulator from the spec (§2–§4), token kinds, the state lock, dumps."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from jpki.sim import SimulatedCard, open_simulated_card
from jpki.sim.create import create_profile
from jpki.sim.profile import KeyId, ProfileStore
from test_sim_card import JPKI, TEXT, read_all, select_ap, select_ef, sw, tx, verify

SHA256_DI = bytes.fromhex("3031300d060960864801650304020105000420")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def card(sim_profile: Path) -> SimulatedCard:
    c = open_simulated_card(sim_profile)
    c.reset()
    return c


def test_token_info_is_a_160_byte_ck_token_info(card: SimulatedCard) -> None:
    select_ap(card)
    ti = read_all(card, "0006")
    assert len(ti) == 160
    assert ti[:32] == b"JPKIAPICCTOKEN2".ljust(32, b" ")
    ints = [int.from_bytes(ti[o : o + 4], "big") for o in range(96, 140, 4)]
    flags, _max_s, _s, _max_rw, _rw, max_pin, min_pin = ints[:7]
    assert flags & 0x400  # CKF_TOKEN_INITIALIZED
    assert (min_pin, max_pin) == (4, 16)
    assert ti[140:144] == b"0301"  # ASCII version slots, as physical cards have them


def test_certificate_availability(card: SimulatedCard, tmp_path: Path) -> None:
    select_ap(card)
    assert read_all(card, "0008") == b"\x8f\x8f\x00"
    create_profile(tmp_path / "young", sign_cert=False)
    young = open_simulated_card(tmp_path / "young", durable=False)
    select_ap(young)
    assert read_all(young, "0008") == b"\x00\x8f\x00"
    assert select_ef(young, "0001") == "6A82"
    assert verify(young, "001B", "JPKITEST01") == "9000"  # the password still exists
    assert sw(young, "80 2A 00 9A 05 0102030405 00") == "6A88"  # no signing key


def _auth_key(card: SimulatedCard) -> rsa.RSAPublicKey:
    key = x509.load_der_x509_certificate(card.profile.auth_cert).public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def _sign(card: SimulatedCard, p1: int, data: bytes, p2: str = "97") -> bytes:
    r = tx(card, f"80 2A {p1:02X} {p2} {len(data):02X} {data.hex()} 00")
    assert r[-2:] == b"\x90\x00", r[-2:].hex()
    return r[:-2]


def test_the_six_signing_schemes(card: SimulatedCard) -> None:
    select_ap(card)
    assert verify(card, "0018", "1234") == "9000"
    key = _auth_key(card)
    pub = key.public_numbers()
    msg = b"sign me on the card" * 5
    h = hashlib.sha256(msg).digest()

    def em(sig: bytes) -> bytes:
        return pow(int.from_bytes(sig, "big"), pub.e, pub.n).to_bytes(256, "big")

    def pkcs1(payload: bytes) -> bytes:
        return b"\x00\x01" + b"\xff" * (256 - 3 - len(payload)) + b"\x00" + payload

    assert em(_sign(card, 0, SHA256_DI + h)) == pkcs1(SHA256_DI + h)
    assert em(_sign(card, 1, msg)) == pkcs1(h)  # bare hash, no DigestInfo
    assert em(_sign(card, 2, h)) == pkcs1(SHA256_DI + h)
    assert em(_sign(card, 3, msg)) == pkcs1(SHA256_DI + h)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
    s4a, s4b = _sign(card, 4, h), _sign(card, 4, h)
    assert s4a != s4b  # random salt
    for s in (s4a, s4b):
        key.verify(s, h, pss, utils.Prehashed(hashes.SHA256()))
    key.verify(_sign(card, 5, msg), msg, pss, hashes.SHA256())
    with pytest.raises(InvalidSignature):
        key.verify(_sign(card, 5, msg), msg + b"x", pss, hashes.SHA256())
    # P2 = 80|SFI and select-then-80 give the same bytes (PKCS#1 v1.5 is deterministic)
    select_ef(card, "0017")
    assert _sign(card, 3, msg, "80") == _sign(card, 3, msg, "97")
    assert sw(card, "80 2A 06 97 20 " + "00" * 32 + " 00") == "6A86"
    assert sw(card, "80 2A 02 97 21 " + "00" * 33 + " 00") == "6700"
    assert sw(card, "80 2A 01 97 FF " + "00" * 255 + " 00") == "9000"


@pytest.mark.parametrize(
    ("token", "label"),
    [("card", "JPKIAPICCTOKEN2"), ("android", "JPKIAPGPSETOKEN"), ("iphone", "JPKIAPIOSTOKEN")],
)
def test_token_kinds(tmp_path: Path, token: str, label: str) -> None:
    create_profile(tmp_path / "t", token=token)
    c = open_simulated_card(tmp_path / "t", durable=False)
    select_ap(c)
    assert read_all(c, "0006")[:32] == label.encode().ljust(32, b" ")
    select_ef(c, "000A")
    if token == "android":
        assert sw(c, "00 B0 00 00 04") == "6982"  # the auth certificate needs the auth PIN
        assert verify(c, "0018", "1234") == "9000"
        select_ef(c, "000A")
    assert sw(c, "00 B0 00 00 04") == "9000"
    select_ef(c, "000B")
    assert sw(c, "00 B0 00 00 04") == "9000"  # CA certificates stay free


_WORKER = """
import sys, time
from pathlib import Path
from jpki.sim import open_simulated_card
profile, go, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
card = open_simulated_card(profile)
card.process(bytes.fromhex("00A4040C0AD3921000310001010408"))
card.process(bytes.fromhex("00A4020C020014"))
while not go.exists():
    time.sleep(0.005)
out = []
for _ in range(n):
    r = card.process(bytes.fromhex("002000800C" + "30" * 12))
    out.append(r.hex())
print(" ".join(out))
"""


def test_two_processes_never_lose_a_counter_update(sim_profile: Path, tmp_path: Path) -> None:
    """Ten tries of collation A spent by two simulators at once: each try counted once."""
    go = tmp_path / "go"
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(sim_profile), str(go), "5"],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        for _ in range(2)
    ]
    time.sleep(0.5)  # both open and waiting
    go.touch()
    answers = []
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        answers += out.split()
    left = sorted(int(a[-1], 16) for a in answers)
    assert left == list(range(10)), answers  # 63C9 … 63C0, each exactly once
    assert ProfileStore(sim_profile).load_state().tries_left[KeyId.TEXT_A] == 0


def test_sim_show_lists_the_cvca_keys_and_writes_a_key_directory(sim_profile: Path) -> None:
    from jpki.cli.sim import sim_group

    r = CliRunner().invoke(sim_group, ["show", str(sim_profile), "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    ids = {k["key_id"]: k for k in info["cvca_keys"]}
    assert set(ids) == {"7000033/001", "7000023/001"}
    for k in ids.values():
        assert bytes.fromhex(k["key_id_hex"])[:7] == k["key_id"][:7].encode()
        serialization.load_pem_public_key(k["public_key_pem"].encode())
    # PROFILE/cvca is laid out like jpki.trust's cvca_keys
    from jpki.trust import load_cvca_keys

    loaded = {key.key_id_text for key in load_cvca_keys(sim_profile / "cvca")}
    assert loaded == set(ids)
    assert info["dump"] is None


def test_create_from_dump_serves_the_dump_and_takes_its_person_data(
    sim_profile: Path, tmp_path: Path
) -> None:
    card = open_simulated_card(sim_profile)
    card.reset()
    select_ap(card, TEXT)
    assert verify(card, "0011", "5678") == "9000"
    dump = tmp_path / "dump"
    dump.mkdir()
    ef2 = read_all(card, "0002")
    # another holder: a different My Number and name in files the test writes itself
    other = "123456789018"
    (dump / "text-0001.bin").write_bytes(b"\xff\x10\x0c" + other.encode() + b"\xff\xff")
    name = "別人　花子".encode()
    body = bytes.fromhex("DF2102000A") + b"\xdf\x22" + bytes([len(name)]) + name
    (dump / "text-0002.bin").write_bytes(b"\xff\x20" + bytes([len(body)]) + body + b"\xff\xff")
    (dump / "text-0004.bin").write_bytes(read_all(card, "0004"))
    (dump / "README.txt").write_text("not a card file")
    r = CliRunner().invoke(
        __import__("jpki.cli.sim", fromlist=["sim_group"]).sim_group,
        ["create", str(tmp_path / "p"), "--from-dump", str(dump), "--json"],
    )
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert info["my_number"] == other
    assert info["person"]["name"] == "別人　花子"
    assert "cannot come from a dump" in info["dump"]["signing_keys"]
    assert info["dump"]["files"] == ["text-0001.bin", "text-0002.bin", "text-0004.bin"]
    sim = open_simulated_card(tmp_path / "p", durable=False)
    select_ap(sim, TEXT)
    assert verify(sim, "0014", other) == "9000"  # collation A is the dump's My Number
    assert read_all(sim, "0001") == (dump / "text-0001.bin").read_bytes()
    assert verify(sim, "0011", "5678") == "9000"
    assert read_all(sim, "0002") == (dump / "text-0002.bin").read_bytes()
    assert read_all(sim, "0002") != ef2
    select_ap(sim, JPKI)
    assert read_all(sim, "0008") == b"\x8f\x8f\x00"  # not in the dump: generated


def test_a_dump_with_a_key_file_is_refused(tmp_path: Path) -> None:
    from jpki.cli.sim import sim_group

    dump = tmp_path / "dump"
    dump.mkdir()
    (dump / "jpki-0017.bin").write_bytes(b"\x00")
    r = CliRunner().invoke(sim_group, ["create", str(tmp_path / "p"), "--from-dump", str(dump)])
    assert r.exit_code == 2 and "never come from a dump" in r.output
