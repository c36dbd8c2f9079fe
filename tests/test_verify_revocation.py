"""`jpki verify chain|cms --crl/--ocsp/--soft-fail`: one result, revoked -> 1, unknown -> 3
(hard-fail), soft-fail -> 0 saying revocation was not established. OCSP against a real
`openssl ocsp` responder on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography import x509

from jpki.cli import main
from jpki.testing.pki import Issued, TestPki, sample_person
from ocsp_helpers import key_pem, openssl_responder, write_index

pytest.importorskip("jpki.revocation.policy")
pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")

# openssl ocsp stamps responses with the real clock, so everything here uses it.
NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def pki() -> TestPki:
    return TestPki(now=NOW - timedelta(days=1))


@pytest.fixture(scope="module")
def certs(pki: TestPki) -> dict[str, Issued]:
    p = sample_person(0)
    return {n: pki.issue_signing(p, label=f"rev-{n}") for n in ("good", "revoked", "unknown")}


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory, pki: TestPki, certs: dict[str, Issued]) -> Path:
    d = tmp_path_factory.mktemp("rev")
    (d / "anchors").mkdir()
    (d / "anchors" / "sign.pem").write_bytes(pki.sign_ca.pem)
    (d / "ca.key").write_bytes(key_pem(pki.sign_ca.key))
    resp = pki.issue_ocsp_responder("sign")
    (d / "resp.pem").write_bytes(resp.pem)
    (d / "resp.key").write_bytes(key_pem(resp.key))
    write_index(
        d / "index.txt", good=[certs["good"].cert.serial_number],
        revoked=[certs["revoked"].cert.serial_number],
    )  # fmt: skip
    doc = d / "doc.txt"
    doc.write_bytes(b"contract\n")
    for name, issued in certs.items():
        (d / f"{name}.pem").write_bytes(issued.pem)
        (d / f"{name}.key").write_bytes(key_pem(issued.key))
        subprocess.run(
            [
                *("openssl", "cms", "-sign", "-nodetach", "-binary", "-in", str(doc)),
                *("-signer", str(d / f"{name}.pem"), "-inkey", str(d / f"{name}.key")),
                *("-outform", "DER", "-out", str(d / f"{name}.p7s")),
            ],
            check=True,
            capture_output=True,
        )
    dp = pki.crl_dp_name(sample_person(0))
    serial = certs["revoked"].cert.serial_number
    revoked = [(serial, x509.ReasonFlags.affiliation_changed, NOW - timedelta(days=1))]
    fresh = NOW - timedelta(hours=1)
    (d / "fresh.crl").write_bytes(
        pki.make_crl("sign", revoked, this_update=fresh, number=2, idp_name=dp)
    )
    old = NOW - timedelta(days=60)
    (d / "stale.crl").write_bytes(
        pki.make_crl("sign", (), this_update=old, next_update=old + timedelta(days=1), idp_name=dp)
    )
    return d


@pytest.fixture(scope="module")
def ocsp_url(d: Path) -> Iterator[str]:
    with openssl_responder(d / "index.txt", d / "anchors" / "sign.pem", d / "resp.pem",
                           d / "resp.key") as url:  # fmt: skip
        yield url


def run(d: Path, *args: str | Path) -> tuple[int, dict[str, Any]]:
    res = CliRunner().invoke(main, ["verify", *map(str, args), "--trust", str(d / "anchors"),
                                    "--json"])  # fmt: skip
    assert "Traceback" not in res.output
    assert res.exit_code in (0, 1, 3), res.output
    data = json.loads(res.output)
    assert data["status"] == {0: "valid", 1: "invalid", 3: "indeterminate"}[res.exit_code]
    assert isinstance(data["reasons"], list) and data["reasons"]
    return res.exit_code, data


def text(data: dict[str, Any]) -> str:
    return " ".join(data["reasons"])


@pytest.mark.parametrize("cmd", ["chain", "cms"])
def test_ocsp_good_revoked_unknown(d: Path, ocsp_url: str, cmd: str) -> None:
    def target(name: str) -> Path:
        return d / (f"{name}.pem" if cmd == "chain" else f"{name}.p7s")

    code, data = run(d, cmd, target("good"), "--ocsp", ocsp_url)
    assert code == 0, data
    assert "not revoked (from ocsp" in text(data)
    code, data = run(d, cmd, target("revoked"), "--ocsp", ocsp_url)
    assert code == 1 and "REVOKED (affiliationChanged)" in text(data)
    # Unknown to the responder: undecidable under hard-fail ...
    code, data = run(d, cmd, target("unknown"), "--ocsp", ocsp_url)
    assert code == 3, data
    assert "revocation status NOT established" in text(data)
    # ... and accepted under soft-fail, saying so.
    code, data = run(d, cmd, target("unknown"), "--ocsp", ocsp_url, "--soft-fail")
    assert code == 0, data
    assert "revocation status NOT established" in text(data) and "soft-fail" in text(data)
    # A revoked answer is never softened.
    code, _ = run(d, cmd, target("revoked"), "--ocsp", ocsp_url, "--soft-fail")
    assert code == 1


@pytest.mark.parametrize("cmd", ["chain", "cms"])
def test_crl(d: Path, cmd: str) -> None:
    def target(name: str) -> Path:
        return d / (f"{name}.pem" if cmd == "chain" else f"{name}.p7s")

    assert run(d, cmd, target("good"), "--crl", d / "fresh.crl")[0] == 0
    code, data = run(d, cmd, target("revoked"), "--crl", d / "fresh.crl")
    assert code == 1 and "REVOKED" in text(data)
    code, data = run(d, cmd, target("good"), "--crl", d / "stale.crl")
    assert code == 3 and "NOT established" in text(data)
    code, data = run(d, cmd, target("good"), "--crl", d / "stale.crl", "--soft-fail")
    assert code == 0 and "NOT established" in text(data) and "soft-fail" in text(data)


def test_crl_and_ocsp_give_one_result(d: Path, ocsp_url: str) -> None:
    # The stale CRL decides nothing; the responder's answer is the one result.
    code, data = run(d, "chain", d / "revoked.pem", "--crl", d / "stale.crl", "--ocsp", ocsp_url)
    assert code == 1 and data["status"] == "invalid" and "REVOKED" in text(data)
    code, data = run(d, "chain", d / "good.pem", "--crl", d / "stale.crl", "--ocsp", ocsp_url)
    assert code == 0 and data["status"] == "valid"


def test_unreachable_responder(d: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/"
    code, data = run(d, "chain", d / "good.pem", "--ocsp", url)
    assert code == 3 and "NOT established" in text(data)
    code, data = run(d, "chain", d / "good.pem", "--ocsp", url, "--soft-fail")
    assert code == 0 and "soft-fail" in text(data)
