"""`jpki smoke` and `jpki card …` through click's CliRunner against the simulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from jpki.cli import main
from jpki.sim.profile import ProfileStore
from sim_trust import write_cvca_dir


def run(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env, input=stdin)


def sim(path: Path) -> list[str]:
    return ["--sim", str(path)]


# --- smoke ----------------------------------------------------------------------------------


def test_smoke_passes() -> None:
    result = run("smoke")
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output
    assert "FAIL" not in result.output


def test_smoke_json() -> None:
    result = run("smoke", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["profile"] is None
    names = [c["name"] for c in data["checks"]]
    assert "sign challenge with auth key" in names and "read 4 certificates" in names
    assert all(c["ok"] for c in data["checks"])


def test_smoke_on_given_profile_uses_its_pins(sim_profile: Path) -> None:
    env = {"OLD": "1234", "NEW": "9876"}
    changed = run("card", "change-pin", "auth", *sim(sim_profile), "--pin-env", "OLD",
                  "--new-pin-env", "NEW", env=env)  # fmt: skip
    assert changed.exit_code == 0, changed.output
    result = run("smoke", "--profile", str(sim_profile), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["profile"] == str(sim_profile)


def test_smoke_fails_on_a_blocked_card(sim_profile: Path) -> None:
    for _ in range(2):
        run("card", "verify-pin", "auth", *sim(sim_profile), "--pin-env", "P", env={"P": "0000"})
    run("card", "verify-pin", "auth", *sim(sim_profile), "--pin-env", "P", "--force",
        env={"P": "0000"})  # fmt: skip
    result = run("smoke", "--profile", str(sim_profile))
    assert result.exit_code == 1
    assert "[FAIL] verify auth PIN" in result.output


def test_smoke_missing_profile(tmp_path: Path) -> None:
    result = run("smoke", "--profile", str(tmp_path / "nope"))
    assert result.exit_code == 2
    assert "Traceback" not in result.output


# --- card status / certificates ---------------------------------------------------------------


def test_status_json(sim_profile: Path) -> None:
    result = run("card", "status", *sim(sim_profile), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["token_label"] == "JPKIAPICCTOKEN2"
    assert (data["auth_pin_tries_left"], data["sign_pin_tries_left"]) == (3, 5)
    assert data["support_pin_tries_left"] == 3
    assert "JPKI-TEST" in data["certificates"]["auth-ca"]


def test_no_card_source_is_usage_error() -> None:
    result = run("card", "status")
    assert result.exit_code == 2
    assert "--sim" in result.output


def test_read_cert_and_certs(sim_profile: Path, tmp_path: Path) -> None:
    profile = ProfileStore(sim_profile).profile
    out = tmp_path / "auth.der"
    assert run("card", "read-cert", "auth", *sim(sim_profile), "--out", str(out)).exit_code == 0
    assert out.read_bytes() == profile.auth_cert
    signed = run("card", "read-cert", "sign", *sim(sim_profile), "--out", str(tmp_path / "s.pem"),
                 "--pem", "--pin-stdin", stdin="jpkitest01\n")  # fmt: skip
    assert signed.exit_code == 0, signed.output
    pem = (tmp_path / "s.pem").read_bytes()
    assert x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER) == profile.sign_cert
    result = run("card", "certs", *sim(sim_profile), "--out", str(tmp_path / "d"), "--json")
    assert result.exit_code == 0, result.output
    assert sorted(json.loads(result.stdout)["certificates"]) == ["auth", "auth-ca", "sign-ca"]
    assert (tmp_path / "d" / "auth-ca.der").read_bytes() == profile.auth_ca_cert


# --- PINs -----------------------------------------------------------------------------------


def test_verify_pin_wrong_then_guard_then_force(sim_profile: Path) -> None:
    env = {"P": "0000"}
    first = run("card", "verify-pin", "auth", *sim(sim_profile), "--pin-env", "P", env=env)
    assert first.exit_code == 4
    assert "2 tries left" in first.output and "0000" not in first.output
    run("card", "verify-pin", "auth", *sim(sim_profile), "--pin-env", "P", env=env)
    guarded = run("card", "verify-pin", "auth", *sim(sim_profile), "--pin-env", "P",
                  env={"P": "1234"})  # fmt: skip
    assert guarded.exit_code == 4 and "refusing" in guarded.output
    forced = run("card", "verify-pin", "auth", *sim(sim_profile), "--pin-env", "P", "--force",
                 "--json", env={"P": "1234"})  # fmt: skip
    assert forced.exit_code == 0, forced.output
    assert json.loads(forced.stdout)["tries_left"] == 3


def test_pin_is_never_an_argument(sim_profile: Path) -> None:
    result = run("card", "verify-pin", "auth", "1234", *sim(sim_profile))
    assert result.exit_code == 2


def test_prompt_without_terminal_is_a_clean_error(sim_profile: Path) -> None:
    result = run("card", "verify-pin", "auth", *sim(sim_profile))
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_bad_pin_format_sends_nothing(sim_profile: Path) -> None:
    result = run("card", "verify-pin", "sign", *sim(sim_profile), "--pin-env", "P",
                 env={"P": "ab"})  # fmt: skip
    assert result.exit_code == 4 and "6-16" in result.output
    status = json.loads(run("card", "status", *sim(sim_profile), "--json").stdout)
    assert status["sign_pin_tries_left"] == 5


# --- signing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("hash_name", ["sha256", "sha512"])
def test_sign_file_verifies(sim_profile: Path, tmp_path: Path, hash_name: str) -> None:
    data = tmp_path / "doc.txt"
    data.write_bytes(b"document to sign")
    sig = tmp_path / "doc.sig"
    result = run("card", "sign", "sign", *sim(sim_profile), "--in", str(data), "--out", str(sig),
                 "--hash", hash_name, "--pin-env", "P", env={"P": "JPKITEST01"})  # fmt: skip
    assert result.exit_code == 0, result.output
    cert = x509.load_der_x509_certificate(ProfileStore(sim_profile).profile.sign_cert)
    key = cert.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    algo = hashes.SHA256() if hash_name == "sha256" else hashes.SHA512()
    key.verify(sig.read_bytes(), b"document to sign", padding.PKCS1v15(), algo)


def test_sign_digest_json(sim_profile: Path) -> None:
    digest = "00" * 32
    result = run("card", "sign", "auth", *sim(sim_profile), "--digest", digest, "--json",
                 "--pin-env", "P", env={"P": "1234"})  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["digest_info"].endswith(digest) and len(bytes.fromhex(data["signature"])) == 256


@pytest.mark.parametrize(
    "args",
    [
        ["--digest", "zz"],
        ["--digest", "00"],
        [],
        ["--digest", "00" * 32, "--in", "x"],
        ["--in", "-", "--pin-stdin"],
        ["--in", "/nonexistent/file"],
    ],
)
def test_sign_bad_input_is_usage_error(sim_profile: Path, args: list[str]) -> None:
    result = run("card", "sign", "auth", *sim(sim_profile), *args, "--pin-env", "P",
                 env={"P": "1234"})  # fmt: skip
    assert result.exit_code == 2, result.output


# --- info / surface ---------------------------------------------------------------------------


def test_info_json_redacts_my_number(sim_profile: Path, tmp_path: Path) -> None:
    person = ProfileStore(sim_profile).profile.person
    cvca = write_cvca_dir(sim_profile, tmp_path / "cvca")
    result = run("card", "info", *sim(sim_profile), "--json", "--pin-env", "S",
                 "--cvca-keys", str(cvca), env={"S": "5678"})  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert person.my_number not in result.output
    assert data["my_number"] == "*" * 12
    assert data["name"] == person.name and data["birth_date"] == person.birth_date.isoformat()
    assert data["sex"] == "male"
    assert data["integrity"]["status"] == "valid"
    assert set(data["integrity"]) == {"status", "cvca", "hierarchy", "reasons"}
    # Without the profile's keys its test CVCA is unknown: never valid, never invalid.
    plain = run("card", "info", *sim(sim_profile), "--json", "--pin-env", "S", env={"S": "5678"})
    assert plain.exit_code == 3, plain.output
    assert json.loads(plain.stdout)["integrity"]["status"] == "indeterminate"
    shown = run("card", "info", *sim(sim_profile), "--show-my-number", "--pin-env", "S",
                env={"S": "5678"})  # fmt: skip
    assert person.my_number[:4] in shown.output


def test_surface_with_pin_and_with_collation_b(sim_profile: Path, tmp_path: Path) -> None:
    cvca = str(write_cvca_dir(sim_profile, tmp_path / "cvca"))
    result = run("card", "surface", *sim(sim_profile), "--out", str(tmp_path / "a"), "--json",
                 "--pin-env", "S", "--cvca-keys", cvca, env={"S": "5678"})  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["integrity"]["status"] == "valid"
    assert (tmp_path / "a" / "face.jp2").read_bytes()[4:8] == b"jP  "
    # The My Number image is written only when asked for, like `card info --show-my-number`.
    assert not (tmp_path / "a" / "my_number.png").exists()
    assert "my_number_image" not in data["files"]
    result = run("card", "surface", *sim(sim_profile), "--out", str(tmp_path / "m"),
                 "--show-my-number", "--pin-env", "S", env={"S": "5678"})  # fmt: skip
    assert result.exit_code == 3, result.output  # no --cvca-keys: undecided
    assert (tmp_path / "m" / "my_number.png").read_bytes()[:4] == b"\x89PNG"
    profile = ProfileStore(sim_profile).profile
    from jpki.card import collation_b

    b = collation_b(profile.person.birth_date, profile.expiry_date.year, profile.security_code)
    result = run("card", "surface", *sim(sim_profile), "--out", str(tmp_path / "b"),
                 "--collation-b-env", "B", "--cvca-keys", cvca,
                 env={"B": b.reveal().decode()})  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "b" / "name.png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "b" / "my_number.png").exists()
    refused = run("card", "surface", *sim(sim_profile), "--out", str(tmp_path / "c"),
                  "--show-my-number", "--collation-b-env", "B",
                  env={"B": b.reveal().decode()})  # fmt: skip
    assert refused.exit_code == 2 and "needs the input-support PIN" in refused.output


@pytest.mark.parametrize(
    "args",
    [
        ["info", "--pin-env", "UNSET_VAR"],
        ["surface", "--out", "unused", "--pin-env", "UNSET_VAR"],
        ["surface", "--out", "unused", "--collation-b-env", "UNSET_VAR"],
    ],
)
def test_missing_secret_fails_before_waiting_for_a_card(tmp_path: Path, args: list[str]) -> None:
    # A bridge nobody connects to: reading the secret after opening the card would wait here.
    args = [a.replace("unused", str(tmp_path / "out")) for a in args]
    result = run("card", *args, "--bridge", "127.0.0.1:0", "--timeout", "30")
    assert result.exit_code == 2, result.output
    assert "UNSET_VAR is not set" in result.output
    assert "waiting" not in result.output


def test_version_matches_the_installed_package() -> None:
    from importlib.metadata import version

    result = run("--version")
    assert result.exit_code == 0
    assert result.output.strip().endswith(version("jpki"))


# --- age, presence, dump, apdu against the simulator ------------------------------------------


def test_age_presence_dump_apdu_on_the_simulator(sim_profile: Path, tmp_path: Path) -> None:
    person = ProfileStore(sim_profile).profile.person
    cvca = str(write_cvca_dir(sim_profile, tmp_path / "cvca"))
    env = {"B": person.birth_date.isoformat(), "S": "5678"}
    age = run("card", "age", *sim(sim_profile), "--over", "18", "--at", "2030-01-01",
              "--birth-date-env", "B", "--cvca-keys", cvca, "--json", env=env)  # fmt: skip
    assert age.exit_code == 0, age.output
    data = json.loads(age.stdout)
    assert data["integrity"]["status"] == "valid" and set(data) == {"over", "at", "is_over",
                                                                    "integrity"}  # fmt: skip
    assert person.birth_date.isoformat() not in age.output
    for ap, opts in (("visual", ["--birth-date-env", "B"]), ("text", ["--pin-env", "S"])):
        pres = run("card", "presence", *sim(sim_profile), "--ap", ap, *opts, "--cvca-keys", cvca,
                   "--json", env=env)  # fmt: skip
        assert pres.exit_code == 0, pres.output
        assert json.loads(pres.stdout)["status"] == "valid"
    out = tmp_path / "dump"
    dump = run("card", "dump", *sim(sim_profile), "--out", str(out), "--pin-env", "S",
               "--birth-date-env", "B", "--json", env=env)  # fmt: skip
    assert dump.exit_code == 0, dump.output
    names = {p.name for p in out.iterdir()}
    assert {"text-0001.bin", "text-0002.bin", "visual-0001.bin", "visual-0002.bin",
            "visual-0005.bin", "jpki-000a.bin"} <= names  # fmt: skip
    assert not any(n.split("-")[1][:4] in ("0011", "0012", "0013", "0014", "0015", "0017",
                                           "0018", "001a", "001b") for n in names)  # fmt: skip
    apdu = run("card", "apdu", *sim(sim_profile), "00A40000", "00A4040C0AD392F000260100000001",
               "00A40000", "--json")  # fmt: skip
    assert apdu.exit_code == 0, apdu.output
    assert [r["sw"] for r in json.loads(apdu.stdout)] == ["6A86", "9000", "9000"]
