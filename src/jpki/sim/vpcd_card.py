"""The card side of vpcd: makes a simulated chip a card that real PC/SC software can use.

It connects to a vpcd reader side (pcscd's vpcd driver on 127.0.0.1:35963, or
``jpki.transport.vpcd.VpcdListener``), answers get-ATR whenever asked (pcscd polls presence
with it), power off/on and reset (a reset clears the chip's security state) and hands every
other message to the card model as a C-APDU. When the reader side goes away it reconnects
until told to stop.

Errors of the card model:

- ``CardRemovedError`` (fault injection "removed at the n-th APDU", power loss in VERIFY, a
  closed card) closes the connection, which is what a removed card looks like to the reader
  side. The card side then follows its retry policy: after ``reinsert_delay`` (at least
  ``retry_interval``; default 1 s, longer than pcscd's 400 ms presence poll, so the reader
  sees the slot empty) it connects again and resets the model itself: the card was pulled
  out and put back in, and a re-inserted card is freshly powered even if the reader side
  does not send power-on. A closed card model (``close()``) cannot come back: its
  ``reset()`` raises again and serving stops.
- ``ProfileError`` (the state file could not be read or is corrupt, e.g. on ``reset()``) ends
  serving: the connection is closed and ``serve_forever`` raises it (``error`` holds it when
  serving in a thread). A card whose counters cannot be trusted must not keep answering.
- Any other exception is a model bug: answered with 6F00, as a chip never goes silent.

Written from the wire description in card-protocol.md §7 on purpose, without sharing code with
the reader side in ``jpki.transport.vpcd``: each side is tested against pcscd's real vpcd and
against the other, so a framing mistake cannot hide in shared code.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from typing import Protocol

from jpki.errors import BadAddressError, CardRemovedError, ProfileError

log = logging.getLogger("jpki.sim.vpcd")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 35963
_POWER_OFF, _POWER_ON, _RESET, _GET_ATR = 0x00, 0x01, 0x02, 0x04
_SW_NO_PRECISE_DIAGNOSIS = b"\x6f\x00"
# How often a blocked read wakes up to look at the stop event.
_POLL = 0.2
_SEND_TIMEOUT = 10.0
# A reader side that says nothing this long after we connected is not serving us.
_SILENCE = 5.0
_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only


class CardModel(Protocol):
    """What a simulated chip offers (``jpki.sim.SimulatedCard`` satisfies this)."""

    @property
    def atr(self) -> bytes:
        """The chip's ATR."""
        ...

    def process(self, command: bytes) -> bytes:
        """One command APDU in, the response (data + SW1 SW2) out."""
        ...

    def reset(self) -> bytes:
        """Power-cycle the chip; returns the ATR."""
        ...


class _Closed(Exception):
    """The reader side closed the connection, or we were told to stop."""


class _Removed(Exception):
    """The card model says the card left the reader: close the connection."""


