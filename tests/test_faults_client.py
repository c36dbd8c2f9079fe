"""The client under the simulator's injected faults: clear errors, no VERIFY retries, true counts.

Faults come from ``jpki.sim.faults`` (card removal, power loss in VERIFY, slow, corrupted and
unexpected answers). Whatever happens, the client raises a ``JpkiError`` subclass (never a raw
exception), sends each VERIFY at most once, and a fresh session reports the real counter.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from jpki.card import CertSlot, JpkiAp, KeyKind
from jpki.cert import JpkiCertificate
from jpki.cli import main
from jpki.errors import (
    ApduError,
    CardError,
    CardRemovedError,
    FileNotFoundOnCardError,
    JpkiError,
    PinBlocked,
    PinGuardError,
    SecurityStatusError,
    TransportError,
    TransportTimeoutError,
    WrongPin,
)
from jpki.secret import Secret
from jpki.sim import (
    Corruption,
    FaultConfig,
    KeyId,
    ProfileStore,
    SimulatedCard,
    open_simulated_card,
)
from jpki.sim.vpcd_card import VpcdCardSide
from jpki.transport.base import Connection
from jpki.transport.simulated import SimulatedConnection
from jpki.transport.vpcd import VpcdListener

AUTH_PIN = Secret("1234")


class Spy(Connection):
    """Counts what goes through: every command, and VERIFYs that carry PIN data."""

    def __init__(self, inner: Connection) -> None:
        self.inner = inner
        self.commands: list[bytes] = []

    @property
    def atr(self) -> bytes:
        return self.inner.atr

    def _transmit(self, command: bytes) -> bytes:
        self.commands.append(command)
        return self.inner.transmit(command)

    def close(self) -> None:
        self.inner.close()

    @property
    def pin_verifies(self) -> int:
        return sum(1 for c in self.commands if c[1] == 0x20 and len(c) > 5)


def session(conn: Connection, pin: Secret = AUTH_PIN) -> bytes:
    """What a relying-party login does with a card: returns the verified signature."""
    ap = JpkiAp(conn)
    ap.token_info()
    certs = {s: JpkiCertificate.load(ap.read_certificate(s)) for s in CertSlot if s.value != "sign"}
    ap.pin_status(KeyKind.AUTH)
    ap.verify_pin(KeyKind.AUTH, pin)
    message = b"login challenge"
    signature = ap.sign_data(KeyKind.AUTH, message)
    key = certs[CertSlot.AUTH].public_key
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    return signature


def _fresh_tries(profile: Path, key: KeyId = KeyId.AUTH_PIN) -> int | None:
    """Tries left as a new client session reads them (empty VERIFY), on a new card object."""
    with SimulatedConnection(SimulatedCard(profile)) as conn:
        return (
            JpkiAp(conn)
            .pin_status(KeyKind.AUTH if key is KeyId.AUTH_PIN else KeyKind.SIGNING)
            .tries_left
        )


@pytest.fixture(scope="module")
def session_length(sim_template: Path, tmp_path_factory: pytest.TempPathFactory) -> int:
    import shutil

    profile = Path(shutil.copytree(sim_template, tmp_path_factory.mktemp("len") / "card"))
    spy = Spy(SimulatedConnection(SimulatedCard(profile)))
    session(spy)
    return len(spy.commands)


def test_clean_session(sim_profile: Path, session_length: int) -> None:
    spy = Spy(SimulatedConnection(SimulatedCard(sim_profile)))
    session(spy)
    assert spy.pin_verifies == 1
    assert 15 < session_length < 80


# --- card removed ----------------------------------------------------------------------------


def test_card_removed_at_every_apdu(sim_profile: Path, session_length: int) -> None:
    for n in range(1, session_length + 1):
        card = open_simulated_card(sim_profile, faults=FaultConfig(remove_at=n))
        spy = Spy(SimulatedConnection(card))
        with pytest.raises(CardRemovedError):
            session(spy)
        assert len(spy.commands) == n, "the client sent nothing after the card went away"
        assert spy.pin_verifies <= 1
        card.close()
        # Whatever the moment, a fresh session finds a consistent card; the counter is back
        # to 3 (the removal came before the VERIFY, or after the good one reset it).
        assert _fresh_tries(sim_profile) == 3


def test_reinserted_card_works(sim_profile: Path) -> None:
    card = open_simulated_card(sim_profile, faults=FaultConfig(remove_at=4))
    conn = SimulatedConnection(card)
    with pytest.raises(CardRemovedError):
        session(conn)
    with pytest.raises(CardRemovedError):
        conn.transmit(bytes.fromhex("00A4040C0AD392F000260100000001"))
    conn.reset()  # re-insert: power-on, security state cleared
    session(conn)


# --- power lost during VERIFY ----------------------------------------------------------------


@pytest.mark.parametrize("pin", [AUTH_PIN, Secret("9999")], ids=["right", "wrong"])
def test_power_loss_in_verify_spends_the_try_and_is_not_retried(
    sim_profile: Path, pin: Secret
) -> None:
    card = open_simulated_card(sim_profile, faults=FaultConfig(power_loss_at_verify=1))
    spy = Spy(SimulatedConnection(card))
    ap = JpkiAp(spy)
    with pytest.raises(TransportError):
        ap.verify_pin(KeyKind.AUTH, pin)
    assert spy.pin_verifies == 1
    # The same session cannot go on (the card is gone) and sends no second VERIFY.
    with pytest.raises(TransportError):
        ap.verify_pin(KeyKind.AUTH, pin)
    assert spy.pin_verifies == 1
    card.close()
    # A fresh session reports the spent try: tearing never gives a free try.
    assert _fresh_tries(sim_profile) == 2
    # ...and a good VERIFY afterwards restores the counter.
    with SimulatedConnection(SimulatedCard(sim_profile)) as conn:
        JpkiAp(conn).verify_pin(KeyKind.AUTH, AUTH_PIN)
    assert _fresh_tries(sim_profile) == 3


def test_repeated_power_loss_ends_at_the_guard(sim_profile: Path) -> None:
    for expected_after in (2, 1):
        card = open_simulated_card(sim_profile, faults=FaultConfig(power_loss_at_verify=1))
        with pytest.raises(TransportError):
            JpkiAp(SimulatedConnection(card)).verify_pin(KeyKind.AUTH, AUTH_PIN)
        card.close()
        assert _fresh_tries(sim_profile) == expected_after
    # One try left: the client refuses to risk it without force, sending no PIN at all.
    spy = Spy(SimulatedConnection(SimulatedCard(sim_profile)))
    with pytest.raises(PinGuardError):
        JpkiAp(spy).verify_pin(KeyKind.AUTH, AUTH_PIN)
    assert spy.pin_verifies == 0
    JpkiAp(spy).verify_pin(KeyKind.AUTH, AUTH_PIN, force=True)
    assert _fresh_tries(sim_profile) == 3


# --- slow answers ----------------------------------------------------------------------------


def test_slow_answers_in_process_only_take_longer(sim_profile: Path) -> None:
    slept: list[float] = []
    faults = FaultConfig(delay=2.5, delay_ins=frozenset({0x2A}))
    card = open_simulated_card(sim_profile, faults=faults, sleep=slept.append)
    session(SimulatedConnection(card))
    assert slept == [2.5]


def _vpcd_card(profile: Path, faults: FaultConfig, lst: VpcdListener) -> VpcdCardSide:
    host, port = lst.address
    side = VpcdCardSide(
        open_simulated_card(profile, faults=faults), host, port, retry_interval=0.05
    )
    side.start()
    return side


def test_slow_answer_over_bridge_times_out_cleanly(sim_profile: Path) -> None:
    faults = FaultConfig(delay=0.6, delay_ins=frozenset({0x2A}))
    with VpcdListener("127.0.0.1", 0, timeout=5.0, apdu_timeout=0.2) as lst:
        side = _vpcd_card(sim_profile, faults, lst)
        try:
            conn = lst.accept_connection()
            with pytest.raises(TransportTimeoutError):
                session(conn)
            # The stream is dropped (a late answer must never be taken for the next one's).
            with pytest.raises(TransportError):
                conn.transmit(bytes.fromhex("00A4040C0AD392F000260100000001"))
            conn.close()
        finally:
            side.stop()
    # The PIN was verified before the slow sign: the counter is intact.
    assert _fresh_tries(sim_profile) == 3


# --- corrupted answers -----------------------------------------------------------------------


@pytest.mark.parametrize("how", list(Corruption))
def test_corrupted_answer_at_every_apdu(
    sim_profile: Path, session_length: int, how: Corruption
) -> None:
    outcomes: dict[str, int] = {}
    for n in range(1, session_length + 1):
        card = open_simulated_card(
            sim_profile, faults=FaultConfig(corrupt_at=frozenset({n}), corruption=how)
        )
        spy = Spy(SimulatedConnection(card))
        try:
            session(spy)
            outcome = "ok"
        except JpkiError as exc:  # CardError / ApduError / CertificateError / ...: never raw
            outcome = type(exc).__name__
        except InvalidSignature:
            outcome = "signature rejected by the relying party"  # the bit flipped in the signature
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        assert spy.pin_verifies <= 1, "a corrupted answer must never make the client retry VERIFY"
        card.close()
        assert _fresh_tries(sim_profile) == 3
    if how is Corruption.TRUNCATE:
        # Half an answer never passes silently: it loses its status word or its data.
        assert "ok" not in outcomes, outcomes
        assert set(outcomes) <= {"CardError", "ApduError"}, outcomes
    else:
        # A flipped bit in data the client cannot check (padding, a certificate's signature)
        # may pass; a flipped status word never does.
        assert outcomes.get("ApduError", 0) > 0, outcomes


def test_truncated_answer_is_a_card_error(sim_profile: Path) -> None:
    faults = FaultConfig(corrupt_ins=frozenset({0xA4}), corruption=Corruption.TRUNCATE)
    with pytest.raises(CardError, match="no status word"):
        JpkiAp(SimulatedConnection(open_simulated_card(sim_profile, faults=faults)))


def test_corrupted_verify_answer_is_not_retried(sim_profile: Path) -> None:
    faults = FaultConfig(corrupt_ins=frozenset({0x20}), corruption=Corruption.BITFLIP)
    spy = Spy(SimulatedConnection(open_simulated_card(sim_profile, faults=faults)))
    with pytest.raises(JpkiError):
        JpkiAp(spy).verify_pin(KeyKind.AUTH, AUTH_PIN)
    assert spy.pin_verifies <= 1
    assert _fresh_tries(sim_profile) in (3, None)


# --- unexpected status words -----------------------------------------------------------------

Action = Callable[[JpkiAp], object]


def _read_auth(ap: JpkiAp) -> object:
    return ap.read_certificate(CertSlot.AUTH)


def _verify(ap: JpkiAp) -> object:
    ap.verify_pin(KeyKind.AUTH, AUTH_PIN)
    return None


def _sign(ap: JpkiAp) -> object:
    ap.verify_pin(KeyKind.AUTH, AUTH_PIN)
    return ap.sign_data(KeyKind.AUTH, b"x")


UNEXPECTED: list[tuple[int, int, Action, type[JpkiError], int]] = [
    # (INS, SW every command with that INS gets, action, error, PIN VERIFYs that may be sent)
    (0xB0, 0x6F00, _read_auth, ApduError, 0),
    (0xB0, 0x6982, _read_auth, SecurityStatusError, 0),
    (0xB0, 0x6B00, _read_auth, CardError, 0),
    (0xB0, 0x6281, _read_auth, ApduError, 0),
    (0xB0, 0x6C10, _read_auth, ApduError, 0),  # re-sent a bounded number of times, then error
    (0xB0, 0x6110, _read_auth, JpkiError, 0),  # GET RESPONSE goes to a card that has none
    (0x20, 0x6984, _verify, PinBlocked, 0),  # blocked: no PIN sent
    (0x20, 0x63C1, _verify, PinGuardError, 0),  # last try: no PIN sent
    (0x20, 0x6700, _verify, ApduError, 0),
    (0x20, 0x6C04, _verify, ApduError, 0),  # a 6Cxx on a PIN command is never re-sent
    (0x2A, 0x6A88, _sign, ApduError, 1),
    (0x2A, 0x6982, _sign, SecurityStatusError, 1),
    (0x2A, 0x9000, _sign, CardError, 1),  # "signature" of zero bytes
]


@pytest.mark.parametrize(
    ("ins", "sw", "action", "error", "verifies"),
    [pytest.param(*u, id=f"{u[0]:02X}->{u[1]:04X}") for u in UNEXPECTED],
)
def test_unexpected_status_words(
    sim_profile: Path,
    ins: int,
    sw: int,
    action: Action,
    error: type[JpkiError],
    verifies: int,
) -> None:
    card = open_simulated_card(sim_profile, faults=FaultConfig(status_words={ins: sw}))
    spy = Spy(SimulatedConnection(card))
    ap = JpkiAp(spy)
    with pytest.raises(error) as info:
        action(ap)
    if isinstance(info.value, ApduError) and sw != 0x9000 and ins != 0x20:
        assert info.value.sw in (sw, 0x6D00)  # 6D00: the card's answer to a GET RESPONSE
    assert spy.pin_verifies == verifies
    assert len(spy.commands) < 40, "bounded: no loop on a status word"


def test_unknown_application_is_file_not_found(sim_profile: Path) -> None:
    card = open_simulated_card(sim_profile, faults=FaultConfig(status_words={0xA4: 0x6A82}))
    with pytest.raises(FileNotFoundOnCardError):
        JpkiAp(SimulatedConnection(card))


def test_pin_status_reports_blocked_without_sending_a_pin(sim_profile: Path) -> None:
    card = open_simulated_card(sim_profile, faults=FaultConfig(status_words={0x20: 0x6984}))
    spy = Spy(SimulatedConnection(card))
    status = JpkiAp(spy).pin_status(KeyKind.AUTH)
    assert status.blocked and status.tries_left == 0
    assert spy.pin_verifies == 0


# --- PIN counts: the client never reports a wrong one -----------------------------------------

WRONG_PIN = Secret("9999")


def _reported_counts(card: SimulatedCard) -> tuple[list[tuple[str, int, int]], Spy]:
    """Counts the client reports (empty VERIFY, then a wrong PIN), each with the card's own."""
    spy = Spy(SimulatedConnection(card))
    reports: list[tuple[str, int, int]] = []
    try:
        ap = JpkiAp(spy)
        status = ap.pin_status(KeyKind.AUTH)
        if status.tries_left is not None:
            reports.append(("status", status.tries_left, card.tries_left(KeyId.AUTH_PIN)))
        ap.verify_pin(KeyKind.AUTH, WRONG_PIN)
    except WrongPin as exc:
        reports.append(("wrong PIN", exc.retries_left, card.tries_left(KeyId.AUTH_PIN)))
    except JpkiError:
        pass  # a clear error instead of a count: fine
    return reports, spy


