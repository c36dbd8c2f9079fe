"""The client and `jpki conformance` against a card model written from the spec (card_model).

The model has the real-card behaviours the simulator is being brought to; single flaws make
the broken cards whose checks must fail. CLI commands reach it by replacing the CLI's
connection opener (a unit test: the same commands run against the simulator elsewhere).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.asymmetric import rsa

import jpki.cli._card_session as cli_card_session
from card_model import AUTH_PIN, CVCA_ID, MY_NUMBER, SUPPORT_PIN, CardModel
from jpki.card import IntegrityStatus, JpkiAp, KeyKind, SignScheme, TextAp, VisualAp
from jpki.card.presence import text_ap_presence, visual_ap_presence
from jpki.card.visual_ap import age_on
from jpki.cli import main
from jpki.conformance import CheckStatus, run_conformance
from jpki.secret import Secret
from jpki.testing.pki import TestPki

NEW_CHECKS = {
    "select_mf",
    "blocked_key_status",
    "access_split",
    "token_info_size",
    "cert_availability",
    "cvc_chain_text",
    "cvc_chain_visual",
    "sign_schemes",
}


@pytest.fixture(scope="module")
def model_keys(test_pki: TestPki) -> dict[str, object]:
    auth = test_pki.issue_auth(label="model-auth")
    keys: dict[str, object] = {
        n: rsa.generate_private_key(65537, 2048) for n in ("cvca", "ap", "card", "session")
    }
    keys["sign"] = rsa.generate_private_key(65537, 2048)
    keys["auth"] = auth.key
    keys["auth_cert"] = auth.der
    return keys


def model(keys: dict[str, object], *flaws: str) -> CardModel:
    k = {n: v for n, v in keys.items() if isinstance(v, rsa.RSAPrivateKey)}
    cert = keys["auth_cert"]
    assert isinstance(cert, bytes)
    return CardModel(k, auth_cert=cert, flaws=frozenset(flaws))


def statuses(card: CardModel) -> dict[str, CheckStatus]:
    report = run_conformance(
        card, with_pin=True, pin=Secret(AUTH_PIN.decode()), cvca_keys=list(card.keyring)
    )
    return {c.name: c.status for c in report.checks}


# --- conformance -----------------------------------------------------------------------------


def test_model_passes_the_corrected_checks(model_keys: dict[str, object]) -> None:
    got = statuses(model(model_keys))
    assert {n: got[n] for n in NEW_CHECKS} == dict.fromkeys(NEW_CHECKS, CheckStatus.PASS)


@pytest.mark.parametrize(
    ("flaw", "failing"),
    [
        ("select_mf_resets", {"select_mf"}),
        ("blocked_6984", {"blocked_key_status"}),
        ("cvc_protected", {"access_split", "cvc_chain_text"}),
        ("token_info_short", {"token_info_size"}),
        ("avail_missing", {"access_split", "cert_availability"}),
        ("cvc_forged", {"cvc_chain_text"}),
        ("p1_05_missing", {"sign_schemes"}),
    ],
)
def test_broken_models_fail_the_right_checks(
    model_keys: dict[str, object], flaw: str, failing: set[str]
) -> None:
    got = statuses(model(model_keys, flaw))
    assert {n for n in NEW_CHECKS if got[n] is CheckStatus.FAIL} == failing


def test_unknown_cvca_is_skipped_not_failed(model_keys: dict[str, object]) -> None:
    got = statuses(model(model_keys, "cvc_unknown_cvca"))
    assert got["cvc_chain_visual"] is CheckStatus.SKIP
    assert got["cvc_chain_text"] is CheckStatus.PASS


# --- library ---------------------------------------------------------------------------------


def test_text_ap_integrity_and_reads(model_keys: dict[str, object]) -> None:
    card = model(model_keys)
    text_ap = TextAp(card, keyring=card.keyring)
    assert text_ap.read_ap_basic_data().identification == bytes.fromhex("01030E01")
    text_ap.verify_pin(Secret(SUPPORT_PIN.decode()))
    info = text_ap.read_card_info()
    assert info.integrity.status is IntegrityStatus.VALID, info.integrity.reasons
    assert info.integrity.cvca == "7000033/001" and info.integrity.hierarchy == "other"
    assert text_ap.read_session_key().key_size == 2048
    # Without the model's CVCA: nothing decided.
    plain = TextAp(card)
    plain.verify_pin(Secret(SUPPORT_PIN.decode()))
    assert plain.read_card_info().integrity.status is IntegrityStatus.INDETERMINATE


def test_collation_a_opens_0001_not_0002(model_keys: dict[str, object]) -> None:
    from jpki.errors import SecurityStatusError

    text_ap = TextAp(model(model_keys))
    text_ap.unlock_collation_a(MY_NUMBER)
    assert text_ap.read_my_number().reveal() == MY_NUMBER
    with pytest.raises(SecurityStatusError, match="collation B"):
        text_ap.read_basic_info()


def test_age_record_and_presence(model_keys: dict[str, object]) -> None:
    from datetime import date

    card = model(model_keys)
    visual = VisualAp(card, keyring=card.keyring)
    visual.unlock_birth_date(date(1980, 2, 17))
    record = visual.read_age_record()
    assert visual.check(record).status is IntegrityStatus.VALID
    assert age_on(record.birth_date, date(2000, 2, 17)) == 20
    assert visual.read_ap_basic_data().municipality_code == "13221"
    assert visual_ap_presence(visual, b"fresh challenge").status is IntegrityStatus.VALID
    text_ap = TextAp(card, keyring=card.keyring)
    text_ap.verify_pin(Secret(SUPPORT_PIN.decode()))
    assert text_ap_presence(text_ap, b"another").status is IntegrityStatus.VALID


def test_presence_of_a_copy_on_another_chip_is_invalid(model_keys: dict[str, object]) -> None:
    from datetime import date

    card = model(model_keys, "foreign_chip")
    visual = VisualAp(card, keyring=card.keyring)
    visual.unlock_birth_date(date(1980, 2, 17))
    result = visual_ap_presence(visual, b"challenge")
    assert result.status is IntegrityStatus.INVALID


def test_presence_unvouched_key_is_not_valid(model_keys: dict[str, object]) -> None:
    from datetime import date

    card = model(model_keys)
    visual = VisualAp(card)  # the model's CVCA is not trusted
    visual.unlock_birth_date(date(1980, 2, 17))
    assert visual_ap_presence(visual, b"c").status is IntegrityStatus.INDETERMINATE


def test_sign_schemes_on_the_model(model_keys: dict[str, object]) -> None:
    card = model(model_keys)
    jpki = JpkiAp(card)
    jpki.verify_pin(KeyKind.AUTH, Secret(AUTH_PIN.decode()))
    for scheme in SignScheme:
        data = b"\x01" * (32 if scheme in (SignScheme.SHA256_HASH, SignScheme.PSS_HASH) else 40)
        assert len(jpki.sign(KeyKind.AUTH, data, scheme)) == 256
    assert jpki.cert_availability().signing is True
    assert jpki.token_info().model == "MODEL"


# --- CLI -------------------------------------------------------------------------------------


@pytest.fixture
def cli_model(
    model_keys: dict[str, object], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[CardModel, Path]]:
    card = model(model_keys)
    # The card commands open their card through the shared card-session helper.
    monkeypatch.setattr(cli_card_session, "open_connection", lambda **_: card)
    ring = tmp_path / "cvca"
    ring.mkdir()
    key = card.keyring.get(CVCA_ID)
    assert key is not None
    (ring / "k.pem").write_text(key.public_key_pem())
    (ring / "index.json").write_text(
        json.dumps([{"key_id_hex": key.key_id.hex(), "file": "k.pem"}])
    )
    yield card, ring


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, ["card", *args, "--sim", "unused"], env=env)


def test_cli_age_prints_only_the_answer(cli_model: tuple[CardModel, Path]) -> None:
    _, ring = cli_model
    r = run("age", "--over", "20", "--at", "2000-02-17", "--birth-date-env", "B", "--json",
            "--cvca-keys", str(ring), env={"B": "1980-02-17"})  # fmt: skip
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data == {
        "over": 20,
        "at": "2000-02-17",
        "is_over": True,
        "integrity": {"status": "valid", "cvca": "7000033/001"},
    }
    assert "1980" not in r.output and "19800217" not in r.output
    young = run("age", "--over", "20", "--at", "2000-02-16", "--birth-date-env", "B",
                "--cvca-keys", str(ring), env={"B": "1980-02-17"})  # fmt: skip
    assert young.exit_code == 0 and "NOT at least 20" in young.output
    unknown = run("age", "--over", "18", "--birth-date-env", "B", env={"B": "1980-02-17"})
    assert unknown.exit_code == 3, unknown.output


def test_cli_presence(cli_model: tuple[CardModel, Path]) -> None:
    _, ring = cli_model
    r = run("presence", "--birth-date-env", "B", "--cvca-keys", str(ring), "--json",
            env={"B": "19800217"})  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["status"] == "valid"
    t = run("presence", "--ap", "text", "--pin-env", "P", "--cvca-keys", str(ring),
            env={"P": SUPPORT_PIN.decode()})  # fmt: skip
    assert t.exit_code == 0, t.output


def test_cli_dump_writes_raw_files_never_keys(
    cli_model: tuple[CardModel, Path], tmp_path: Path
) -> None:
    card, _ = cli_model
    out = tmp_path / "dump"
    r = run("dump", "--out", str(out), "--pin-env", "P", "--birth-date-env", "B", "--json",
            env={"P": SUPPORT_PIN.decode(), "B": "1980-02-17"})  # fmt: skip
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in out.iterdir())
    assert "text-0001.bin" in names and "visual-0002.bin" in names and "jpki-0006.bin" in names
    assert (out / "text-0001.bin").read_bytes() == card.apps[
        bytes.fromhex("D3921000310001010408")
    ].files[1]
    # Physical content: the filler after the card face TLV is kept.
    assert (out / "visual-0002.bin").read_bytes().endswith(b"\xff" * 40)
    assert not any(n.endswith(("0011.bin", "0012.bin", "0017.bin", "0018.bin")) for n in names)
    assert "jpki-0001.bin" in json.loads(r.stdout)["skipped"]  # no signing password given
    assert SUPPORT_PIN.decode() not in r.output and MY_NUMBER not in r.output


def test_cli_apdu_raw_and_redacted(cli_model: tuple[CardModel, Path]) -> None:
    card, _ = cli_model
    r = run("apdu", "00A4040C0AD392F000260100000001", "00A4020C020018", "0020008004"
            + AUTH_PIN.hex(), "00A4020C020006", "00B0000004", "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [row["sw"] for row in rows] == ["9000", "9000", "9000", "9000", "9000"]
    assert rows[4]["data"] == b"JPKI".hex().upper()
    assert AUTH_PIN.hex() not in json.dumps(rows).lower() and "secret" in rows[2]["command"]
    card.reset()  # a fresh session: no DF current
    text = run("apdu", "00A40000")
    assert text.exit_code == 0 and text.output.strip() == "6A86"
    bad = run("apdu", "00A4")
    assert bad.exit_code == 2


def test_cli_sign_scheme_and_status(cli_model: tuple[CardModel, Path], tmp_path: Path) -> None:
    msg = tmp_path / "m"
    msg.write_bytes(b"hello")
    r = run("sign", "auth", "--in", str(msg), "--scheme", "pss-sha256", "--pin-env", "P",
            "--json", env={"P": AUTH_PIN.decode()})  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["p1"] == "05"
    too_long = tmp_path / "big"
    too_long.write_bytes(b"x" * 256)
    r = run("sign", "auth", "--in", str(too_long), "--scheme", "pkcs1-sha256", "--pin-env", "P",
            env={"P": AUTH_PIN.decode()})  # fmt: skip
    assert r.exit_code == 2 and "1-255" in r.output
    s = run("status", "--json")
    assert s.exit_code == 0, s.output
    data = json.loads(s.stdout)
    assert data["certificates_available"] == {"sign": True, "auth": True}
    assert data["token_info"]["model"] == "MODEL"
