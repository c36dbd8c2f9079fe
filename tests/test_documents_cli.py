"""`jpki card sign-cms|sign-pdf`, `jpki verify cms` timestamps, and the pyHanko CLI plugin."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
from asn1crypto import x509 as asn1_x509
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import signers
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from jpki.cli import main
from jpki.cli.pyhanko_plugin import JpkiSigningPlugin
from jpki.testing.pki import TestPki
from pdf_helpers import minimal_pdf
from tsa_helpers import TestTsa, closed_port_url, openssl_tsa

REPO = Path(__file__).resolve().parents[1]
ENV = {"JPKI_SIGN_PW": "JPKITEST01"}


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env or ENV)


def _tries(profile: Path) -> int:
    from jpki.card.jpki_ap import JpkiAp
    from jpki.sim import open_simulated_card
    from jpki.transport.simulated import SimulatedConnection

    with SimulatedConnection(open_simulated_card(profile)) as conn:
        left = JpkiAp(conn).pin_status("sign").tries_left
    assert left is not None
    return left


@pytest.fixture(scope="module")
def tsa(test_pki: TestPki) -> Iterator[TestTsa]:
    with openssl_tsa(test_pki) as running:
        yield running


@pytest.fixture(scope="module")
def ca_pem(test_pki: TestPki, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "sign-ca.pem"
    path.write_bytes(test_pki.sign_ca.cert.public_bytes(serialization.Encoding.PEM))
    return path


def _pyhanko_trusted(pdf: bytes, pki: TestPki) -> bool:
    vc = ValidationContext(trust_roots=[asn1_x509.Certificate.load(pki.sign_ca.der)])
    st = validate_pdf_signature(PdfFileReader(io.BytesIO(pdf)).embedded_signatures[0], vc)
    return bool(st.intact and st.valid and st.trusted)


def test_sign_cms_cli_then_verify_cms_reports_timestamp(
    sim_profile: Path, tmp_path: Path, tsa: TestTsa, ca_pem: Path
) -> None:
    doc, sig = tmp_path / "申込書.txt", tmp_path / "申込書.p7s"
    doc.write_text("口座開設申込\n", encoding="utf-8")
    r = run(
        *("card", "sign-cms", "sign", "--sim", str(sim_profile), "--in", str(doc)),
        *("--out", str(sig), "--tsa", tsa.url, "--pin-env", "JPKI_SIGN_PW", "--json"),
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["timestamped"] is True
    v = run(
        *("verify", "cms", str(sig), "--content", str(doc), "--trust", str(ca_pem)),
        *("--tsa-trust", str(ca_pem), "--json"),
    )
    assert v.exit_code == 0, v.output
    out = json.loads(v.output)
    assert out["timestamp"]["status"] == "valid" and "Time Stamping" in out["timestamp"]["tsa"]
    text = run("verify", "cms", str(sig), "--content", str(doc), "--trust", str(ca_pem))
    assert text.exit_code == 0 and "signature timestamp" in text.output


def test_sign_cms_cli_refuses_auth_and_keeps_tries(sim_profile: Path, tmp_path: Path) -> None:
    doc = tmp_path / "d.txt"
    doc.write_bytes(b"x")
    r = run(
        *("card", "sign-cms", "auth", "--sim", str(sim_profile), "--in", str(doc)),
        *("--out", str(tmp_path / "d.p7s"), "--pin-env", "JPKI_SIGN_PW"),
    )
    assert r.exit_code == 2 and "nonRepudiation" in r.output
    # Unreachable TSA: exit 2, nothing written, no try spent even with a wrong password.
    r2 = run(
        *("card", "sign-cms", "sign", "--sim", str(sim_profile), "--in", str(doc)),
        *("--out", str(tmp_path / "d.p7s"), "--tsa", closed_port_url(), "--tsa-timeout", "2"),
        *("--pin-env", "JPKI_SIGN_PW"),
        env={"JPKI_SIGN_PW": "WRONG0"},
    )
    assert r2.exit_code == 2 and "timestamp authority" in r2.output, r2.output
    assert not (tmp_path / "d.p7s").exists()
    assert _tries(sim_profile) == 5


def test_sign_pdf_cli_levels(
    sim_profile: Path, tmp_path: Path, tsa: TestTsa, ca_pem: Path, test_pki: TestPki
) -> None:
    src = tmp_path / "in.pdf"
    src.write_bytes(minimal_pdf())
    base = ("card", "sign-pdf", "--sim", str(sim_profile), "--in", str(src), "--pin-env")
    bb = tmp_path / "bb.pdf"
    r = run(*base, "JPKI_SIGN_PW", "--out", str(bb))
    assert r.exit_code == 0 and "B-B" in r.output, r.output
    assert _pyhanko_trusted(bb.read_bytes(), test_pki)
    from datetime import UTC, datetime, timedelta

    crl = tmp_path / "sign.crl"
    crl.write_bytes(test_pki.make_crl(this_update=datetime.now(UTC) - timedelta(hours=1)))
    lt = tmp_path / "lt.pdf"
    r = run(
        *base, "JPKI_SIGN_PW", "--out", str(lt), "--tsa", tsa.url, "--embed-revocation",
        "--crl", str(crl), "--trust", str(ca_pem), "--field", "署名欄", "--json",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["level"] == "B-LT"
    assert _pyhanko_trusted(lt.read_bytes(), test_pki)
    v = run(
        *("verify", "pdf", str(lt), "--trust", str(ca_pem), "--tsa-trust", str(ca_pem)),
        *("--crl", str(crl), "--json"),
    )
    assert v.exit_code == 0, v.output
    sig = json.loads(v.output)["signatures"][0]
    assert sig["field"] == "署名欄" and sig["signing_time_proven"] is True
    p7 = tmp_path / "p7.pdf"
    r = run(*base, "JPKI_SIGN_PW", "--out", str(p7), "--subfilter", "pkcs7")
    assert r.exit_code == 0 and "adbe.pkcs7.detached" in r.output
    # A bad input file: exit 2 before the password is tried.
    junk = tmp_path / "junk.pdf"
    junk.write_bytes(b"%PDF-1.4 junk")
    r = run(
        "card", "sign-pdf", "--sim", str(sim_profile), "--in", str(junk), "--out",
        str(tmp_path / "x.pdf"), "--pin-env", "JPKI_SIGN_PW", env={"JPKI_SIGN_PW": "WRONG0"},
    )  # fmt: skip
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert _tries(sim_profile) == 5


# --- the pyHanko plugin ----------------------------------------------------------------------


def test_plugin_class_signs_through_the_card(
    sim_profile: Path, monkeypatch: pytest.MonkeyPatch, test_pki: TestPki
) -> None:
    monkeypatch.setenv("JPKI_SIGN_PW", "JPKITEST01")
    plugin = JpkiSigningPlugin()
    assert plugin.subcommand_name == "jpki" and plugin.is_available()
    names = {o.name for o in plugin.click_options()}
    assert {"reader", "sim", "bridge", "pin_env"} <= names
    ctx: object = None
    with plugin.create_signer(ctx, sim=str(sim_profile), pin_env="JPKI_SIGN_PW") as signer:  # type: ignore[arg-type]
        out = io.BytesIO()
        signers.sign_pdf(
            IncrementalPdfFileWriter(io.BytesIO(minimal_pdf())),
            signers.PdfSignatureMetadata(field_name="Sig1"),
            signer=signer,
            output=out,
        )
    assert _pyhanko_trusted(out.getvalue(), test_pki)


def test_pyhanko_cli_addsig_jpki(sim_profile: Path, tmp_path: Path, test_pki: TestPki) -> None:
    # The plugin named in a pyhanko.yml is loaded the same way as one found by entry point.
    cfg = tmp_path / "pyhanko.yml"
    cfg.write_text("plugins:\n  - jpki.cli.pyhanko_plugin:JpkiSigningPlugin\n")
    src, out = tmp_path / "in.pdf", tmp_path / "out.pdf"
    src.write_bytes(minimal_pdf())
    env = {**os.environ, "JPKI_SIGN_PW": "JPKITEST01"}
    run_ = subprocess.run(
        [
            *(sys.executable, "-m", "pyhanko", "--config", str(cfg), "sign", "addsig"),
            *("--field", "Sig1", "jpki", "--sim", str(sim_profile), "--pin-env", "JPKI_SIGN_PW"),
            *(str(src), str(out)),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert run_.returncode == 0, run_.stdout + run_.stderr
    assert _pyhanko_trusted(out.read_bytes(), test_pki)
    # A wrong password: pyHanko reports the card's answer, no traceback, one try spent.
    env["JPKI_SIGN_PW"] = "WRONG0"
    bad = subprocess.run(
        [
            *(sys.executable, "-m", "pyhanko", "--config", str(cfg), "sign", "addsig"),
            *("--field", "Sig2", "jpki", "--sim", str(sim_profile), "--pin-env", "JPKI_SIGN_PW"),
            *(str(src), str(tmp_path / "bad.pdf")),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode != 0 and "wrong PIN" in bad.stdout + bad.stderr
    assert "Traceback" not in bad.stdout + bad.stderr
    assert _tries(sim_profile) == 4


def test_entry_point_declared_for_pyhanko() -> None:
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    eps = meta["project"]["entry-points"]["pyhanko.cli_plugin.signing"]
    module, _, cls = eps["jpki"].partition(":")
    assert (module, cls) == ("jpki.cli.pyhanko_plugin", "JpkiSigningPlugin")
    assert "pyHanko>=0.37" in meta["project"]["optional-dependencies"]["pdf"]
    # Where the installed metadata is current (a fresh install), pyHanko finds the same class.
    found = [
        e for e in metadata.entry_points(group="pyhanko.cli_plugin.signing") if e.name == "jpki"
    ]
    for ep in found:
        assert ep.value == eps["jpki"]
