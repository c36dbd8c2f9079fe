"""Packaging and the user-facing extras: LICENSE, one version, the dev dependency group,
the changelog, shell completion, the configuration file and JPKI_* defaults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

import jpki
from jpki.cli import main
from jpki.testing.crl import synthetic_crl
from jpki.testing.pki import TestPki

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def test_license_is_mit_as_declared() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License")
    assert PYPROJECT["project"]["license"] == {"text": "MIT"}
    assert "License :: OSI Approved :: MIT License" in PYPROJECT["project"]["classifiers"]


def test_single_version_source() -> None:
    project = PYPROJECT["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "jpki.__version__"}
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## [{jpki.__version__}]" in changelog or "## [Unreleased]" in changelog


def test_metadata_urls_keywords() -> None:
    project = PYPROJECT["project"]
    assert {"Homepage", "Source", "Changelog", "Documentation"} <= set(project["urls"])
    assert "jpki" in project["keywords"] and len(project["classifiers"]) >= 10


def test_dev_tools_in_a_group_not_an_extra() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    published = " ".join(d for deps in extras.values() for d in deps)
    for tool in ("mypy", "ruff", "sphinx"):
        assert tool not in published
        assert any(d.startswith(tool) for d in PYPROJECT["dependency-groups"]["dev"])
    assert "--group dev" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


# --- completion -----------------------------------------------------------------------------


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_script(shell: str) -> None:
    res = CliRunner().invoke(main, ["completion", shell])
    assert res.exit_code == 0, res.output
    assert "_JPKI_COMPLETE" in res.output


def test_completion_really_completes() -> None:
    env = dict(os.environ, _JPKI_COMPLETE="bash_complete", COMP_WORDS="jpki ver", COMP_CWORD="1")
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(
        [sys.executable, "-m", "jpki"], env=env, capture_output=True, text=True, check=False
    ).stdout
    assert "plain,verify" in out.splitlines()


# --- configuration --------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for var in ("JPKI_CONFIG", "JPKI_TRUST", "JPKI_CRL_DIR", "JPKI_STORE", "JPKI_READER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return tmp_path


def _show(*args: str) -> tuple[int, dict[str, object]]:
    res = CliRunner().invoke(main, ["config", "show", "--json", *args])
    return res.exit_code, json.loads(res.stdout)


def test_config_show_sources(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, data = _show()
    assert code == 0 and data["config_file"] == str(clean_env / "xdg" / "jpki" / "config.toml")
    assert data["config_file_exists"] is False
    cfg = clean_env / "xdg" / "jpki" / "config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text('trust = ["roots", "/abs/ca.pem"]\nstore = "rev.sqlite"\n', encoding="utf-8")
    monkeypatch.setenv("JPKI_READER", "Sony")
    code, data = _show()
    s = data["settings"]
    assert isinstance(s, dict)
    assert s["trust"]["value"] == [str(cfg.parent / "roots"), "/abs/ca.pem"]
    assert s["trust"]["source"] == f"file {cfg}"
    assert s["store"]["value"] == str(cfg.parent / "rev.sqlite")
    assert s["reader"] == {
        "value": "Sony", "source": "env JPKI_READER", "environment_variable": "JPKI_READER"
    }  # fmt: skip
    assert s["crl_dir"]["value"] is None and s["crl_dir"]["source"] == "unset"
    monkeypatch.setenv("JPKI_STORE", "/env/store")  # the environment beats the file
    assert _show()[1]["settings"]["store"]["value"] == "/env/store"  # type: ignore[index]


def test_config_errors_are_usage(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = clean_env / "c.toml"
    monkeypatch.setenv("JPKI_CONFIG", str(cfg))
    res = CliRunner().invoke(main, ["config", "show"])
    assert res.exit_code == 2 and "does not exist" in res.output
    cfg.write_text('trsut = ["x"]\n', encoding="utf-8")
    res = CliRunner().invoke(main, ["config", "show", "--json"])
    assert res.exit_code == 2 and "unknown key(s) trsut" in res.output
    cfg.write_text("trust = [\n", encoding="utf-8")
    assert CliRunner().invoke(main, ["config", "show"]).exit_code == 2


@pytest.fixture(scope="module")
def pki_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cfgpki")
    pki = TestPki(now=NOW)
    ca = pki.sign_ca
    (d / "ca.pem").write_bytes(ca.pem)
    (d / "leaf.pem").write_bytes(pki.issue_signing().pem)
    crls = d / "crls"
    crls.mkdir()
    syn = synthetic_crl(
        5, ca.key, ca.cert.subject, this_update=NOW, next_update=NOW + timedelta(days=2)
    )
    (crls / "sign.crl").write_bytes(syn.der)
    os.mkfifo(crls / "planted.crl")  # skipped, not read
    return {"ca": d / "ca.pem", "leaf": d / "leaf.pem", "crls": crls}


def test_trust_from_environment(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, pki_files: dict[str, Path]
) -> None:
    args = ["verify", "chain", str(pki_files["leaf"]), "--at", NOW.isoformat(), "--json"]
    assert CliRunner().invoke(main, args).exit_code == 2  # --trust required, none configured
    monkeypatch.setenv("JPKI_TRUST", str(pki_files["ca"]))
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["status"] == "valid"


def test_crl_dir_from_config(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, pki_files: dict[str, Path]
) -> None:
    cfg = clean_env / "c.toml"
    cfg.write_text(f'crl_dir = "{pki_files["crls"]}"\n', encoding="utf-8")
    monkeypatch.setenv("JPKI_CONFIG", str(cfg))
    args = ["revocation", "check", str(pki_files["leaf"]), "--issuer", str(pki_files["ca"])]
    res = CliRunner().invoke(main, [*args, "--at", NOW.isoformat(), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["status"] == "good"


def test_reader_from_environment_only_when_no_source_named(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from jpki.cli import _common

    seen: list[str] = []

    class Stop(Exception):
        pass

    def fake_connect(name: str, timeout: float) -> None:
        seen.append(name)
        raise Stop

    from jpki.transport import pcsc

    monkeypatch.setattr(pcsc.PcscConnection, "connect", staticmethod(fake_connect))
    monkeypatch.setenv("JPKI_READER", "Configured Reader")
    with pytest.raises(Stop):
        _common.open_connection(sim=None, reader=None, bridge=None)
    assert seen == ["Configured Reader"]
    profile = tmp_path / "card"
    assert CliRunner().invoke(main, ["sim", "init", str(profile)]).exit_code == 0
    # An explicit --sim wins; the configured reader is not even tried.
    conn = _common.open_connection(sim=profile, reader=None, bridge=None)
    conn.close()
    assert seen == ["Configured Reader"]
