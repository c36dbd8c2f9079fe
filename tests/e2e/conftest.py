"""End-to-end fixtures: a real pcscd with the vpcd driver, and our simulator as its card.

Under ``CI=true`` nothing here skips: a missing pcscd, vpcd driver or pyscard is a failure.
Elsewhere the tests skip when pcscd cannot be used (say, no root to start it).

Env: ``JPKI_E2E_VPCD_PORT`` picks the vpcd slot (35963 = "Virtual PCD 00 00", 35964 = "… 01");
``JPKI_E2E_PCSCD_LOG=1`` makes a pcscd we start log APDUs (``-a``) to the session's tmp dir.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from jpki.secret import Secret
from jpki.sim.vpcd_card import VpcdCardSide
from jpki.transport.base import Connection

PCSCD_SOCKET = Path("/run/pcscd/pcscd.comm")
VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
VPCD_PORT = int(os.environ.get("JPKI_E2E_VPCD_PORT", "35963"))
READER = f"Virtual PCD 00 {VPCD_PORT - 35963:02d}"
AUTH_PIN = "1234"  # the simulator's default test PINs
SIGN_PASSWORD = "JPKITEST01"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(why: str) -> None:
    """Skip locally; fail in CI, where the end-to-end tests must run."""
    if IN_CI:
        pytest.fail(f"end-to-end prerequisite missing in CI: {why}")
    pytest.skip(why)


def _pcscd_answers() -> bool:
    """A pcscd (ours, the machine's or systemd-activated) answers on its socket."""
    from jpki.errors import TransportError
    from jpki.transport.pcsc import list_readers

    if not PCSCD_SOCKET.is_socket():
        return False
    try:
        list_readers()
    except TransportError:
        return False
    return True


def _wait(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


@pytest.fixture(scope="session")
def vpcd_slot() -> Iterator[None]:
    """Take the vpcd slot for this test session (a lock file shared by all test runs).

    pcscd and each vpcd port are machine-wide: two test runs at once would plug their cards
    into the same slot (and one might stop the pcscd the other uses).
    """
    path = Path(tempfile.gettempdir()) / f"jpki-e2e-vpcd-{VPCD_PORT}.lock"
    with path.open("a") as fh:
        deadline = time.monotonic() + 900
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"another test run holds {path} for over 15 minutes")
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def pcscd(vpcd_slot: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running pcscd (reused if one is up, else started here and stopped by PID)."""
    try:
        import smartcard.scard  # noqa: F401
    except ImportError:
        unavailable("pyscard is not installed (pip install -e '.[test]')")
    if not VPCD_DRIVER.exists():
        unavailable(f"vpcd driver {VPCD_DRIVER} missing (apt-get install vsmartcard-vpcd)")
    proc: subprocess.Popen[bytes] | None = None
    if _pcscd_answers():
        pass  # the machine's pcscd (.ci/run's or a developer's): only one may run
    else:
        exe = shutil.which("pcscd") or next(
            (p for p in ("/usr/sbin/pcscd", "/sbin/pcscd") if os.path.exists(p)), None
        )
        if exe is None:
            unavailable("pcscd is not installed (apt-get install pcscd)")
        if os.geteuid() != 0:
            unavailable("pcscd is not running and starting it needs root")
        with contextlib.suppress(FileNotFoundError):
            PCSCD_SOCKET.unlink()  # stale socket of a killed pcscd
        PCSCD_SOCKET.parent.mkdir(parents=True, exist_ok=True)
        log = tmp_path_factory.mktemp("pcscd") / "pcscd.log"
        args = [str(exe), "--foreground"]
        if os.environ.get("JPKI_E2E_PCSCD_LOG"):
            args += ["--debug", "--apdu"]
        with log.open("wb") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        if not _wait(PCSCD_SOCKET.is_socket, 10):
            proc.kill()
            proc.wait(5)
            pytest.fail(f"pcscd did not create {PCSCD_SOCKET}:\n{log.read_text()}")
    try:
        from jpki.transport.pcsc import list_readers

        if not _wait(lambda: any(r.name == READER for r in list_readers()), 10, 0.2):
            pytest.fail(f"pcscd shows no reader {READER!r}: {list_readers()}")
        yield READER
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
                with contextlib.suppress(FileNotFoundError):
                    PCSCD_SOCKET.unlink()


def card_present(reader: str) -> bool | None:
    """True/False, or None when the reader is not listed."""
    from jpki.transport.pcsc import list_readers

    for info in list_readers():
        if info.name == reader:
            return info.card_present
    return None


def sim_card(path: Path) -> Any:
    """A fresh simulated card profile at ``path``, opened."""
    from jpki.sim import open_simulated_card
    from jpki.sim.create import create_profile

    create_profile(path)
    return open_simulated_card(path)


class Recorder:
    """Wraps a card model and keeps every (command, response) pair the card side saw."""

    def __init__(self, card: Any) -> None:
        self.card = card
        self.exchanges: list[tuple[bytes, bytes]] = []

    @property
    def atr(self) -> bytes:
        return bytes(self.card.atr)

    def process(self, command: bytes) -> bytes:
        response = bytes(self.card.process(command))
        self.exchanges.append((command, response))
        return response

    def reset(self) -> bytes:
        return bytes(self.card.reset())


@dataclass
class InsertedCard:
    """Our simulator plugged into pcscd's vpcd slot; ``remove()``/``insert()`` replug it."""

    reader: str
    card: Any
    profile_dir: Path
    side: VpcdCardSide | None = None
    recorder: Recorder | None = None

    def insert(self, timeout: float = 15.0) -> None:
        assert self.side is None, "already inserted"
        # The old card side may still be leaving: wait until pcscd saw the slot empty.
        assert _wait(lambda: card_present(self.reader) is False, timeout, 0.1), (
            f"{self.reader!r} already holds a card: another vpcd card side is connected to "
            f"port {VPCD_PORT} (a `jpki sim serve`?); set JPKI_E2E_VPCD_PORT=35964 to use slot 01"
        )
        self.recorder = Recorder(self.card)
        self.side = VpcdCardSide(self.recorder, "127.0.0.1", VPCD_PORT, retry_interval=0.1)
        self.side.start()
        side = self.side
        if not _wait(lambda: side.messages > 0 and card_present(self.reader) is True, timeout):
            self.remove()
            pytest.fail(
                f"pcscd did not take the simulated card in {self.reader!r}: is another card "
                f"side connected to port {VPCD_PORT}?"
            )

    def remove(self, timeout: float = 15.0) -> None:
        side, self.side = self.side, None
        if side is not None:
            side.stop()
            assert _wait(lambda: card_present(self.reader) is False, timeout, 0.1), (
                "pcscd still sees the card after the card side left"
            )


@pytest.fixture
def inserted_card(pcscd: str, tmp_path: Path) -> Iterator[InsertedCard]:
    """A fresh simulated card (its own profile in tmp) inserted into pcscd's vpcd reader."""
    card = sim_card(tmp_path / "card")
    plugged = InsertedCard(pcscd, card, tmp_path / "card")
    plugged.insert()
    try:
        yield plugged
    finally:
        plugged.remove()
        card.close()


@pytest.fixture(scope="session")
def check_jpki_session() -> Callable[[Connection, Any], None]:
    """The whole JPKI session over any connection, checked against the card's profile."""

    def check(conn: Connection, profile: Any) -> None:
        from jpki.card.jpki_ap import JpkiAp

        ap = JpkiAp(conn)
        info = ap.token_info()
        assert info.label == "JPKIAPICCTOKEN2"
        assert ap.pin_status("auth").tries_left == 3
        assert ap.pin_status("sign").tries_left == 5
        assert ap.read_certificate("auth") == profile.auth_cert
        assert ap.read_certificate("auth-ca") == profile.auth_ca_cert
        assert ap.read_certificate("sign-ca") == profile.sign_ca_cert
        ap.verify_pin("sign", Secret(SIGN_PASSWORD))
        assert ap.read_certificate("sign") == profile.sign_cert
        ap = JpkiAp(conn)  # selecting the AP again clears the verified password
        ap.verify_pin("auth", Secret(AUTH_PIN))
        data = b"jpki end-to-end \xe3\x83\x86\xe3\x82\xb9\xe3\x83\x88"
        signature = ap.sign_data("auth", data, "sha256")
        key = x509.load_der_x509_certificate(profile.auth_cert).public_key()
        assert isinstance(key, rsa.RSAPublicKey)
        key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        assert ap.pin_status("auth").tries_left == 3  # the good VERIFY spent nothing

    return check