class VpcdCardSide:
    """Serves one card model to one vpcd reader slot; reconnects until ``stop()``.

    ``connected`` is set while a reader side is attached; ``sessions`` counts connections and
    ``messages`` the messages received (a TCP connect alone can sit in the peer's backlog: vpcd
    serves one card side per port, so only traffic proves we are the inserted card);
    ``removals`` counts connections closed because the card model reported the card removed;
    ``error`` is the error that ended serving, if any.
    """

    def __init__(
        self,
        card: CardModel,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        retry_interval: float = 0.5,
        reinsert_delay: float = 1.0,
    ) -> None:
        self.card = card
        self.host = host
        self.port = port
        self.retry_interval = retry_interval
        self.reinsert_delay = reinsert_delay
        self._reinsert = False  # the last connection ended in a removal
        self.connected = threading.Event()
        self.sessions = 0
        self.messages = 0
        self.removals = 0
        self.error: ProfileError | CardRemovedError | BadAddressError | None = None
        self._messages_at_connect = 0
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        # The card model is not thread-safe; one message at a time.
        self._lock = threading.Lock()

    # --- running -------------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Connect, serve, and reconnect after the reader side drops us, until ``stop()``.

        Raises ``ProfileError`` (after closing the connection) when the card's state cannot be
        read, ``CardRemovedError`` when the card model was closed, and ``BadAddressError``
        when the host does not resolve.
        """
        while not self._stop.is_set():
            try:
                sock = socket.create_connection((self.host, self.port), timeout=5.0)
            except (socket.gaierror, UnicodeError, OverflowError) as exc:
                # A host that does not resolve (or a bad port) will not start working: stop.
                err = BadAddressError(f"cannot connect to vpcd {self.host}:{self.port}: {exc}")
                self.error = err
                self._stop.set()
                raise err from None
            except OSError as exc:
                log.debug("vpcd %s:%d not reachable (%s); retrying", self.host, self.port, exc)
                self._stop.wait(self.retry_interval)
                continue
            self.sessions += 1
            log.info("card inserted into vpcd %s:%d", self.host, self.port)
            try:
                self._serve(sock)
            except (ProfileError, CardRemovedError) as exc:
                # The state file is unusable, or the model was closed: stop, do not reconnect.
                self.error = exc
                self._stop.set()
                log.error("card side stopped serving vpcd %s:%d: %s", self.host, self.port, exc)
                raise
            finally:
                self.connected.clear()
                with contextlib.suppress(OSError):
                    sock.close()
            log.info("card left vpcd %s:%d", self.host, self.port)
            pause = self.retry_interval
            if self._reinsert:
                pause = max(pause, self.reinsert_delay)  # let the reader see the slot empty
            self._stop.wait(pause)

    def start(self) -> threading.Thread:
        """Serve in a daemon thread (for tests and embedding); see ``error`` if it ends."""
        self._stop.clear()
        thread = threading.Thread(target=self._serve_in_thread, name="vpcd-card", daemon=True)
        self._thread = thread
        thread.start()
        return thread

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving: closes the connection (the reader side sees the card removed)."""
        self._stop.set()
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            self._thread = None

    def _serve_in_thread(self) -> None:
        # Kept in self.error (and logged, except a bad address, which the caller gave).
        with contextlib.suppress(ProfileError, CardRemovedError, BadAddressError):
            self.serve_forever()

    @property
    def stopping(self) -> bool:
        """True once ``stop`` was asked for."""
        return self._stop.is_set()

    # --- one connection ------------------------------------------------------------------

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(_POLL)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._messages_at_connect = self.messages
        try:
            if self._reinsert:
                # Put back in after a removal: a fresh power-up (clears the removal and the
                # security state) even if the reader side sends no power-on.
                with self._lock:
                    self.card.reset()
                self._reinsert = False
            self.connected.set()
            while True:
                size = int.from_bytes(self._recv(sock, 2), "big")
                if size == 0:
                    log.warning("vpcd reader side sent an empty frame; ignored")
                    continue
                reply = self.handle(self._recv(sock, size))
                self.messages += 1
                if reply is not None:
                    sock.settimeout(_SEND_TIMEOUT)
                    sock.sendall(len(reply).to_bytes(2, "big") + reply)
                    sock.settimeout(_POLL)
        except _Removed as exc:
            # Closing the socket is how a card leaves a vpcd reader; serve_forever reconnects
            # after reinsert_delay (the card is put back in) unless told to stop.
            self.removals += 1
            self._reinsert = True
            log.info("card removed from vpcd %s:%d: %s", self.host, self.port, exc)
        except (_Closed, OSError) as exc:
            log.debug("vpcd connection ended: %s", exc)
        finally:
            self._sock = None

    def _recv(self, sock: socket.socket, n: int) -> bytes:
        buf = bytearray()
        silent_since = time.monotonic() if self.messages == self._messages_at_connect else None
        while len(buf) < n:
            if self._stop.is_set():
                raise _Closed("stopped")
            try:
                chunk = sock.recv(n - len(buf))
            except TimeoutError:
                if silent_since is not None and time.monotonic() - silent_since > _SILENCE:
                    # vpcd serves one card side per port; a second one waits in its backlog.
                    log.warning(
                        "connected to vpcd %s:%d but it sends nothing: is another card side "
                        "using this port?",
                        self.host,
                        self.port,
                    )
                    silent_since = None
                continue
            if not chunk:
                raise _Closed("reader side closed the connection")
            buf += chunk
            if _QUICKACK is not None:
                # vpcd writes the length and the payload separately with Nagle on; our delayed
                # ACK would hold its payload back ~40 ms per message. ACK at once instead.
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        return bytes(buf)

    def handle(self, message: bytes) -> bytes | None:
        """Answer one message from the reader side (None: no reply is due).

        Raises ``_Removed`` when the card model reports the card removed and lets
        ``ProfileError`` through (see the module docstring).
        """
        with self._lock:
            if len(message) == 1:
                # reset() raises CardRemovedError only for a closed model, which never comes
                # back: that (like ProfileError) ends serving instead of reconnecting.
                return self._control(message[0])
            try:
                response = self.card.process(message)
            except CardRemovedError as exc:
                raise _Removed(str(exc)) from None
            except ProfileError:
                raise
            except Exception:
                # A chip never goes silent: a model bug must not hang the reader for its timeout.
                log.exception("card model failed on a command; answering 6F00")
                return _SW_NO_PRECISE_DIAGNOSIS
            if len(response) < 2 or len(response) > 0xFFFF:
                log.error("card model gave a %d-byte response; answering 6F00", len(response))
                return _SW_NO_PRECISE_DIAGNOSIS
            return response

    def _control(self, code: int) -> bytes | None:
        if code == _GET_ATR:
            return bytes(self.card.atr)
        if code in (_POWER_ON, _RESET):
            # A power cycle or a warm reset both clear the chip's security state.
            self.card.reset()
        elif code == _POWER_OFF:
            # Power off also loses the security state; the next power-on resets anyway,
            # but a reader side that skips it must not find PINs still verified.
            self.card.reset()
        else:
            log.warning("unknown vpcd control byte %02X ignored", code)
        return None


def serve(
    card: CardModel,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    retry_interval: float = 0.5,
) -> None:
    """Serve ``card`` in this thread until KeyboardInterrupt."""
    side = VpcdCardSide(card, host, port, retry_interval=retry_interval)
    try:
        side.serve_forever()
    except KeyboardInterrupt:
        side.stop()
