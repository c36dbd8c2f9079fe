"""`jpki cert show`: text and JSON output, exit codes, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from jpki.cli import main
from jpki.testing.pki import TestPki, sample_person

REQUIRED = {
    "kind", "is_test", "subject", "issuer", "serial_hex", "not_before", "not_after", "policies",
    "key_usage", "fingerprint_sha256", "crl_distribution_points", "authority_key_id",
    "subject_key_id", "basic_info",
}  # fmt: skip
BASIC = {
    "name", "name_substitutes", "sex", "birth_date", "birth_era", "address",
    "address_substitutes", "other",
}  # fmt: skip


def _run(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["cert", "show", *args], input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_show_json_signing(test_pki: TestPki, tmp_path: Path) -> None:
    path = tmp_path / "sign.der"
    path.write_bytes(test_pki.issue_signing(sample_person(2)).der)
    code, out, _ = _run(str(path), "--json")
    assert code == 0
    d = json.loads(out)
    assert set(d) >= REQUIRED and set(d["basic_info"]) >= BASIC
    assert d["kind"] == "signing" and d["is_test"] is True
    assert d["basic_info"]["name"] == sample_person(2).name
    assert d["basic_info"]["name_substitutes"][0] is True
    assert d["basic_info"]["birth_date"] == "1926-12-25"
    assert d["basic_info"]["birth_era"] == "showa"
    assert d["crl_distribution_points"][0]["value"].endswith("CN=Sapporo-shi-Chuo-ku CRLDP")


def test_show_text(test_pki: TestPki, tmp_path: Path) -> None:
    path = tmp_path / "sign.pem"
    path.write_bytes(test_pki.issue_signing(sample_person(2)).pem)
    code, out, _ = _run(str(path))
    assert code == 0
    assert "Kind:          signing (test)" in out
    assert "𠮷田　試験  (substitute characters at 1:𠮷)" in out
    assert "1926-12-25 (Showa)" in out
    assert "CRL DP:        dirName: C=JP, O=JPKI-TEST" in out


def test_show_stdin_and_auth(test_pki: TestPki) -> None:
    code, out, _ = _run("-", "--json", stdin=test_pki.issue_auth().pem)
    assert code == 0
    d = json.loads(out)
    assert d["kind"] == "authentication" and d["basic_info"] is None


def test_show_real_root(jlis_roots_dir: Path) -> None:
    code, out, _ = _run(str(jlis_roots_dir / "auth_ca_2023.pem"), "--json")
    assert code == 0
    d = json.loads(out)
    assert d["kind"] == "authentication_ca" and d["is_test"] is False
    assert d["fingerprint_sha256"].startswith("64114f29620c24ed")


@pytest.mark.parametrize("content", [b"", b"garbage", b"\x30\x03\x02\x01\x01"])
def test_bad_file_exit_2_one_line(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.pem"
    path.write_bytes(content)
    code, out, err = _run(str(path))
    assert code == 2
    assert out == ""
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "Traceback" not in err


def test_missing_file_exit_2(tmp_path: Path) -> None:
    code, _, err = _run(str(tmp_path / "nope.pem"))
    assert code == 2 and err.startswith("error: cannot read")


def test_bad_basic_info_exit_2(test_pki: TestPki, tmp_path: Path) -> None:
    der = bytearray(test_pki.issue_signing().der)
    at = der.find(b"319850401")  # the birth date otherName value
    month13 = bytearray(der)
    month13[at + 5 : at + 7] = b"13"  # no such month: the date is unknown, the rest readable
    (tmp_path / "month13.der").write_bytes(bytes(month13))
    code, out, _err = _run(str(tmp_path / "month13.der"), "--json")
    assert code == 0
    basic = json.loads(out)["basic_info"]
    assert basic["birth_date"] is None and basic["birth_date_raw"] == "319851301"
    code, out, _err = _run(str(tmp_path / "month13.der"))
    assert code == 0 and "Birth date:  unknown (as written: 319851301" in out
    der[at] = ord("9")  # no such era digit: malformed
    path = tmp_path / "bad-era.der"
    path.write_bytes(bytes(der))
    code, out, err = _run(str(path), "--json")
    # Under --json the only stdout is the error object: no half-written certificate.
    assert code == 2 and json.loads(out)["error"]["code"] == "certificate"
    assert "unknown era digit" in err


def test_real_process(test_pki: TestPki, tmp_path: Path) -> None:
    """The installed entry point, as a user runs it."""
    path = tmp_path / "ca.pem"
    path.write_bytes(test_pki.sign_ca.pem)
    jpki = [sys.executable, "-c", "from jpki.cli import main; main()"]
    proc = subprocess.run([*jpki, "cert", "show", str(path), "--json"], capture_output=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["kind"] == "signing_ca"
    bad = subprocess.run([*jpki, "cert", "show", str(tmp_path / "none")], capture_output=True)
    assert bad.returncode == 2 and b"Traceback" not in bad.stderr