@pytest.mark.parametrize(
    "fault",
    ["remove", "power_loss", *(f"corrupt-{c.value}" for c in Corruption)],
)
def test_client_never_reports_a_wrong_pin_count(sim_profile: Path, fault: str) -> None:
    """Whatever APDU the fault hits, every count the client reports is the card's real one.

    A flipped bit in a 63Cx status word that still reads as a plausible lower count cannot be
    told from a real one; a count above the maximum, or a wrong PIN that did not lower the
    count, is refused as a CardError. So under bit flips the client may under-report but never
    reports more tries than the card has (more would let the last-try guard be passed).
    """
    store = ProfileStore(sim_profile)
    reported = 0
    for n in range(1, 9):
        store.reset_state()
        how = Corruption(fault.split("-", 1)[1]) if fault.startswith("corrupt") else None
        faults = {
            "remove": FaultConfig(remove_at=n),
            "power_loss": FaultConfig(power_loss_at_verify=1, remove_at=n + 5),
        }.get(fault) or FaultConfig(corrupt_at=frozenset({n}), corruption=how or Corruption.BITFLIP)
        card = open_simulated_card(sim_profile, faults=faults)
        reports, spy = _reported_counts(card)
        card.close()
        assert spy.pin_verifies <= 1
        for what, said, real in reports:
            reported += 1
            assert 0 <= said <= 3, (n, what, said)
            if how is Corruption.BITFLIP:
                assert said <= real, f"APDU {n}: {what} reported {said} tries, the card has {real}"
            else:
                assert said == real, f"APDU {n}: {what} reported {said} tries, the card has {real}"
        # A fresh session then reads the counter the card really has.
        assert _fresh_tries(sim_profile) == card.tries_left(KeyId.AUTH_PIN)
    assert reported > 0, "the faults left no count to check"


