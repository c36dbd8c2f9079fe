"""OpenSC as an independent client of our simulator: pkcs15-tool, pkcs11-tool, opensc-tool.

OpenSC's JPKI driver was written against real cards; if it and the simulator disagree, the
exchange recorded at the card side shows the APDU (card-protocol.md §8).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from jpki.apdu import CommandApdu
from jpki.sim import KeyId

from .conftest import AUTH_PIN, SIGN_PASSWORD, InsertedCard, unavailable

pytestmark = [pytest.mark.pcscd, pytest.mark.opensc]

JPKI_AID = bytes.fromhex("D392F000260100000001")
# Certificate IDs in OpenSC's JPKI emulation: 01 auth, 02 signing, 03 auth CA, 04 signing CA.
CERT_IDS = {"01": "auth_cert", "02": "sign_cert", "03": "auth_ca_cert", "04": "sign_ca_cert"}
PKCS11_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",
    "/usr/lib/x86_64-linux-gnu/pkcs11/opensc-pkcs11.so",
    "/usr/lib/*/opensc-pkcs11.so",
    "/usr/lib/*/pkcs11/opensc-pkcs11.so",
    "/usr/lib64/opensc-pkcs11.so",
    "/usr/lib64/pkcs11/opensc-pkcs11.so",
    "/usr/lib/opensc-pkcs11.so",
    "/usr/local/lib/opensc-pkcs11.so",
)


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed (apt-get install opensc)")
        raise AssertionError  # unreachable: unavailable() skips or fails
    return path


@pytest.fixture(scope="module")
def pkcs11_module() -> str:
    for pattern in PKCS11_CANDIDATES:
        for path in sorted(glob.glob(pattern)):
            if os.path.isfile(path):
                return path
    unavailable("opensc-pkcs11.so not found (apt-get install opensc-pkcs11)")
    raise AssertionError


@pytest.fixture
def opensc_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    # Every test card is a fresh profile with the same dummy serial (00000000): OpenSC's
    # file cache would hand one card's certificates to the next, so switch it off.
    conf = tmp_path / "opensc.conf"
    conf.write_text("app default {\n  framework pkcs15 { use_file_caching = no; }\n}\n")
    env = {k: v for k, v in os.environ.items() if k != "OPENSC_DRIVER"}
    env["OPENSC_CONF"] = str(conf)
    yield env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, (
        f"{args[0]} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
    )
    return proc


def pem_der(pem: str) -> bytes:
    cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
    return cert.public_bytes(serialization.Encoding.DER)


def test_pkcs15_tool_lists_and_reads_the_certificates(
    inserted_card: InsertedCard, opensc_env: dict[str, str]
) -> None:
    env = {**opensc_env, "OPENSC_DRIVER": "jpki"}
    pkcs15 = tool("pkcs15-tool")
    listing = run([pkcs15, "--reader", inserted_card.reader, "--list-certificates"], env).stdout
    assert listing.count("X.509 Certificate [") == 4, listing
    for label in (
        "User Authentication Certificate]",
        "Digital Signature Certificate]",
        "User Authentication Certificate CA]",
        "Digital Signature Certificate CA]",
    ):
        assert label in listing
    profile = inserted_card.card.profile
    for cert_id in ("01", "03", "04"):
        out = run([pkcs15, "--reader", inserted_card.reader, "--read-certificate", cert_id], env)
        assert pem_der(out.stdout) == getattr(profile, CERT_IDS[cert_id]), cert_id
    # 02 is private: OpenSC verifies the signing password (auth id 02) before reading it.
    out = run(
        [pkcs15, "--reader", inserted_card.reader, "--read-certificate", "02",
         "--auth-id", "02", "--verify-pin", "--pin", SIGN_PASSWORD],
        env,
    )  # fmt: skip
    assert pem_der(out.stdout) == profile.sign_cert
    # OpenSC sized every certificate by reading its first 4 bytes (card-protocol.md §8).
    assert inserted_card.recorder is not None
    reads = [c for c, _ in inserted_card.recorder.exchanges if c[1] == 0xB0]
    assert any(c[2:4] == b"\x00\x00" and c[4:] == b"\x04" for c in reads)


@pytest.mark.parametrize(
    ("key_id", "token", "pin", "cert_field"),
    [
        ("01", "JPKI (User Authentication PIN)", AUTH_PIN, "auth_cert"),
        ("02", "JPKI (Digital Signature PIN)", SIGN_PASSWORD, "sign_cert"),
    ],
)
def test_pkcs11_tool_signs_and_openssl_verifies(
    inserted_card: InsertedCard,
    opensc_env: dict[str, str],
    pkcs11_module: str,
    tmp_path: Path,
    key_id: str,
    token: str,
    pin: str,
    cert_field: str,
) -> None:
    pkcs11 = [tool("pkcs11-tool"), "--module", pkcs11_module]
    data = tmp_path / "data.bin"
    data.write_bytes("JPKI 公的個人認証 end-to-end".encode())
    signature = tmp_path / "sig.bin"
    slots = run([*pkcs11, "-L"], opensc_env).stdout
    assert "JPKI (User Authentication PIN)" in slots
    assert "JPKI (Digital Signature PIN)" in slots
    # The PIN on argv is the simulated card's test PIN; pkcs11-tool has no other batch way.
    run(
        [*pkcs11, "--token-label", token, "--login", "--pin", pin,
         "--sign", "--mechanism", "SHA256-RSA-PKCS", "--id", key_id,
         "--input-file", str(data), "--output-file", str(signature)],
        opensc_env,
    )  # fmt: skip
    assert len(signature.read_bytes()) == 256
    cert = x509.load_der_x509_certificate(getattr(inserted_card.card.profile, cert_field))
    pubkey = tmp_path / "pub.pem"
    pubkey.write_bytes(
        cert.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    verify = [tool("openssl"), "dgst", "-sha256", "-verify", str(pubkey),
              "-signature", str(signature), str(data)]  # fmt: skip
    assert "Verified OK" in run(verify, opensc_env).stdout
    # A tampered message must not verify (so the check above can fail).
    data.write_bytes(data.read_bytes() + b"!")
    bad = subprocess.run(verify, capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode != 0 and "Verification failure" in bad.stdout


def test_wrong_pin_through_pkcs11_spends_one_try(
    inserted_card: InsertedCard, opensc_env: dict[str, str], pkcs11_module: str
) -> None:
    # OpenSC must read the simulator's 63Cx as "PIN incorrect", and the counter must show it.
    login = [tool("pkcs11-tool"), "--module", pkcs11_module,
             "--token-label", "JPKI (User Authentication PIN)", "--login", "--test"]  # fmt: skip
    wrong = subprocess.run(
        [*login, "--pin", "0000"], env=opensc_env, capture_output=True, text=True, timeout=120
    )
    assert wrong.returncode != 0
    assert "CKR_PIN_INCORRECT" in wrong.stdout + wrong.stderr, wrong.stdout + wrong.stderr
    assert inserted_card.card.tries_left(KeyId.AUTH_PIN) == 2
    dump = run([tool("pkcs15-tool"), "--reader", inserted_card.reader, "-D"], opensc_env).stdout
    assert "Tries left     : 2" in dump
    run([*login, "--pin", AUTH_PIN], opensc_env)
    assert inserted_card.card.tries_left(KeyId.AUTH_PIN) == 3  # a good VERIFY resets it


def test_probes_of_other_drivers_get_errors_and_jpki_still_binds(
    inserted_card: InsertedCard, opensc_env: dict[str, str]
) -> None:
    name = run([tool("opensc-tool"), "--reader", inserted_card.reader, "-n"], opensc_env)
    assert name.stdout.strip() == "jpki"
    dump = run([tool("pkcs15-tool"), "--reader", inserted_card.reader, "-D"], opensc_env).stdout
    assert "PKCS#15 Card [JPKI]" in dump
    assert "User Authentication PIN" in dump and "Tries left     : 3" in dump
    assert inserted_card.recorder is not None
    exchanges = inserted_card.recorder.exchanges
    foreign = [
        (c, r)
        for c, r in exchanges
        if c[1] == 0xA4 and c[2] == 0x04 and CommandApdu.decode(c).data != JPKI_AID
    ]
    others = [(c, r) for c, r in exchanges if c[1] in (0xCA, 0xCB)]  # GET DATA probes
    assert len(foreign) >= 10, "expected OpenSC's probes of other card types"
    for command, response in foreign + others:
        # A bare error status word: no data, not 9000 (else a wrong driver could bind).
        assert len(response) == 2 and response != b"\x90\x00", (command.hex(), response.hex())
        assert response[0] in (0x6A, 0x6D, 0x6E, 0x69, 0x67), (command.hex(), response.hex())
