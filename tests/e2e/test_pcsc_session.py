"""The JPKI session through pyscard → pcscd → vpcd → our simulator's card side."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from jpki.card.jpki_ap import JpkiAp
from jpki.cli import main
from jpki.errors import (
    AmbiguousReaderError,
    CardRemovedError,
    NoCardError,
    SecurityStatusError,
    SharingViolationError,
    TransportError,
    WrongPin,
)
from jpki.secret import Secret
from jpki.sim import open_simulated_card
from jpki.transport.base import Connection
from jpki.transport.pcsc import PcscConnection, list_readers
from jpki.transport.simulated import SimulatedConnection

from .conftest import AUTH_PIN, VPCD_PORT, InsertedCard, card_present, sim_card

pytestmark = pytest.mark.pcscd

JPKI_ATR = bytes.fromhex("3BE000FF8131FE4514")


def test_readers_lists_the_inserted_card(inserted_card: InsertedCard) -> None:
    info = {r.name: r for r in list_readers()}[inserted_card.reader]
    assert info.card_present and info.atr == JPKI_ATR
    result = CliRunner().invoke(main, ["readers", "--json"])
    assert result.exit_code == 0, result.output
    entry = next(r for r in json.loads(result.output)["readers"] if r["name"] == info.name)
    assert entry == {"name": info.name, "card_present": True, "atr": "3B E0 00 FF 81 31 FE 45 14"}


def test_whole_jpki_session(
    inserted_card: InsertedCard, check_jpki_session: Callable[[Connection, Any], None]
) -> None:
    with PcscConnection.connect(inserted_card.reader, timeout=10) as conn:
        assert conn.atr == JPKI_ATR
        check_jpki_session(conn, inserted_card.card.profile)


def test_substring_and_ambiguous_names(inserted_card: InsertedCard) -> None:
    with PcscConnection.connect(inserted_card.reader[-5:], timeout=5) as conn:
        assert conn.reader == inserted_card.reader
    with pytest.raises(AmbiguousReaderError):
        PcscConnection.connect("Virtual PCD", timeout=5)


def test_reset_clears_the_security_state(inserted_card: InsertedCard) -> None:
    with PcscConnection.connect(inserted_card.reader, timeout=10) as conn:
        ap = JpkiAp(conn)
        ap.verify_pin("auth", Secret(AUTH_PIN))
        ap.sign_data("auth", b"before reset")
        assert conn.reset() == JPKI_ATR  # SCardReconnect(SCARD_RESET_CARD) → vpcd 02
        ap = JpkiAp(conn)
        with pytest.raises(SecurityStatusError):
            ap.sign_data("auth", b"after reset")


def test_card_removed_mid_session_then_inserted_again(
    inserted_card: InsertedCard, check_jpki_session: Callable[[Connection, Any], None]
) -> None:
    conn = PcscConnection.connect(inserted_card.reader, timeout=10)
    ap = JpkiAp(conn)
    ap.verify_pin("auth", Secret(AUTH_PIN))
    assert inserted_card.side is not None
    inserted_card.side.stop()  # pulled out; pcscd's presence poll has not noticed yet
    with pytest.raises(CardRemovedError):
        ap.token_info()
    inserted_card.remove()  # now pcscd has seen the slot empty
    with pytest.raises(CardRemovedError):
        ap.token_info()
    conn.close()
    conn.close()  # idempotent
    with pytest.raises(NoCardError):
        PcscConnection.connect(inserted_card.reader, timeout=0.5)
    inserted_card.insert()
    with PcscConnection.connect(inserted_card.reader, timeout=10) as again:
        # A new insertion is a new power-up: the PIN verified before is forgotten.
        with pytest.raises(SecurityStatusError):
            JpkiAp(again).sign_data("auth", b"x")
        check_jpki_session(again, inserted_card.card.profile)


def test_transport_errors_are_jpki_errors(inserted_card: InsertedCard) -> None:
    conn = PcscConnection.connect(inserted_card.reader, timeout=10)
    conn.close()
    with pytest.raises(TransportError, match="closed"):
        conn.transmit(b"\x00\xa4\x04\x0c")


def test_exclusive_share_blocks_a_second_connection(inserted_card: InsertedCard) -> None:
    with (
        PcscConnection.connect(inserted_card.reader, timeout=10, share="exclusive"),
        pytest.raises(SharingViolationError),
    ):
        PcscConnection.connect(inserted_card.reader, timeout=2)


def test_card_command_with_reader_option(inserted_card: InsertedCard) -> None:
    # The user-facing path: `jpki card status --reader NAME` through pcscd.
    result = CliRunner().invoke(
        main, ["card", "status", "--reader", inserted_card.reader, "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["token_label"] == "JPKIAPICCTOKEN2"
    ambiguous = CliRunner().invoke(main, ["card", "status", "--reader", "Virtual", "--json"])
    assert ambiguous.exit_code == 2
    assert "ambiguous" in ambiguous.output


def test_sim_serve_process_into_pcscd_keeps_state(pcscd: str, tmp_path: Path) -> None:
    """`jpki sim serve PROFILE` as pcscd's card; a wrong PIN outlives the server process."""
    profile = tmp_path / "card"
    sim_card(profile).close()
    assert card_present(pcscd) is False
    server = subprocess.Popen(
        [sys.executable, "-c", "from jpki.cli import main; main()", "sim", "serve", str(profile),
         "--vpcd", f"127.0.0.1:{VPCD_PORT}", "--retry", "0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        with PcscConnection.connect(pcscd, timeout=15) as conn:
            with pytest.raises(WrongPin) as wrong:
                JpkiAp(conn).verify_pin("auth", Secret("0000"))
            assert wrong.value.retries_left == 2
    finally:
        server.terminate()
        _, err = server.communicate(timeout=20)
    assert server.returncode == 0, err.decode()
    assert b"Traceback" not in err
    reopened = open_simulated_card(profile)
    try:
        assert JpkiAp(SimulatedConnection(reopened)).pin_status("auth").tries_left == 2
    finally:
        reopened.close()
    assert _wait_absent(pcscd)


def _wait_absent(reader: str, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while card_present(reader) is not False:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_injected_removal_reaches_pyscard_then_the_card_comes_back(
    pcscd: str, tmp_path: Path, check_jpki_session: Callable[[Connection, Any], None]
) -> None:
    """The simulator's "removed at the n-th APDU" fault is a removal for pcscd, not a 6F00."""
    from jpki.sim import FaultConfig
    from jpki.sim.create import create_profile

    create_profile(tmp_path / "card")
    card = open_simulated_card(tmp_path / "card", faults=FaultConfig(remove_at=3))
    plugged = InsertedCard(pcscd, card, tmp_path / "card")
    plugged.insert()
    try:
        conn = PcscConnection.connect(pcscd, timeout=10)
        ap = JpkiAp(conn)  # APDU 1: SELECT
        with pytest.raises(CardRemovedError):
            ap.token_info()  # APDU 2: SELECT EF, APDU 3: READ BINARY -> removed
        conn.close()
        side = plugged.side
        assert side is not None and side.removals == 1
        # The card side's retry policy puts the card back. Wait until pcscd has talked to the
        # new connection (power-up, ATR): before its presence poll it still holds the old one.
        seen = side.messages
        deadline = time.monotonic() + 15
        while not (side.sessions >= 2 and side.messages > seen):
            assert time.monotonic() < deadline, "pcscd did not take the card back"
            time.sleep(0.05)
        with PcscConnection.connect(pcscd, timeout=10) as again:
            check_jpki_session(again, card.profile)
    finally:
        plugged.remove()
        card.close()


def test_connect_waits_for_a_card_inserted_meanwhile(pcscd: str, tmp_path: Path) -> None:
    import threading

    plugged = InsertedCard(pcscd, sim_card(tmp_path / "card"), tmp_path / "card")
    assert card_present(pcscd) is False
    timer = threading.Timer(1.0, plugged.insert)
    timer.start()
    try:
        with PcscConnection.connect(pcscd, timeout=15) as conn:
            assert conn.atr == JPKI_ATR
            assert JpkiAp(conn).token_info().label == "JPKIAPICCTOKEN2"
    finally:
        timer.join()
        plugged.remove()
        plugged.card.close()


def test_conformance_suite_through_pcscd(inserted_card: InsertedCard) -> None:
    from jpki.cli.smoke import profile_cvca_keys
    from jpki.conformance import CheckStatus, run_conformance

    keys = profile_cvca_keys(inserted_card.profile_dir)  # the profile's own test CVCA
    with PcscConnection.connect(inserted_card.reader, timeout=10) as conn:
        quiet = run_conformance(conn, cvca_keys=keys)  # without --with-pin: no PIN data
    assert quiet.ok, [(c.name, c.detail) for c in quiet.failed]
    assert not quiet.aborted
    with PcscConnection.connect(inserted_card.reader, timeout=10) as conn:
        report = run_conformance(conn, with_pin=True, pin=Secret(AUTH_PIN), cvca_keys=keys)
    assert report.ok, [(c.name, c.detail) for c in report.failed]
    assert report.check("cvc_chain_text").status is CheckStatus.PASS
    assert report.check("sign_auth_round_trip").status is CheckStatus.PASS
    with PcscConnection.connect(inserted_card.reader, timeout=10) as conn:
        assert JpkiAp(conn).pin_status("auth").tries_left == 3  # the suite spent nothing
