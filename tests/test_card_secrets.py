"""Secrets stay secret: PINs and the My Number never reach logs, reprs, errors or argv.

A whole session (JPKI AP, input-support AP, card-surface AP, PIN change, wrong PINs) runs with
every logger at DEBUG, in process and over the vpcd bridge, and through the CLI with ``-vv``;
no log record may carry a PIN, the collation B value or the My Number, as text or as the hex
of its ASCII bytes (the APDU trace prints command data in hex).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from jpki.apdu import CommandApdu
from jpki.card import IntegrityStatus, JpkiAp, KeyKind, TextAp, VisualAp
from jpki.card.jpki_ap import CertSlot
from jpki.card.protocol import CardProtocol
from jpki.cli import main
from jpki.errors import JpkiError, PinFormatError, WrongPin
from jpki.mynumber import MyNumber
from jpki.secret import Secret
from jpki.sim import SimulatedCard
from jpki.sim.profile import CardState, KeyId, ProfileStore
from jpki.sim.vpcd_card import VpcdCardSide
from jpki.testing.pki import sample_person
from jpki.transport.base import Connection
from jpki.transport.simulated import SimulatedConnection
from jpki.transport.vpcd import VpcdListener
from sim_trust import sim_keyring, write_cvca_dir

AUTH, SIGN, SUPPORT = "1234", "JPKITEST01", "5678"
NEW_AUTH, WRONG_AUTH, WRONG_SUPPORT = "9876", "4321", "8765"


def _profile_secrets(profile: Path) -> tuple[str, str]:
    store = ProfileStore(profile)
    p = store.profile
    return p.person.my_number, p.initial_value(KeyId.VISUAL_B)


def _forbidden(profile: Path) -> list[str]:
    my_number, collation_b = _profile_secrets(profile)
    values = [AUTH, SIGN, SUPPORT, NEW_AUTH, WRONG_AUTH, WRONG_SUPPORT, my_number, collation_b]
    # As text, and as the hex of the ASCII bytes an APDU trace would print (either case).
    return values + [v.encode().hex() for v in values] + [v.encode().hex().upper() for v in values]


def _leaks(text: str, forbidden: list[str]) -> list[str]:
    return [v for v in forbidden if v in text]


def _records_text(records: list[logging.LogRecord]) -> str:
    fmt = logging.Formatter("%(name)s %(message)s")
    return "\n".join(fmt.format(r) for r in records)


#: Expected exit code "the integrity result": 0 with the profile's CVCA keys, else 3.
INTEGRITY = -1
CVCA = ["--cvca-keys", "{cvca}"]


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    for name in ("jpki", "jpki.apdu", "jpki.sim", "jpki.sim.vpcd", "jpki.transport.vpcd"):
        caplog.set_level(logging.DEBUG, logger=name)
    yield caplog


def _session(conn: Connection, collation_b: str, profile: Path) -> None:
    """Every secret-bearing operation the client has, including failing ones."""
    proto = CardProtocol(conn)
    jpki = JpkiAp(proto)
    jpki.token_info()
    jpki.pin_status(KeyKind.AUTH)
    with pytest.raises(WrongPin):
        jpki.verify_pin(KeyKind.AUTH, Secret(WRONG_AUTH))
    jpki.verify_pin(KeyKind.AUTH, Secret(AUTH))
    jpki.sign_data(KeyKind.AUTH, b"challenge")
    jpki.change_pin(KeyKind.AUTH, Secret(AUTH), Secret(NEW_AUTH))
    jpki.change_pin(KeyKind.AUTH, Secret(NEW_AUTH), Secret(AUTH))
    jpki.verify_pin(KeyKind.SIGNING, Secret(SIGN.lower()))
    for slot in CertSlot:
        jpki.read_certificate(slot)
    jpki.sign_data(KeyKind.SIGNING, b"document")
    text_ap = TextAp(proto, keyring=sim_keyring(profile))
    with pytest.raises(WrongPin):
        text_ap.verify_pin(Secret(WRONG_SUPPORT))
    text_ap.verify_pin(Secret(SUPPORT))
    info = text_ap.read_card_info()
    assert info.integrity.status is IntegrityStatus.VALID
    visual = VisualAp(proto)
    visual.unlock_collation_a(info.my_number)
    visual.read_surface()
    visual.read_my_number_image()
    visual = VisualAp(proto)
    visual.unlock_collation_b(Secret(collation_b))
    visual.read_surface()


def test_full_session_logs_no_secret_in_process(
    sim_profile: Path, debug_logs: pytest.LogCaptureFixture
) -> None:
    _, collation_b = _profile_secrets(sim_profile)
    with SimulatedConnection(SimulatedCard(sim_profile)) as conn:
        _session(conn, collation_b, sim_profile)
    text = _records_text(debug_logs.records)
    assert ">> 00 20 00 80 [secret]" in text  # the APDU trace was really on
    assert not _leaks(text, _forbidden(sim_profile))


def test_full_session_logs_no_secret_over_the_bridge(
    sim_profile: Path, debug_logs: pytest.LogCaptureFixture
) -> None:
    _, collation_b = _profile_secrets(sim_profile)
    card = SimulatedCard(sim_profile)
    with VpcdListener("127.0.0.1", 0, timeout=5.0) as listener:
        side = VpcdCardSide(card, *listener.address, retry_interval=0.05)
        side.start()
        try:
            with listener.accept_connection(timeout=5) as conn:
                _session(conn, collation_b, sim_profile)
        finally:
            side.stop()
            card.close()
    text = _records_text(debug_logs.records)
    assert "vpcd card side connected" in text
    assert not _leaks(text, _forbidden(sim_profile))


@pytest.mark.parametrize(
    ("argv", "env", "code"),
    [
        (["card", "verify-pin", "auth", "--pin-env", "P"], {"P": AUTH}, 0),
        (["card", "verify-pin", "auth", "--pin-env", "P"], {"P": WRONG_AUTH}, 4),
        (["card", "verify-pin", "auth", "--pin-env", "P"], {"P": "12a4"}, 4),  # bad format
        (["card", "read-cert", "sign", "--pin-env", "P", "--out", "{tmp}/s.der"], {"P": SIGN}, 0),
        (["card", "sign", "sign", "--pin-env", "P", "--digest", "00" * 32], {"P": SIGN}, 0),
        (
            ["card", "change-pin", "auth", "--pin-env", "O", "--new-pin-env", "N"],
            {"O": AUTH, "N": NEW_AUTH},
            0,
        ),
        (["card", "info", "--pin-env", "P", "--json", *CVCA], {"P": SUPPORT}, INTEGRITY),
        (["card", "info", "--pin-env", "P"], {"P": WRONG_SUPPORT}, 4),
        (
            ["card", "surface", "--pin-env", "P", "--out", "{tmp}/s", "--json", *CVCA],
            {"P": SUPPORT},
            INTEGRITY,
        ),
        (
            ["card", "surface", "--collation-b-env", "B", "--out", "{tmp}/b", *CVCA],
            {"B": "{b}"},
            INTEGRITY,
        ),
        (["card", "status", "--json"], {}, 0),
    ],
)
def test_cli_with_apdu_trace_prints_and_logs_no_secret(
    sim_profile: Path,
    tmp_path: Path,
    debug_logs: pytest.LogCaptureFixture,
    argv: list[str],
    env: dict[str, str],
    code: int,
) -> None:
    _, collation_b = _profile_secrets(sim_profile)
    cvca = write_cvca_dir(sim_profile, tmp_path / "cvca")
    args = ["-vv", *(a.format(tmp=tmp_path, cvca=cvca) for a in argv), "--sim", str(sim_profile)]
    if code == INTEGRITY:  # valid along the profile's test CVCA (passed with --cvca-keys)
        code = 0
    environ = {k: v.format(b=collation_b) for k, v in env.items()}
    result = CliRunner().invoke(main, args, env=environ)
    # The exact code: a command failing early (say, on the card) would leak-check too little.
    assert result.exit_code == code, result.output
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    text = _records_text(debug_logs.records)
    assert ">> 00 A4" in text  # the trace was on
    forbidden = _forbidden(sim_profile)
    assert not _leaks(text, forbidden)
    assert not _leaks(result.output, forbidden)  # stdout and stderr (mixed by CliRunner)


def test_card_info_shows_my_number_only_when_asked(sim_profile: Path) -> None:
    my_number, _ = _profile_secrets(sim_profile)
    base = ["card", "info", "--sim", str(sim_profile), "--pin-env", "P"]
    hidden = CliRunner().invoke(main, base, env={"P": SUPPORT})
    # No --cvca-keys: the profile's own test CVCA is not trusted, so integrity is undecided.
    assert hidden.exit_code == 3, hidden.output
    assert my_number not in hidden.output.replace(" ", "")
    shown = CliRunner().invoke(main, [*base, "--show-my-number"], env={"P": SUPPORT})
    assert my_number in shown.output.replace(" ", "")


# --- reprs and exception messages -----------------------------------------------------------


def test_reprs_hide_pins_and_my_number(sim_profile: Path) -> None:
    my_number, collation_b = _profile_secrets(sim_profile)
    forbidden = [AUTH, NEW_AUTH, my_number, collation_b, "3132333", b"1234".hex()]
    store = ProfileStore(sim_profile)
    state = CardState(
        tries_left=dict(store.profile.max_tries), changed_pins={KeyId.AUTH_PIN: NEW_AUTH}
    )
    card = SimulatedCard(sim_profile)
    objects: list[object] = [
        Secret(AUTH),
        MyNumber(my_number),
        CommandApdu(0x00, 0x20, 0x00, 0x80, AUTH.encode()),  # VERIFY
        CommandApdu(0x00, 0x24, 0x01, 0x80, NEW_AUTH.encode()),  # CHANGE REFERENCE DATA
        CommandApdu(0x00, 0x20, 0x00, 0x80, my_number.encode()),  # collation A
        state,
        store.profile,
        store.profile.person,
        sample_person(0),
        card,
    ]
    for obj in objects:
        for shown in (repr(obj), str(obj), f"{obj}"):
            assert not _leaks(shown, forbidden), (type(obj).__name__, shown)
    card.close()


def test_card_info_repr_hides_my_number(sim_profile: Path) -> None:
    my_number, _ = _profile_secrets(sim_profile)
    with SimulatedConnection(SimulatedCard(sim_profile)) as conn:
        text_ap = TextAp(conn)
        text_ap.verify_pin(Secret(SUPPORT))
        info = text_ap.read_card_info()
    assert info.my_number.reveal() == my_number
    assert my_number not in repr(info) and my_number not in str(info)


@pytest.mark.parametrize("bad", ["12a4", "123", "12345", "x" * 40, "ｱｲｳｴ"])
def test_errors_never_quote_the_pin(sim_profile: Path, bad: str) -> None:
    if not bad.isascii():
        with pytest.raises(PinFormatError) as info0:
            Secret(bad)
        # No UnicodeEncodeError (which keeps the value) riding along as __context__ either.
        assert bad not in str(info0.value) and info0.value.__context__ is None
        return
    with SimulatedConnection(SimulatedCard(sim_profile)) as conn:
        jpki = JpkiAp(conn)
        for kind in KeyKind:
            with pytest.raises(PinFormatError) as info:
                jpki.verify_pin(kind, Secret(bad))
            assert bad not in str(info.value) and bad not in repr(info.value)
        with pytest.raises(JpkiError) as info2:
            TextAp(conn).verify_pin(Secret(bad))
        assert bad not in str(info2.value)


def test_wrong_pin_error_says_tries_not_the_pin(sim_profile: Path) -> None:
    with SimulatedConnection(SimulatedCard(sim_profile)) as conn, pytest.raises(WrongPin) as info:
        JpkiAp(conn).verify_pin(KeyKind.AUTH, Secret(WRONG_AUTH))
    assert info.value.retries_left == 2
    assert WRONG_AUTH not in str(info.value) and AUTH not in str(info.value)


def test_no_cli_option_takes_a_secret_as_its_value() -> None:
    """PINs, passwords and collation values only via *-env VAR, *-stdin flags or a prompt."""
    secretish = re.compile(r"pin|pass|secret|collation|my.?number", re.I)

    def walk(cmd: click.Command, path: str) -> Iterator[tuple[str, click.Parameter]]:
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                yield from walk(sub, f"{path} {name}")
        else:
            for param in cmd.params:
                yield path, param

    checked = 0
    for path, param in walk(main, "jpki"):
        if not secretish.search(param.name or ""):
            continue
        checked += 1
        is_flag = isinstance(param, click.Option) and param.is_flag
        names_a_variable = all(o.endswith("-env") for o in param.opts)
        assert is_flag or names_a_variable, f"{path} {param.opts} takes a secret as a value"
    assert checked >= 10  # the card commands' --pin-env/--pin-stdin were seen


def test_simulator_compares_pins_in_constant_time(
    sim_profile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hmac

    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    # jpki.sim.card calls hmac.compare_digest through the module (no local alias to miss).
    monkeypatch.setattr(hmac, "compare_digest", spy)
    with SimulatedConnection(SimulatedCard(sim_profile)) as conn:
        JpkiAp(conn).verify_pin(KeyKind.AUTH, Secret(AUTH))
        with pytest.raises(WrongPin):
            TextAp(conn).verify_pin(Secret(WRONG_SUPPORT))
    assert [a for a, _ in calls] == [AUTH.encode(), WRONG_SUPPORT.encode()]
