"""vpcd codec, reader side (VpcdListener) and card side (VpcdCardSide) over 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jpki.cli._common import Exit, exit_code_for
from jpki.errors import (
    BadAddressError,
    CardRemovedError,
    JpkiError,
    ProfileError,
    TransportError,
    TransportTimeoutError,
    UsageError,
)
from jpki.sim import FaultConfig, SimulatedCard, open_simulated_card
from jpki.sim.vpcd_card import VpcdCardSide
from jpki.transport.vpcd import (
    MAX_PAYLOAD,
    Control,
    FrameDecoder,
    VpcdListener,
    encode_frame,
    is_loopback,
    read_frame,
    write_frame,
)

ATR = bytes.fromhex("3BE000FF8131FE4514")


class FakeCard:
    """A card model: echoes the command header back with 9000; counts resets."""

    def __init__(self, delay: float = 0.0) -> None:
        self.atr = ATR
        self.resets = 0
        self.commands: list[bytes] = []
        self.delay = delay

    def process(self, command: bytes) -> bytes:
        self.commands.append(command)
        if self.delay:
            time.sleep(self.delay)
        if command[:1] == b"\xee":
            raise RuntimeError("model bug")
        return command[:4] + b"\x90\x00"

    def reset(self) -> bytes:
        self.resets += 1
        return self.atr


# --- codec ---------------------------------------------------------------------------------

payloads = st.lists(st.binary(min_size=1, max_size=600), max_size=8)


@settings(max_examples=200)
@given(payloads, st.data())
def test_frames_round_trip_whatever_the_chunking(msgs: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(encode_frame(m) for m in msgs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    decoder = FrameDecoder()
    out: list[bytes] = []
    last = 0
    for cut in [*cuts, len(stream)]:
        out += decoder.feed(stream[last:cut])
        last = cut
    assert out == msgs
    assert decoder.pending == 0


@settings(max_examples=300)
@given(st.binary(max_size=300), st.integers(1, 300))
def test_decoder_raises_only_transport_errors(noise: bytes, limit: int) -> None:
    decoder = FrameDecoder(max_payload=limit)
    try:
        for frame in decoder.feed(noise):
            assert 1 <= len(frame) <= limit
    except TransportError:
        pass


def test_frame_limits() -> None:
    with pytest.raises(TransportError):
        encode_frame(b"")
    with pytest.raises(TransportError):
        encode_frame(b"\0" * (MAX_PAYLOAD + 1))
    assert encode_frame(b"\x04") == b"\x00\x01\x04"
    with pytest.raises(TransportError, match="zero length"):
        FrameDecoder().feed(b"\x00\x00")
    with pytest.raises(TransportError, match="exceeds"):
        FrameDecoder(max_payload=10).feed(b"\x00\x0b")


def test_read_frame_eof_and_timeout() -> None:
    a, b = socket.socketpair()
    with a, b:
        write_frame(a, b"\x01\x02\x03")
        assert read_frame(b) == b"\x01\x02\x03"
        b.settimeout(0.05)
        with pytest.raises(TransportTimeoutError):
            read_frame(b)
        a.sendall(b"\x00\x05ab")  # half a frame, then the peer goes away
        a.close()
        b.settimeout(2)
        with pytest.raises(CardRemovedError):
            read_frame(b)


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")


# --- reader side against our card side -----------------------------------------------------


@pytest.fixture
def listener() -> Iterator[VpcdListener]:
    with VpcdListener("127.0.0.1", 0, timeout=5.0) as lst:
        yield lst


def _card_side(listener: VpcdListener, card: FakeCard) -> VpcdCardSide:
    side = VpcdCardSide(card, *listener.address, retry_interval=0.05)
    side.start()
    return side


def test_session_reset_and_removal(listener: VpcdListener) -> None:
    card = FakeCard()
    side = _card_side(listener, card)
    try:
        conn = listener.accept_connection(timeout=5)
        assert conn.atr == ATR
        assert card.resets == 1  # power on
        assert conn.transmit(bytes.fromhex("00A4040C0AD392F000260100000001")) == bytes.fromhex(
            "00A4040C9000"
        )
        assert conn.reset() == ATR
        assert card.resets == 2
        side.stop()
        with pytest.raises(CardRemovedError):
            conn.transmit(b"\x00\xb0\x00\x00\x04")
        conn.close()
        conn.close()  # idempotent
        # Inserted again: a new connection works.
        side = _card_side(listener, card)
        with listener.accept_connection(timeout=5) as conn2:
            assert conn2.transmit(b"\x00\xb0\x00\x00\x04") == b"\x00\xb0\x00\x00\x90\x00"
    finally:
        side.stop()


def test_power_off_on_close_and_model_errors(listener: VpcdListener) -> None:
    card = FakeCard()
    side = _card_side(listener, card)
    try:
        with listener.accept_connection() as conn:
            # A model exception is answered like a chip would, not by hanging up.
            assert conn.transmit(b"\xee\x00\x00\x00") == b"\x6f\x00"
        # Power off resets the security state too.
        deadline = time.monotonic() + 5
        while card.resets < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert card.resets == 2
    finally:
        side.stop()


def test_apdu_timeout_drops_the_stream() -> None:
    with VpcdListener("127.0.0.1", 0, timeout=5.0, apdu_timeout=0.2) as lst:
        side = _card_side(lst, FakeCard(delay=0.6))
        try:
            conn = lst.accept_connection()
            with pytest.raises(TransportTimeoutError, match="raise the timeout"):
                conn.transmit(b"\x00\xa4\x00\x00")
            assert conn.closed
            with pytest.raises(CardRemovedError):
                conn.transmit(b"\x00\xa4\x00\x00")
        finally:
            side.stop()


def test_accept_timeout(listener: VpcdListener) -> None:
    with pytest.raises(TransportTimeoutError, match="no vpcd card side"):
        listener.accept_connection(timeout=0.1)


def _raw_peer(address: tuple[str, int], script: list[bytes]) -> threading.Thread:
    """A misbehaving card side: answers each received frame with the next scripted bytes."""

    def run() -> None:
        with socket.create_connection(address, timeout=5) as s:
            for answer in script:
                try:
                    read_frame(s)  # whatever the reader side sends
                except JpkiError:
                    return
                if answer:
                    s.sendall(answer)
            time.sleep(0.2)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ([b"", b"\x00\x01\x3b", b"\x00\x01\x90"], None),  # a 1-byte R-APDU
        ([b"", b"\x00\x30" + b"\x3b" * 48], "ATR"),  # absurd ATR
        ([b"", b"\x00\x00"], "zero length"),  # empty ATR frame
    ],
)
def test_malformed_card_side(
    listener: VpcdListener, script: list[bytes], message: str | None
) -> None:
    t = _raw_peer(listener.address, script)
    try:
        conn = listener.accept_connection()
    except TransportError as exc:
        assert message is not None and message in str(exc)
    else:
        assert message is None
        with pytest.raises(TransportError, match="malformed"):
            conn.transmit(b"\x00\xa4\x00\x00")
        assert conn.closed
    t.join(5)


def test_probe_connection_is_not_a_card(listener: VpcdListener) -> None:
    # Something connects and leaves at once; the real card side comes next.
    socket.create_connection(listener.address, timeout=2).close()
    side = _card_side(listener, FakeCard())
    try:
        with listener.accept_connection(timeout=5) as conn:
            assert conn.atr == ATR
    finally:
        side.stop()


# --- card side message handling ------------------------------------------------------------


def test_card_side_controls() -> None:
    card = FakeCard()
    side = VpcdCardSide(card)
    assert side.handle(bytes([Control.GET_ATR])) == ATR
    assert side.handle(bytes([Control.POWER_ON])) is None
    assert side.handle(bytes([Control.RESET])) is None
    assert side.handle(bytes([Control.POWER_OFF])) is None
    assert card.resets == 3
    assert side.handle(b"\x07") is None  # unknown control: ignored
    assert side.handle(b"\x00\xa4") == b"\x00\xa4\x90\x00"


def test_card_side_retries_until_reader_appears() -> None:
    # Reserve a free port, start the card side against it, then listen there.
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    side = VpcdCardSide(FakeCard(), "127.0.0.1", port, retry_interval=0.05)
    side.start()
    try:
        time.sleep(0.2)
        assert not side.connected.is_set()
        with (
            VpcdListener("127.0.0.1", port, timeout=5) as lst,
            lst.accept_connection() as conn,
        ):
            assert conn.atr == ATR
            assert side.connected.wait(2)
    finally:
        side.stop()
    assert side.sessions == 1


def test_port_in_use_is_a_transport_error(listener: VpcdListener) -> None:
    with pytest.raises(TransportError, match="another port"):
        VpcdListener(*listener.address)


# --- the simulated chip's removal and state errors over the socket ----------------------------

SELECT_JPKI = bytes.fromhex("00A4040C0AD392F000260100000001")


def _wait(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_removal_fault_closes_the_connection_then_the_card_comes_back(
    listener: VpcdListener, sim_profile: Path
) -> None:
    card = open_simulated_card(sim_profile, faults=FaultConfig(remove_at=2))
    side = VpcdCardSide(card, *listener.address, retry_interval=0.05)
    side.start()
    try:
        conn = listener.accept_connection(timeout=5)
        assert conn.transmit(SELECT_JPKI) == b"\x90\x00"
        # The 2nd APDU meets the removal: the reader sees the socket close, not a 6F00.
        with pytest.raises(CardRemovedError):
            conn.transmit(SELECT_JPKI)
        assert conn.closed
        assert side.removals == 1
        # Retry policy: the card side reconnects; power-on re-inserts the card.
        with listener.accept_connection(timeout=5) as conn2:
            assert conn2.transmit(SELECT_JPKI) == b"\x90\x00"
        assert side.sessions == 2 and side.error is None
    finally:
        side.stop()
        card.close()


def test_corrupt_state_on_reset_stops_the_card_side(
    listener: VpcdListener, sim_profile: Path
) -> None:
    card = SimulatedCard(sim_profile)
    side = VpcdCardSide(card, *listener.address, retry_interval=0.05)
    thread = side.start()
    try:
        conn = listener.accept_connection(timeout=5)
        assert conn.transmit(SELECT_JPKI) == b"\x90\x00"
        (sim_profile / "state.json").write_text("{ not json")
        with pytest.raises(CardRemovedError):
            conn.reset()  # RESET makes the model re-read its state file
        thread.join(5)
        assert not thread.is_alive()
        assert isinstance(side.error, ProfileError) and "corrupt" in str(side.error)
        assert side.sessions == 1  # it does not reconnect with counters it cannot trust
        with pytest.raises(TransportTimeoutError):
            listener.accept_connection(timeout=0.3)
    finally:
        side.stop()
        card.close()


def test_closed_card_model_stops_the_card_side(listener: VpcdListener, sim_profile: Path) -> None:
    card = SimulatedCard(sim_profile)
    card.close()
    side = VpcdCardSide(card, *listener.address, retry_interval=0.05)
    thread = side.start()
    with pytest.raises(TransportError):
        listener.accept_connection(timeout=1)
    thread.join(5)
    assert not thread.is_alive() and isinstance(side.error, CardRemovedError)


def test_sim_serve_corrupt_state_exits_2_without_traceback(sim_profile: Path) -> None:
    with VpcdListener("127.0.0.1", 0, timeout=5.0) as lst:
        host, port = lst.address
        argv = ["sim", "serve", str(sim_profile), "--vpcd", f"{host}:{port}", "--retry", "0.05"]
        proc = subprocess.Popen(
            [sys.executable, "-c", "from jpki.cli import main; main()", *argv],
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stderr is not None
            assert "serving" in proc.stderr.readline()  # the card is loaded
            (sim_profile / "state.json").write_bytes(b"\xff garbage")
            with pytest.raises(TransportError):
                lst.accept_connection(timeout=3)  # power-on re-reads the state: refused
            rc = proc.wait(10)
            err = proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert rc == 2, err
    assert "error:" in err and "state file" in err and "corrupt" in err
    assert "Traceback" not in err


def test_reinserted_card_is_powered_up_even_without_power_on(sim_profile: Path) -> None:
    """pcscd may miss a short removal and send no power-on to the new connection."""
    card = open_simulated_card(sim_profile, faults=FaultConfig(remove_at=1))
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(5)
        side = VpcdCardSide(card, *server.getsockname()[:2], retry_interval=0.05)
        side.reinsert_delay = 0.3
        side.start()
        try:
            first, _ = server.accept()
            with first:
                first.settimeout(5)
                write_frame(first, SELECT_JPKI)
                assert first.recv(10) == b""  # removed: the card side hung up
            second, _ = server.accept()
            with second:
                second.settimeout(5)
                write_frame(second, SELECT_JPKI)  # straight to an APDU: no 01 power-on
                assert read_frame(second) == b"\x90\x00"
            assert side.removals == 1
        finally:
            side.stop()
            card.close()


@pytest.mark.parametrize("host", ["nohost.invalid", "999.1.1.1"])
def test_unresolvable_host_is_a_usage_error_on_both_sides(host: str) -> None:
    with pytest.raises(BadAddressError) as info:
        VpcdListener(host, 5000)
    assert isinstance(info.value, UsageError) and exit_code_for(info.value) == Exit.USAGE
    side = VpcdCardSide(FakeCard(), host, 5000, retry_interval=0.05)
    with pytest.raises(BadAddressError):
        side.serve_forever()  # does not retry forever against a name that cannot resolve
    assert isinstance(side.error, BadAddressError) and side.stopping


def test_cli_bad_bridge_and_vpcd_addresses_exit_2(sim_profile: Path) -> None:
    from click.testing import CliRunner

    from jpki.cli import main

    for argv in (
        ["card", "status", "--bridge", "nohost.invalid:5000", "--timeout", "1"],
        ["card", "status", "--bridge", "127.0.0.1:http"],
        ["sim", "serve", str(sim_profile), "--vpcd", "nohost.invalid:35963"],
        ["sim", "serve", str(sim_profile), "--vpcd", "127.0.0.1:70000"],
    ):
        result = CliRunner().invoke(main, argv)
        assert result.exit_code == 2, (argv, result.output)
        assert isinstance(result.exception, SystemExit) and "error:" in result.output


@pytest.mark.parametrize("seconds", ["nan", "inf", "-1", "0", "86401"])
def test_cli_unusable_timeout_and_retry_exit_2(sim_profile: Path, seconds: str) -> None:
    from click.testing import CliRunner

    from jpki.cli import main

    for argv in (
        ["card", "status", "--bridge", "127.0.0.1:0", "--timeout", seconds],
        ["sim", "serve", str(sim_profile), "--vpcd", "127.0.0.1:1", "--retry", seconds],
    ):
        result = CliRunner().invoke(main, argv)
        assert result.exit_code == 2, (argv, result.output)
        assert isinstance(result.exception, SystemExit) and "number of seconds" in result.output
