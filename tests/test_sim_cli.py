"""`jpki sim init|show|reset` through click's runner (the real CLI entry point)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from jpki.cli import main
from jpki.sim import KeyId, ProfileStore, open_simulated_card


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, list(args))
    return r.exit_code, r.stdout, r.stderr


def test_init_show_json(tmp_path: Path) -> None:
    path = tmp_path / "card"
    code, out, _ = run("sim", "init", str(path), "--person", "1")
    assert code == 0 and "created" in out
    code, out, _ = run("sim", "show", str(path), "--json")
    assert code == 0
    info = json.loads(out)
    assert info["auth_pin"] == "1234"
    assert info["sign_pin"] == "JPKITEST01"
    assert info["support_pin"] == "5678"
    assert info["auth_pin_tries_left"] == 3 and info["sign_pin_tries_left"] == 5
    assert info["tries_left"]["visual_collation_b"] == 10
    assert info["person"]["name"] == "見本　花子" and info["person"]["sex"] == "female"
    assert len(info["my_number"]) == 12
    assert set(info["certificates"]) == {"auth", "auth_ca", "sign", "sign_ca"}
    assert "JPKI-TEST" in info["certificates"]["sign_ca"]["subject"]
    assert len(info["visual"]["collation_b"]) == 14
    assert info["faults"] is None


def test_init_with_undecodable_seed_is_usage_error(tmp_path: Path) -> None:
    # A non-UTF-8 argv byte reaches click as a lone surrogate (os.fsdecode).
    code, _, err = run("sim", "init", str(tmp_path / "card"), "--seed", "\udcff\udcfe")
    assert code == 2 and "seed must be UTF-8 text" in err
    assert not (tmp_path / "card").exists()


def test_show_text_and_create_alias(tmp_path: Path) -> None:
    path = tmp_path / "card"
    assert run("sim", "create", str(path), "--seed", "jpki-test")[0] == 0
    code, out, _ = run("sim", "show", str(path))
    assert code == 0
    assert "auth PIN     1234" in out and "my number" in out


def test_reset_unblocks(sim_profile: Path) -> None:
    card = open_simulated_card(sim_profile)
    card.process(bytes.fromhex("00A4040C0AD392F000260100000001"))
    card.process(bytes.fromhex("00A4020C020018"))
    for _ in range(3):
        card.process(bytes.fromhex("002000800430303030"))
    info = json.loads(run("sim", "show", str(sim_profile), "--json")[1])
    assert info["auth_pin_tries_left"] == 0
    code, out, _ = run("sim", "reset", str(sim_profile), "--json")
    assert code == 0 and json.loads(out)["tries_left"]["auth_pin"] == 3
    assert ProfileStore(sim_profile).load_state().tries_left[KeyId.AUTH_PIN] == 3


def test_errors_are_one_line_without_traceback(tmp_path: Path, sim_profile: Path) -> None:
    code, _, err = run("sim", "show", str(tmp_path / "missing"))
    assert code == 2 and err.startswith("error: no simulator profile") and "Traceback" not in err
    code, _, err = run("sim", "init", str(sim_profile))
    assert code == 2 and "already exists" in err
    (sim_profile / "state.json").write_text("{")
    code, _, err = run("sim", "show", str(sim_profile))
    assert code == 2 and "corrupt" in err and err.count("\n") == 1
    assert run("sim", "reset", str(sim_profile))[0] == 0  # reset repairs a corrupt state
    assert run("sim", "show", str(sim_profile))[0] == 0
    code, _, err = run("sim", "init", str(tmp_path / "x"), "--person", "-1")
    assert code == 2
