"""Android phone token (JPKIAPGPSETOKEN): the auth certificate needs the auth PIN first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from jpki.card import CertSlot, JpkiAp, KeyKind, TokenKind
from jpki.cli import main
from jpki.errors import SecurityStatusError
from jpki.secret import Secret
from jpki.sim import open_simulated_card
from jpki.sim.create import create_profile
from jpki.transport.simulated import SimulatedConnection


@pytest.fixture(scope="module")
def android(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("phone") / "android"
    create_profile(path, token="android")
    return path


def test_auth_certificate_needs_the_auth_pin(android: Path) -> None:
    with SimulatedConnection(open_simulated_card(android)) as conn:
        jpki = JpkiAp(conn)
        assert jpki.token_info().kind is TokenKind.ANDROID
        assert jpki.auth_cert_needs_pin()
        with pytest.raises(SecurityStatusError, match="auth PIN"):
            jpki.read_certificate(CertSlot.AUTH)
        jpki.verify_pin(KeyKind.AUTH, Secret("1234"))
        assert jpki.read_certificate(CertSlot.AUTH)[:1] == b"\x30"


def test_cli_commands_take_the_pin_for_the_auth_certificate(android: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    plain = runner.invoke(main, ["card", "status", "--sim", str(android), "--json"])
    assert plain.exit_code == 0, plain.output
    assert json.loads(plain.stdout)["certificates"]["auth"] is None
    with_pin = runner.invoke(
        main, ["card", "status", "--sim", str(android), "--json", "--pin-env", "P"],
        env={"P": "1234"},
    )  # fmt: skip
    assert with_pin.exit_code == 0, with_pin.output
    assert json.loads(with_pin.stdout)["certificates"]["auth"]
    out = tmp_path / "auth.der"
    refused = runner.invoke(main, ["card", "read-cert", "auth", "--sim", str(android),
                                   "--out", str(out)])  # fmt: skip
    assert refused.exit_code == 4 and "auth PIN" in refused.output
    ok = runner.invoke(main, ["card", "read-cert", "auth", "--sim", str(android), "--out",
                              str(out), "--pin-env", "P"], env={"P": "1234"})  # fmt: skip
    assert ok.exit_code == 0, ok.output
    certs = runner.invoke(main, ["card", "certs", "--sim", str(android), "--out",
                                 str(tmp_path / "c"), "--auth-pin-env", "P"],
                          env={"P": "1234"})  # fmt: skip
    assert certs.exit_code == 0, certs.output
