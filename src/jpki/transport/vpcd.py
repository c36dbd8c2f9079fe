"""The vsmartcard vpcd wire protocol: frame codec and the reader side (a TCP server).

Every message, both ways, is a 2-byte big-endian length and a payload. From the reader side a
1-byte payload is control (``00`` power off, ``01`` power on, ``02`` reset, ``04`` get ATR;
only ``04`` gets a reply); a longer payload is a C-APDU answered by one framed R-APDU. The card
side (a phone relaying to a real card over NFC, or ``jpki sim serve``) connects to the reader
side; a closed socket means the card was removed, a new connection means a card was inserted.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import ipaddress
import logging
import socket
import time
from types import TracebackType

from jpki.errors import (
    BadAddressError,
    CardRemovedError,
    TransportError,
    TransportTimeoutError,
)
from jpki.transport.base import Connection

log = logging.getLogger("jpki.transport.vpcd")

DEFAULT_PORT = 35963
LENGTH_SIZE = 2
MAX_PAYLOAD = 0xFFFF  # what a 2-byte length can say
MIN_RESPONSE = 2  # an R-APDU carries at least SW1 SW2
MAX_ATR = 33  # ISO 7816-3: TS + at most 32 bytes
_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only


class Control(enum.IntEnum):
    """One-byte control messages from the reader side."""

    POWER_OFF = 0x00
    POWER_ON = 0x01
    RESET = 0x02
    GET_ATR = 0x04


def encode_frame(payload: bytes) -> bytes:
    """Length-prefix one payload."""
    if not payload:
        raise TransportError("refusing to send an empty vpcd frame")
    if len(payload) > MAX_PAYLOAD:
        raise TransportError(f"vpcd payload too long: {len(payload)} > {MAX_PAYLOAD} bytes")
    return len(payload).to_bytes(LENGTH_SIZE, "big") + payload


class FrameDecoder:
    """Incremental decoder: feed received bytes, get the complete payloads out."""

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self.max_payload = max_payload
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the payloads now complete (bad length: TransportError)."""
        self._buf += data
        out: list[bytes] = []
        while len(self._buf) >= LENGTH_SIZE:
            size = int.from_bytes(self._buf[:LENGTH_SIZE], "big")
            _check_size(size, self.max_payload)
            if len(self._buf) < LENGTH_SIZE + size:
                break
            out.append(bytes(self._buf[LENGTH_SIZE : LENGTH_SIZE + size]))
            del self._buf[: LENGTH_SIZE + size]
        return out

    @property
    def pending(self) -> int:
        """Bytes received that do not yet make a whole frame."""
        return len(self._buf)


def _check_size(size: int, max_payload: int) -> None:
    if size == 0:
        raise TransportError("malformed vpcd frame: zero length")
    if size > max_payload:
        raise TransportError(f"malformed vpcd frame: {size} bytes exceeds limit {max_payload}")


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    """Read exactly ``n`` bytes; EOF or reset = card removed, socket timeout = timeout."""
    buf = bytearray()
    while len(buf) < n:
        try:
            chunk = sock.recv(n - len(buf))
        except TimeoutError:
            raise TransportTimeoutError("the vpcd card side did not answer in time") from None
        except OSError as exc:
            raise CardRemovedError(f"vpcd card side connection lost: {exc}") from None
        if not chunk:
            raise CardRemovedError("vpcd card side closed the connection (card removed)")
        buf += chunk
        if _QUICKACK is not None:
            # Peers that write length and payload separately with Nagle on (vpcd, Java relay
            # apps) would otherwise wait for our delayed ACK: ~40 ms per message.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
    return bytes(buf)


def read_frame(sock: socket.socket, *, max_payload: int = MAX_PAYLOAD) -> bytes:
    """Read one whole frame's payload."""
    size = int.from_bytes(recv_exactly(sock, LENGTH_SIZE), "big")
    _check_size(size, max_payload)
    return recv_exactly(sock, size)


def write_frame(sock: socket.socket, payload: bytes) -> None:
    """Send ``payload`` as one vpcd frame (two-byte big-endian length first)."""
    frame = encode_frame(payload)
    try:
        sock.sendall(frame)
    except TimeoutError:
        raise TransportTimeoutError("sending to the vpcd card side timed out") from None
    except OSError as exc:
        raise CardRemovedError(f"vpcd card side connection lost: {exc}") from None