@pytest.mark.parametrize("sw", [0x63C4, 0x63CF], ids=["63C4", "63CF"])
def test_count_above_the_maximum_is_refused_and_no_pin_sent(sim_profile: Path, sw: int) -> None:
    card = open_simulated_card(sim_profile, faults=FaultConfig(status_words={0x20: sw}))
    spy = Spy(SimulatedConnection(card))
    with pytest.raises(CardError, match="more than its maximum 3"):
        JpkiAp(spy).pin_status(KeyKind.AUTH)
    with pytest.raises(CardError, match="more than its maximum 3"):
        JpkiAp(spy).verify_pin(KeyKind.AUTH, AUTH_PIN)
    assert spy.pin_verifies == 0


def test_wrong_pin_answer_that_does_not_lower_the_count_is_refused(sim_profile: Path) -> None:
    """Card says 3 tries, then answers the wrong PIN with 63C3: not passed on as a count."""
    card = open_simulated_card(sim_profile, faults=FaultConfig(status_words={0x20: 0x63C3}))
    spy = Spy(SimulatedConnection(card))
    with pytest.raises(CardError, match="not fewer than the 3 before"):
        JpkiAp(spy).verify_pin(KeyKind.AUTH, WRONG_PIN)
    assert spy.pin_verifies == 1


# --- CLI: one line, right exit code, no traceback ---------------------------------------------


@pytest.mark.parametrize(
    ("faults", "code"),
    [
        ({"remove_at": 3}, 4),
        ({"corrupt_ins": ["B0"], "corruption": "truncate"}, 4),
        ({"status_words": {"A4": "6A82"}}, 4),
        ({"status_words": {"B0": "6F00"}}, 4),
    ],
)
def test_cli_card_status_under_faults(
    sim_profile: Path, faults: dict[str, object], code: int
) -> None:
    (sim_profile / "faults.json").write_text(json.dumps(faults))
    result = CliRunner().invoke(main, ["card", "status", "--sim", str(sim_profile)])
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert result.output.strip().startswith("error:")
    assert len(result.output.strip().splitlines()) == 1


def test_threads_do_not_leak() -> None:
    """The vpcd card sides started above are stopped (daemon threads named vpcd-card)."""
    assert not [t for t in threading.enumerate() if t.name == "vpcd-card" and t.is_alive()]
