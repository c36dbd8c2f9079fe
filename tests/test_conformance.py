"""The conformance suite: clean on the simulator, the right checks fail on broken card models."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from jpki.cert import JpkiCertificate
from jpki.cli import main
from jpki.cli.smoke import profile_cvca_keys
from jpki.conformance import (
    CHECKS,
    CheckStatus,
    ConformanceReport,
    PinSpendRefused,
    RecordingConnection,
    run_conformance,
)
from jpki.secret import Secret
from jpki.sim import Aid, FaultConfig, FaultyCard, KeyId, SimulatedCard
from jpki.testing.pki import TestPki, sample_person
from jpki.transport.simulated import SimulatedConnection
from sim_trust import write_cvca_dir

AUTH_PIN = Secret("1234")
SIGN_PIN = Secret("JPKITEST01")
PIN_CHECKS = {"verify_auth_pin", "verify_sign_pin"}


def _run(card: SimulatedCard, **kw: object) -> ConformanceReport:
    keys = profile_cvca_keys(card._store.path)
    with SimulatedConnection(card) as conn:
        return run_conformance(conn, cvca_keys=keys, **kw)  # type: ignore[arg-type]


def _failed(report: ConformanceReport) -> set[str]:
    return {c.name for c in report.failed}


def _clean(report: ConformanceReport) -> bool:
    return not _failed(report) and report.aborted is None


def _tries(profile: Path) -> dict[KeyId, int]:
    card = SimulatedCard(profile)
    try:
        return {k: card.tries_left(k) for k in (KeyId.AUTH_PIN, KeyId.SIGN_PIN, KeyId.SUPPORT_PIN)}
    finally:
        card.close()


def _pin_data_commands(report: ConformanceReport) -> list[str]:
    """Transcript lines of VERIFY / CHANGE commands that carried data."""
    return [
        e.command
        for c in report.checks
        for e in c.transcript
        if e.command.split()[1] in ("20", "24") and "secret" in e.command
    ]


# --- clean runs ----------------------------------------------------------------------------


def test_clean_without_pin_spends_nothing(sim_profile: Path) -> None:
    before = _tries(sim_profile)
    report = _run(SimulatedCard(sim_profile))
    assert _clean(report), [(c.name, c.detail) for c in report.failed]
    assert [c.name for c in report.checks] == [name for name, _ in CHECKS]
    skipped = {c.name for c in report.checks if c.status is CheckStatus.SKIP}
    assert skipped == {
        "verify_auth_pin",
        "sign_auth_round_trip",
        "security_cleared_by_df_select",
        "verify_sign_pin",
        "read_sign_cert",
        "sign_sign_round_trip",
        "sign_schemes",
    }
    assert _pin_data_commands(report) == []
    assert _tries(sim_profile) == before
    # Every check that talked to the card has its transcript.
    talked = [c for c in report.checks if c.status is not CheckStatus.SKIP]
    assert all(c.transcript for c in talked if c.name not in {"atr", "cert_kinds"})


def test_clean_with_pins(sim_profile: Path) -> None:
    report = _run(SimulatedCard(sim_profile), with_pin=True, pin=AUTH_PIN, sign_pin=SIGN_PIN)
    assert _clean(report), [(c.name, c.detail) for c in report.failed]
    assert report.count(CheckStatus.SKIP) == 0
    assert report.check("cert_kinds").detail.endswith("sign=signing")
    # Exactly one VERIFY with data per PIN, blanked in the transcript.
    assert _pin_data_commands(report) == [
        "00 20 00 80 [secret]",
        "00 20 00 80 [secret]",
    ]
    text = json.dumps(report.as_dict())
    assert "1234" not in text.replace("1234 (", "")  # never the PIN bytes
    assert b"1234".hex() not in text and SIGN_PIN.reveal().hex() not in text.lower()
    assert _tries(sim_profile) == {KeyId.AUTH_PIN: 3, KeyId.SIGN_PIN: 5, KeyId.SUPPORT_PIN: 3}


def test_auth_pin_only(sim_profile: Path) -> None:
    report = _run(SimulatedCard(sim_profile), with_pin=True, pin=AUTH_PIN)
    assert _clean(report)
    assert report.check("sign_auth_round_trip").status is CheckStatus.PASS
    assert report.check("verify_sign_pin").status is CheckStatus.SKIP


def test_wrong_pin_fails_once_and_never_retries(sim_profile: Path) -> None:
    report = _run(SimulatedCard(sim_profile), with_pin=True, pin=Secret("9999"))
    assert _failed(report) == {"verify_auth_pin"}
    assert "2 tries left" in report.check("verify_auth_pin").detail
    assert report.check("sign_auth_round_trip").status is CheckStatus.SKIP
    assert len(_pin_data_commands(report)) == 1
    assert _tries(sim_profile)[KeyId.AUTH_PIN] == 2


def test_wrong_auth_pin_stops_before_the_signing_password(sim_profile: Path) -> None:
    report = _run(SimulatedCard(sim_profile), with_pin=True, pin=Secret("9999"), sign_pin=SIGN_PIN)
    assert _failed(report) == {"verify_auth_pin"}
    check = report.check("verify_sign_pin")
    assert check.status is CheckStatus.SKIP and "earlier PIN" in check.detail
    assert len(_pin_data_commands(report)) == 1
    assert _tries(sim_profile)[KeyId.SIGN_PIN] == 5


def test_badly_formatted_pin_sends_nothing(sim_profile: Path) -> None:
    report = _run(SimulatedCard(sim_profile), with_pin=True, pin=Secret("12a"))
    assert _failed(report) == {"verify_auth_pin"}
    assert _pin_data_commands(report) == []
    assert _tries(sim_profile)[KeyId.AUTH_PIN] == 3


@pytest.mark.parametrize("left", [1, 0])
def test_pin_checks_skipped_when_tries_low(sim_profile: Path, left: int) -> None:
    card = SimulatedCard(sim_profile)
    conn = SimulatedConnection(card)
    conn.transmit(b"\x00\xa4\x04\x0c\x0a" + Aid.JPKI.value)
    conn.transmit(bytes.fromhex("00A4020C020018"))
    for _ in range(3 - left):
        conn.transmit(bytes.fromhex("0020008004") + b"0000")
    assert card.tries_left(KeyId.AUTH_PIN) == left
    report = run_conformance(conn, with_pin=True, pin=AUTH_PIN)
    conn.close()
    check = report.check("verify_auth_pin")
    assert check.status is CheckStatus.SKIP
    assert f"{left} tries left" in check.detail
    assert _pin_data_commands(report) == []
    assert _tries(sim_profile)[KeyId.AUTH_PIN] == left


def test_recording_connection_refuses_pin_data(sim_profile: Path) -> None:
    with SimulatedConnection(SimulatedCard(sim_profile)) as inner:
        rec = RecordingConnection(inner)
        with pytest.raises(PinSpendRefused):
            rec.transmit(bytes.fromhex("0020008004") + b"1234")
        with pytest.raises(PinSpendRefused):
            rec.transmit(bytes.fromhex("0024018004") + b"1234")
        assert rec.transmit(bytes.fromhex("00200080"))[-2:] != b""
        assert rec.log[-1].command == "00 20 00 80"


# --- broken card models ----------------------------------------------------------------------

Mutator = Callable[["BrokenCard", bytes, bytes], bytes]


class BrokenCard(SimulatedCard):
    """The simulator with one deliberate deviation applied to its answers."""

    mutate: Mutator = staticmethod(lambda card, cmd, rsp: rsp)
    keep_pins_on_select = False
    empty_verifies = 0

    def _dispatch(self, raw: bytes) -> bytes:
        return self.mutate(self, raw, super()._dispatch(raw))

    def _clear_session(self) -> None:
        if self.keep_pins_on_select:
            self._app = None
            self._ef = None
        else:
            super()._clear_session()

    def current_fid(self) -> int | None:
        return self._ef.fid if self._ef is not None else None


def _sw(sw: int) -> bytes:
    return sw.to_bytes(2, "big")


def unknown_ins_6a86(card: BrokenCard, cmd: bytes, rsp: bytes) -> bytes:
    return _sw(0x6A86) if rsp == _sw(0x6D00) else rsp


def unknown_cla_6d00(card: BrokenCard, cmd: bytes, rsp: bytes) -> bytes:
    return _sw(0x6D00) if rsp == _sw(0x6E00) else rsp


def unknown_aid_ok(card: BrokenCard, cmd: bytes, rsp: bytes) -> bytes:
    return _sw(0x9000) if cmd[:3] == b"\x00\xa4\x04" and rsp == _sw(0x6A82) else rsp


def unknown_ef_6a88(card: BrokenCard, cmd: bytes, rsp: bytes) -> bytes:
    return _sw(0x6A88) if cmd[:3] == b"\x00\xa4\x02" and rsp == _sw(0x6A82) else rsp


def past_end_empty_ok(card: BrokenCard, cmd: bytes, rsp: bytes) -> bytes:
    return _sw(0x9000) if rsp == _sw(0x6B00) else rsp


def sign_cert_free(card: BrokenCard, cmd: bytes, rsp: bytes) -> bytes:
    if cmd[1] == 0xB0 and rsp == _sw(0x6982) and card._app is Aid.JPKI:
        return card.files(Aid.JPKI)[0x0001].content[: cmd[4] or 256] + _sw(0x9000)
    return rsp


def empty_verify_spends(card: BrokenCard, cmd: bytes, rsp: bytes) -> bytes:
    if cmd == bytes.fromhex("00200080") and rsp[0] == 0x63:
        card.empty_verifies += 1
        return _sw(max(0x63C0, int.from_bytes(rsp, "big") - card.empty_verifies + 1))
    return rsp


def verify_status_9000(card: BrokenCard, cmd: bytes, rsp: bytes) -> bytes:
    return _sw(0x9000) if cmd == bytes.fromhex("00200080") else rsp


def auth_cert_truncated(card: BrokenCard, cmd: bytes, rsp: bytes) -> bytes:
    offset = int.from_bytes(cmd[2:4], "big")
    if cmd[1] == 0xB0 and card.current_fid() == 0x000A and offset >= 512:
        return _sw(0x6B00)
    return rsp


def short_chunks(card: BrokenCard, cmd: bytes, rsp: bytes) -> bytes:
    # Returns 200 of 256 requested bytes with 9000: OpenSC-style readers would mis-size files.
    if cmd[1] == 0xB0 and len(rsp) > 202:
        return rsp[:200] + rsp[-2:]
    return rsp


def auth_slot_holds_ca(card: BrokenCard, cmd: bytes, rsp: bytes) -> bytes:
    if cmd[1] == 0xB0 and card.current_fid() == 0x000A and rsp[-2:] == _sw(0x9000):
        ca = card.files(Aid.JPKI)[0x000B].content
        offset = int.from_bytes(cmd[2:4], "big")
        return ca[offset : offset + (cmd[4] or 256)] + _sw(0x9000)
    return rsp


def key_ef_readable(card: BrokenCard, cmd: bytes, rsp: bytes) -> bytes:
    return b"\x00" + _sw(0x9000) if rsp == _sw(0x6981) else rsp


def sign_without_pin_works(card: BrokenCard, cmd: bytes, rsp: bytes) -> bytes:
    return b"\x00" * 256 + _sw(0x9000) if cmd[:2] == b"\x80\x2a" and rsp == _sw(0x6982) else rsp


def bad_signature(card: BrokenCard, cmd: bytes, rsp: bytes) -> bytes:
    if cmd[:2] == b"\x80\x2a" and rsp[-2:] == _sw(0x9000):
        return bytes([rsp[0] ^ 1]) + rsp[1:]
    return rsp


def text_info_free(card: BrokenCard, cmd: bytes, rsp: bytes) -> bytes:
    if cmd[1] == 0xB0 and rsp == _sw(0x6982) and card._app is Aid.TEXT:
        return b"\xff" + _sw(0x9000)
    return rsp


def bad_label(card: BrokenCard, cmd: bytes, rsp: bytes) -> bytes:
    if cmd[1] == 0xB0 and card.current_fid() == 0x0006 and card._app is Aid.JPKI:
        return b"SOMETHING ELSE".ljust(32) + _sw(0x9000)
    return rsp


def visual_ap_missing(card: BrokenCard, cmd: bytes, rsp: bytes) -> bytes:
    return _sw(0x6A82) if cmd[:3] == b"\x00\xa4\x04" and Aid.VISUAL.value in cmd else rsp


BROKEN: list[tuple[str, Mutator, bool, set[str]]] = [
    (
        "visual AP not selectable",
        visual_ap_missing,
        False,
        {"select_visual", "card_info_protected", "access_split", "cvc_chain_visual"},
    ),
    ("unknown INS answered 6A86", unknown_ins_6a86, False, {"unknown_ins"}),
    ("unknown CLA answered 6D00", unknown_cla_6d00, False, {"unknown_cla"}),
    ("unknown AID selected", unknown_aid_ok, False, {"select_unknown_aid"}),
    ("unknown EF answered 6A88", unknown_ef_6a88, False, {"unknown_file", "select_mf"}),
    ("read past the end gives 9000", past_end_empty_ok, False, {"read_past_end"}),
    ("signing cert readable without PIN", sign_cert_free, False, {"sign_cert_protected"}),
    (
        "empty VERIFY spends a try",
        empty_verify_spends,
        False,
        {"pin_status_auth", "pin_status_sign"},
    ),
    (
        "empty VERIFY answers 9000",
        verify_status_9000,
        False,
        {"pin_status_auth", "pin_status_sign", "pin_status_text", "blocked_key_status"},
    ),
    ("auth cert shorter than its DER header", auth_cert_truncated, False, {"read_auth_cert"}),
    (
        "short chunks",
        short_chunks,
        False,
        {
            "read_auth_cert",
            "read_auth_ca_cert",
            "read_sign_ca_cert",
            "cvc_chain_text",
            "cvc_chain_visual",
        },
    ),
    ("auth slot holds the CA certificate", auth_slot_holds_ca, False, {"cert_kinds"}),
    ("private key EF readable", key_ef_readable, False, {"key_ef_unreadable"}),
    ("signing without PIN", sign_without_pin_works, False, {"sign_without_pin"}),
    (
        "card info readable without PIN",
        text_info_free,
        False,
        {"card_info_protected", "access_split"},
    ),
    ("unknown token label", bad_label, False, {"token_info", "token_info_size"}),
    ("bad signature", bad_signature, True, {"sign_auth_round_trip", "sign_schemes"}),
]


@pytest.mark.parametrize(
    ("mutate", "with_pin", "expected"),
    [pytest.param(m, w, e, id=name) for name, m, w, e in BROKEN],
)
def test_broken_card_fails_the_right_checks(
    sim_profile: Path, mutate: Mutator, with_pin: bool, expected: set[str]
) -> None:
    card = BrokenCard(sim_profile)
    card.mutate = mutate
    report = _run(card, with_pin=with_pin, pin=AUTH_PIN)
    assert _failed(report) == expected, [(c.name, c.detail) for c in report.failed]
    for c in report.failed:
        # The evidence is there (cert_kinds judges certificates the read checks fetched).
        assert c.transcript or c.name == "cert_kinds"
    assert report.aborted is None


def test_security_state_kept_across_df_select_fails(sim_profile: Path) -> None:
    card = BrokenCard(sim_profile)
    card.keep_pins_on_select = True
    report = _run(card, with_pin=True, pin=AUTH_PIN)
    assert _failed(report) == {"security_cleared_by_df_select"}


# --- transport errors ------------------------------------------------------------------------


def test_card_removed_aborts(sim_profile: Path) -> None:
    card = FaultyCard(SimulatedCard(sim_profile), FaultConfig(remove_at=12))
    report = _run(card)
    assert report.aborted is not None
    assert not report.ok
    failed = report.failed
    assert len(failed) == 1 and "transport error" in failed[0].detail
    assert failed[0].transcript[-1].sw.startswith("no answer")
    after = report.checks[report.checks.index(failed[0]) + 1 :]
    assert after and all(c.status is CheckStatus.SKIP for c in after)


# --- CLI -------------------------------------------------------------------------------------


def _cli(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["conformance", *args], env=env, input=stdin)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


NO_PIN_SKIPS = {
    "verify_auth_pin",
    "sign_auth_round_trip",
    "sign_schemes",
    "security_cleared_by_df_select",
    "verify_sign_pin",
    "read_sign_cert",
    "sign_sign_round_trip",
}
AUTH_ONLY_SKIPS = {"verify_sign_pin", "read_sign_cert", "sign_sign_round_trip"}


def _cvca(profile: Path, tmp: Path) -> list[str]:
    return ["--cvca-keys", str(write_cvca_dir(profile, tmp / "cvca"))]


def _summary_ok(code: int, data: dict[str, Any], skips: set[str]) -> None:
    """Every check passes but exactly ``skips``; exit 0."""
    failed = {c["name"] for c in data["checks"] if c["status"] == "fail"}
    assert not failed, failed
    assert code == 0 and data["ok"] is True
    assert {c["name"] for c in data["checks"] if c["status"] == "skip"} == skips
    assert data["summary"] == {"pass": len(CHECKS) - len(skips), "fail": 0, "skip": len(skips)}


def test_cli_clean(sim_profile: Path, tmp_path: Path) -> None:
    code, out = _cli("--sim", str(sim_profile), *_cvca(sim_profile, tmp_path))
    assert code == 0, out
    assert f"{len(CHECKS) - 7} passed, 0 failed, 7 skipped" in out
    code, out = _cli("--sim", str(sim_profile), *_cvca(sim_profile, tmp_path), "--json")
    _summary_ok(code, json.loads(out), NO_PIN_SKIPS)


def test_cli_json_with_pin_stdin(sim_profile: Path) -> None:
    code, out = _cli(
        "--sim", str(sim_profile), "--with-pin", "--pin-stdin", "--json", stdin="1234\n"
    )
    data = json.loads(out)
    assert data["with_pin"] is True and data["aborted"] is None
    # No --cvca-keys: the profile's test CVCA is unknown, so the CVC checks skip.
    _summary_ok(code, data, AUTH_ONLY_SKIPS | {"cvc_chain_text", "cvc_chain_visual"})
    check = next(c for c in data["checks"] if c["name"] == "verify_auth_pin")
    assert check["status"] == "pass"
    assert {"command", "sw", "response_length"} <= set(check["transcript"][0])
    assert "31323334" not in out


def test_cli_sign_pin_env(sim_profile: Path, tmp_path: Path) -> None:
    env = {"AUTH": "1234", "SIGN": "jpkitest01"}  # lower case is upper-cased by the client
    code, out = _cli(
        "--sim",
        str(sim_profile),
        "--with-pin",
        "--pin-env",
        "AUTH",
        "--sign-pin-env",
        "SIGN",
        *_cvca(sim_profile, tmp_path),
        "--json",
        env=env,
    )
    _summary_ok(code, json.loads(out), set())


def test_cli_failure_exit_1_shows_transcript(sim_profile: Path) -> None:
    (sim_profile / "faults.json").write_text(json.dumps({"status_words": {"5A": "6A86"}}))
    code, out = _cli("--sim", str(sim_profile))
    assert code == 1, out
    assert "FAIL  unknown_ins" in out
    assert ">> 00 5A 00 00" in out and "<< 6A86" in out


def test_cli_card_removed_exit_4(sim_profile: Path) -> None:
    (sim_profile / "faults.json").write_text(json.dumps({"remove_at": 5}))
    code, out = _cli("--sim", str(sim_profile))
    assert code == 4, out
    assert "aborted" in out


def test_cli_pin_options_need_with_pin(sim_profile: Path) -> None:
    code, out = _cli("--sim", str(sim_profile), "--pin-env", "X")
    assert code == 2
    assert "--with-pin" in out


# --- over the vpcd bridge (TCP on 127.0.0.1, no pcscd) ----------------------------------------


def test_clean_over_vpcd_bridge(sim_profile: Path) -> None:
    from jpki.sim.vpcd_card import VpcdCardSide
    from jpki.transport.vpcd import VpcdListener

    with VpcdListener("127.0.0.1", 0, timeout=10.0) as listener:
        host, port = listener.address
        side = VpcdCardSide(SimulatedCard(sim_profile), host, port, retry_interval=0.05)
        side.start()
        try:
            with listener.accept_connection() as conn:
                keys = profile_cvca_keys(sim_profile)
                report = run_conformance(conn, with_pin=True, pin=AUTH_PIN, cvca_keys=keys)
        finally:
            side.stop()
    assert _clean(report), [(c.name, c.detail) for c in report.failed]
    assert report.check("sign_auth_round_trip").status is CheckStatus.PASS
    assert _tries(sim_profile)[KeyId.AUTH_PIN] == 3


def test_cli_over_bridge(sim_profile: Path) -> None:
    """`jpki conformance --bridge HOST:PORT` listens; the simulator's vpcd card side connects."""
    import socket

    from jpki.sim.vpcd_card import VpcdCardSide

    with socket.socket() as probe:  # a free port on 127.0.0.1 for the CLI to listen on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    side = VpcdCardSide(SimulatedCard(sim_profile), "127.0.0.1", port, retry_interval=0.05)
    side.start()
    try:
        code, out = _cli("--bridge", f"127.0.0.1:{port}", "--timeout", "10", "--json")
    finally:
        side.stop()
    data = json.loads(out[out.index("{") :])
    # No --cvca-keys here: the profile's test CVCA is unknown, so the CVC checks skip.
    _summary_ok(code, data, NO_PIN_SKIPS | {"cvc_chain_text", "cvc_chain_visual"})


def test_issued_by_unknown_signature_algorithm_is_a_reason(test_pki: TestPki) -> None:
    # A card could hold a certificate signed with an algorithm cryptography does not know.
    from jpki.conformance import _issued_by

    leaf = test_pki.issue_signing(sample_person(0))
    sha256_rsa = bytes.fromhex("06092A864886F70D01010B")
    odd = JpkiCertificate.load(leaf.der.replace(sha256_rsa, sha256_rsa[:-1] + b"\x7f"))
    ca = JpkiCertificate.load(test_pki.sign_ca.der)
    assert _issued_by(odd, ca) == "not an RSA PKCS#1 v1.5 signature"
    assert _issued_by(JpkiCertificate.load(leaf.der), ca) is None