def is_loopback(host: str) -> bool:
    """True if ``host`` names a loopback address (127.0.0.0/8, ::1 or localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class VpcdConnection(Connection):
    """One inserted card: a connected card side. Powers it on and reads its ATR."""

    def __init__(
        self, sock: socket.socket, *, apdu_timeout: float, peer: str = "card side"
    ) -> None:
        self._sock: socket.socket | None = sock
        self.peer = peer
        self.apdu_timeout = apdu_timeout
        sock.settimeout(apdu_timeout)
        try:
            self._control(Control.POWER_ON)
            self._atr = self._get_atr()
        except TransportError:
            self.close()
            raise

    @property
    def atr(self) -> bytes:
        return self._atr

    @property
    def closed(self) -> bool:
        """True once the connection is closed."""
        return self._sock is None

    def _socket(self) -> socket.socket:
        if self._sock is None:
            raise CardRemovedError("vpcd connection is closed (card removed)")
        return self._sock

    def _exchange(self, payload: bytes, what: str) -> bytes:
        sock = self._socket()
        try:
            write_frame(sock, payload)
            return read_frame(sock)
        except TransportTimeoutError:
            # A late answer would be taken for the next command's: the stream is unusable now.
            self._drop()
            raise TransportTimeoutError(
                f"no answer from the vpcd card side ({self.peer}) to {what} within "
                f"{self.apdu_timeout:g} s; raise the timeout for slow relays"
            ) from None
        except TransportError:
            self._drop()
            raise

    def _control(self, code: Control) -> None:
        sock = self._socket()
        try:
            write_frame(sock, bytes([code]))
        except TransportError:
            self._drop()
            raise

    def _get_atr(self) -> bytes:
        atr = self._exchange(bytes([Control.GET_ATR]), "get ATR")
        if len(atr) > MAX_ATR:
            self._drop()
            raise TransportError(f"vpcd card side sent a {len(atr)}-byte ATR (max {MAX_ATR})")
        return atr

    def _transmit(self, command: bytes) -> bytes:
        if len(command) < 2:
            # 1 byte would be read as a control message by the card side.
            raise TransportError(f"command APDU too short for vpcd: {len(command)} bytes")
        response = self._exchange(command, "a command APDU")
        if len(response) < MIN_RESPONSE:
            self._drop()
            raise TransportError(
                f"malformed answer from the vpcd card side: {len(response)}-byte R-APDU"
            )
        return response

    def reset(self) -> bytes:
        self._control(Control.RESET)
        self._atr = self._get_atr()
        return self._atr

    def _drop(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        sock = self._sock
        if sock is None:
            return
        with contextlib.suppress(OSError, TransportError):
            write_frame(sock, bytes([Control.POWER_OFF]))
        self._drop()


class VpcdListener:
    """The reader side: a TCP server that vpcd card sides (relay apps, simulators) connect to.

    Binds 127.0.0.1 unless another host is named explicitly (a phone on the LAN needs the
    machine's address or ``0.0.0.0``). ``port=0`` picks a free port (see ``address``).
    ``timeout`` is the default for waiting for a card and for each APDU answer.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        *,
        timeout: float = 30.0,
        apdu_timeout: float | None = None,
    ) -> None:
        self.timeout = timeout
        self.apdu_timeout = timeout if apdu_timeout is None else apdu_timeout
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except (OSError, UnicodeError, OverflowError) as exc:
            # A host name that does not resolve, or a port out of range: the user's argument.
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise BadAddressError(f"cannot listen on {host}:{port}: {why}") from None
        try:
            family, _, _, _, sockaddr = infos[0]
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as exc:
            raise TransportError(f"cannot listen on {host}:{port}: {exc}") from None
        if not is_loopback(host):
            log.warning("vpcd listener on %s: reachable from the network", host)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(sockaddr)
            sock.listen(1)
        except OSError as exc:
            sock.close()
            hint = ""
            if exc.errno == errno.EADDRINUSE:
                hint = (
                    " (pcscd's vpcd driver holds 35963/35964: pick another port, or let the card"
                    " side connect to vpcd and use --reader 'Virtual PCD 00 00')"
                )
            raise TransportError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}"
            ) from None
        self._sock: socket.socket | None = sock

    @property
    def address(self) -> tuple[str, int]:
        """The bound host and port."""
        host, port = self._listening().getsockname()[:2]
        return str(host), int(port)

    def _listening(self) -> socket.socket:
        if self._sock is None:
            raise TransportError("vpcd listener is closed")
        return self._sock

    def accept_connection(self, timeout: float | None = None) -> VpcdConnection:
        """Wait for a card side to connect (= a card inserted); power it on; read its ATR."""
        wait = self.timeout if timeout is None else timeout
        sock = self._listening()
        deadline = time.monotonic() + wait
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError
                sock.settimeout(remaining)
                conn, peer = sock.accept()
            except TimeoutError:
                host, port = self.address
                raise TransportTimeoutError(
                    f"no vpcd card side connected to {host}:{port} within {wait:g} s"
                ) from None
            except OSError as exc:
                raise TransportError(f"vpcd listener failed: {exc}") from None
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            name = f"{peer[0]}:{peer[1]}"
            log.info("vpcd card side connected from %s", name)
            try:
                return VpcdConnection(conn, apdu_timeout=self.apdu_timeout, peer=name)
            except CardRemovedError:
                # A peer that connects and leaves at once (a port probe) is not a card.
                if time.monotonic() >= deadline:
                    raise
                continue

    def close(self) -> None:
        """Stop listening (closes the listening socket; idempotent)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def __enter__(self) -> VpcdListener:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
