"""The vpcd bridge over TCP: our VpcdListener (reader side) ← our simulator's card side.

No pcscd involved: this is the path a phone relay takes (`--bridge HOST:PORT`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from jpki.card.jpki_ap import JpkiAp
from jpki.cli import main
from jpki.cli._common import open_connection
from jpki.errors import CardRemovedError, SecurityStatusError
from jpki.secret import Secret
from jpki.sim.vpcd_card import VpcdCardSide
from jpki.transport.base import Connection
from jpki.transport.vpcd import VpcdListener

from .conftest import AUTH_PIN, sim_card

JPKI_ATR = bytes.fromhex("3BE000FF8131FE4514")


@pytest.fixture
def listener() -> Iterator[VpcdListener]:
    # Port 0: a free port; RSA signatures in the simulator take milliseconds, relays seconds.
    with VpcdListener("127.0.0.1", 0, timeout=20.0) as lst:
        yield lst


def test_bridge_session_removal_and_reinsertion(
    listener: VpcdListener,
    tmp_path: Path,
    check_jpki_session: Callable[[Connection, Any], None],
) -> None:
    card = sim_card(tmp_path / "card")
    side = VpcdCardSide(card, *listener.address, retry_interval=0.05)
    side.start()
    try:
        with listener.accept_connection() as conn:
            assert conn.atr == JPKI_ATR
            check_jpki_session(conn, card.profile)
            ap = JpkiAp(conn)
            ap.verify_pin("auth", Secret(AUTH_PIN))
            side.stop()  # card pulled out of the relay
            with pytest.raises(CardRemovedError):
                ap.sign_data("auth", b"mid-session")
        side = VpcdCardSide(card, *listener.address, retry_interval=0.05)
        side.start()
        with listener.accept_connection() as again:
            with pytest.raises(SecurityStatusError):  # a new insertion forgets the PIN
                JpkiAp(again).sign_data("auth", b"x")
            check_jpki_session(again, card.profile)
    finally:
        side.stop()
        card.close()


def _free_port() -> int:
    with VpcdListener("127.0.0.1", 0) as probe:
        return probe.address[1]


def test_sim_serve_cli_against_the_bridge_option(tmp_path: Path) -> None:
    """`jpki sim serve PROFILE --vpcd` in a process, `--bridge` on the other end."""
    card_dir = tmp_path / "card"
    sim_card(card_dir).close()
    assert "--vpcd" in CliRunner().invoke(main, ["sim", "serve", "--help"]).output
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    serve = ["sim", "serve", str(card_dir), "--vpcd", f"127.0.0.1:{port}", "--retry", "0.05"]
    server = subprocess.Popen(
        [sys.executable, "-c", "from jpki.cli import main; main()", *serve],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        with open_connection(sim=None, reader=None, bridge=f"127.0.0.1:{port}", timeout=20) as c:
            assert c.atr == JPKI_ATR
            assert JpkiAp(c).token_info().label == "JPKIAPICCTOKEN2"
    finally:
        server.terminate()
        _, err = server.communicate(timeout=20)
    assert server.returncode == 0, err.decode()
    assert b"stopped after 1 connection" in err
    assert b"Traceback" not in err
