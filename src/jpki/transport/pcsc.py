"""PC/SC readers through pyscard (extra ``jpki[pcsc]``).

pyscard is imported only here, and only when a function needs it: the rest of jpki imports
without it. PC/SC error codes become ``TransportError`` subclasses with messages a user can act
on (``map_pcsc_error``).
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

from jpki.errors import (
    AmbiguousReaderError,
    CardRemovedError,
    NoCardError,
    ReaderNotFoundError,
    SharingViolationError,
    TransportError,
    TransportTimeoutError,
    UsageError,
)
from jpki.transport.base import Connection

Share = Literal["shared", "exclusive"]


class PcscCode(enum.IntEnum):
    """The PC/SC result codes we tell apart (winscard / pcsc-lite values)."""

    SUCCESS = 0x00000000
    UNKNOWN_READER = 0x80100009
    TIMEOUT = 0x8010000A
    SHARING_VIOLATION = 0x8010000B
    NO_SMARTCARD = 0x8010000C
    PROTO_MISMATCH = 0x8010000F
    NOT_READY = 0x80100010
    NOT_TRANSACTED = 0x80100016
    READER_UNAVAILABLE = 0x80100017
    NO_SERVICE = 0x8010001D
    SERVICE_STOPPED = 0x8010001E
    NO_READERS_AVAILABLE = 0x8010002E
    UNRESPONSIVE_CARD = 0x80100066
    UNPOWERED_CARD = 0x80100067
    RESET_CARD = 0x80100068
    REMOVED_CARD = 0x80100069


def map_pcsc_error(code: int, doing: str, reader: str | None = None) -> TransportError:
    """The ``TransportError`` for a PC/SC result code met while ``doing`` something."""
    code &= 0xFFFFFFFF
    where = f" in reader {reader!r}" if reader else ""
    try:
        known: PcscCode | None = PcscCode(code)
    except ValueError:
        known = None
    suffix = f" ({doing}; PC/SC 0x{code:08X})"
    match known:
        case PcscCode.NO_SMARTCARD:
            return NoCardError(f"no card{where}" + suffix)
        case PcscCode.REMOVED_CARD:
            return CardRemovedError(f"the card was removed{where}" + suffix)
        case PcscCode.UNKNOWN_READER | PcscCode.READER_UNAVAILABLE:
            return ReaderNotFoundError(
                (f"reader {reader!r} is not available" if reader else "reader not available")
                + suffix
            )
        case PcscCode.NO_READERS_AVAILABLE:
            return ReaderNotFoundError("no PC/SC readers are connected" + suffix)
        case PcscCode.NO_SERVICE | PcscCode.SERVICE_STOPPED:
            return ReaderNotFoundError("the PC/SC service is not running (start pcscd)" + suffix)
        case PcscCode.SHARING_VIOLATION:
            return SharingViolationError(
                f"another program holds the card{where} exclusively" + suffix
            )
        case PcscCode.TIMEOUT:
            return TransportTimeoutError(f"the card{where} did not answer in time" + suffix)
        case PcscCode.NOT_TRANSACTED:
            # What pcsc-lite reports when the reader loses the card in mid-command, before
            # its presence poll notices the removal (observed with vpcd).
            return CardRemovedError(
                f"communication with the card{where} failed (was it removed?)" + suffix
            )
        case PcscCode.RESET_CARD:
            return CardRemovedError(
                f"another program reset the card{where}; its PIN state is lost" + suffix
            )
        case PcscCode.UNRESPONSIVE_CARD | PcscCode.UNPOWERED_CARD:
            return TransportError(f"the card{where} does not respond (reinsert it)" + suffix)
        case PcscCode.PROTO_MISMATCH:
            return TransportError(f"the card{where} speaks neither T=0 nor T=1" + suffix)
        case _:
            return TransportError(f"PC/SC error{where}" + suffix)


def _scard() -> ModuleType:
    try:
        from smartcard import scard  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise UsageError(
            "PC/SC support needs pyscard: pip install 'jpki[pcsc]' (and pcscd running)"
        ) from None
    return scard  # type: ignore[no-any-return,unused-ignore]


def _check(rc: int, doing: str, reader: str | None = None) -> None:
    if rc & 0xFFFFFFFF != PcscCode.SUCCESS:
        raise map_pcsc_error(rc, doing, reader)


@dataclass(frozen=True)
class ReaderInfo:
    """One PC/SC reader as seen right now."""

    name: str
    card_present: bool
    atr: bytes | None

    @property
    def atr_hex(self) -> str | None:
        """The ATR as spaced upper-case hex (``3B E0 …``), or None without a card."""
        return self.atr.hex(" ").upper() if self.atr else None

    def to_json(self) -> dict[str, Any]:
        """The JSON form: reader name, card_present and the ATR in hex."""
        return {"name": self.name, "card_present": self.card_present, "atr": self.atr_hex}


class _Context:
    """A PC/SC context (released on close)."""

    def __init__(self) -> None:
        self.sc = _scard()
        rc, self.handle = self.sc.SCardEstablishContext(self.sc.SCARD_SCOPE_USER)
        _check(rc, "connecting to the PC/SC service")

    def readers(self) -> list[str]:
        rc, names = self.sc.SCardListReaders(self.handle, [])
        if rc & 0xFFFFFFFF == PcscCode.NO_READERS_AVAILABLE:
            return []
        _check(rc, "listing readers")
        return [str(n) for n in names]

    def states(
        self, states: list[tuple[str, int]], timeout_ms: int
    ) -> list[tuple[str, int, list[int]]] | None:
        """SCardGetStatusChange; None on timeout."""
        rc, new = self.sc.SCardGetStatusChange(self.handle, timeout_ms, states)
        if rc & 0xFFFFFFFF == PcscCode.TIMEOUT:
            return None
        _check(rc, "reading reader state", states[0][0] if len(states) == 1 else None)
        return [(str(r), int(s), list(a)) for r, s, a in new]

    def release(self) -> None:
        self.sc.SCardReleaseContext(self.handle)


def _info(sc: ModuleType, name: str, state: int, atr: list[int]) -> ReaderInfo:
    present = bool(state & sc.SCARD_STATE_PRESENT) and not state & sc.SCARD_STATE_MUTE
    return ReaderInfo(name, present, bytes(atr) if present and atr else None)


def list_readers() -> list[ReaderInfo]:
    """Every reader with card presence and ATR."""
    ctx = _Context()
    try:
        names = ctx.readers()
        if not names:
            return []
        states = ctx.states([(n, ctx.sc.SCARD_STATE_UNAWARE) for n in names], 0) or []
        return [_info(ctx.sc, n, s, a) for n, s, a in states]
    finally:
        ctx.release()


def resolve_reader(wanted: str, names: list[str]) -> str:
    """Exact name first, else a unique case-insensitive substring."""
    if wanted in names:
        return wanted
    hits = [n for n in names if wanted.casefold() in n.casefold()]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        have = ", ".join(repr(n) for n in names) or "none"
        raise ReaderNotFoundError(f"no reader matches {wanted!r} (readers: {have})")
    raise AmbiguousReaderError(
        f"reader {wanted!r} is ambiguous: " + ", ".join(repr(n) for n in hits)
    )


class PcscConnection(Connection):
    """A card in a PC/SC reader, T=0 or T=1."""

    def __init__(self, ctx: _Context, hcard: int, protocol: int, reader: str, share: int) -> None:
        self._ctx: _Context | None = ctx
        self._hcard = hcard
        self._protocol = protocol
        self._share = share
        self.reader = reader
        self._atr = self._status_atr()

    @classmethod
    def connect(
        cls, reader: str, *, timeout: float = 30.0, share: Share = "shared"
    ) -> PcscConnection:
        """Connect to the card in ``reader`` (name or unique substring), waiting for one."""
        ctx = _Context()
        sc = ctx.sc
        try:
            name = resolve_reader(reader, ctx.readers())
            _wait_for_card(ctx, name, timeout)
            mode = sc.SCARD_SHARE_EXCLUSIVE if share == "exclusive" else sc.SCARD_SHARE_SHARED
            rc, hcard, protocol = sc.SCardConnect(
                ctx.handle, name, mode, sc.SCARD_PROTOCOL_T0 | sc.SCARD_PROTOCOL_T1
            )
            _check(rc, "connecting to the card", name)
            try:
                return cls(ctx, hcard, protocol, name, mode)
            except BaseException:
                sc.SCardDisconnect(hcard, sc.SCARD_LEAVE_CARD)
                raise
        except BaseException:
            ctx.release()
            raise

    def _context(self) -> _Context:
        if self._ctx is None:
            raise TransportError("PC/SC connection is closed")
        return self._ctx

    def _status_atr(self) -> bytes:
        sc = self._context().sc
        rc, _reader, _state, _protocol, atr = sc.SCardStatus(self._hcard)
        _check(rc, "reading the card status", self.reader)
        return bytes(atr)

    @property
    def atr(self) -> bytes:
        return self._atr

    @property
    def protocol(self) -> str:
        """The negotiated protocol: ``"T=1"`` or ``"T=0"``."""
        return "T=1" if self._protocol == self._context().sc.SCARD_PROTOCOL_T1 else "T=0"

    def _transmit(self, command: bytes) -> bytes:
        sc = self._context().sc
        rc, response = sc.SCardTransmit(self._hcard, self._protocol, list(command))
        _check(rc, "sending a command", self.reader)
        if not response:
            # Every R-APDU has a status word. pcscd's vpcd driver reports a card side that
            # hung up during the command (a relay losing the card over NFC, the simulator's
            # removal fault) as success with no bytes: that is a removal, not a card's answer.
            raise CardRemovedError(
                f"reader {self.reader!r} returned no answer: the card (or the vpcd card side) "
                "went away during the command"
            )
        return bytes(response)

    def reset(self) -> bytes:
        sc = self._context().sc
        rc, protocol = sc.SCardReconnect(
            self._hcard,
            self._share,
            sc.SCARD_PROTOCOL_T0 | sc.SCARD_PROTOCOL_T1,
            sc.SCARD_RESET_CARD,
        )
        _check(rc, "resetting the card", self.reader)
        self._protocol = protocol
        self._atr = self._status_atr()
        return self._atr

    def close(self) -> None:
        ctx, self._ctx = self._ctx, None
        if ctx is None:
            return
        try:
            ctx.sc.SCardDisconnect(self._hcard, ctx.sc.SCARD_LEAVE_CARD)
        finally:
            ctx.release()


def _wait_for_card(ctx: _Context, reader: str, timeout: float) -> None:
    sc = ctx.sc
    deadline = time.monotonic() + timeout
    state = sc.SCARD_STATE_UNAWARE
    while True:
        remaining = deadline - time.monotonic()
        # Chunks of ≤ 1 s: pcsc-lite's wait is not interrupted by Ctrl-C.
        result = ctx.states([(reader, state)], max(0, min(1000, int(remaining * 1000))))
        if result is not None:
            _name, event, _atr = result[0]
            if event & (sc.SCARD_STATE_UNKNOWN | sc.SCARD_STATE_IGNORE):
                raise ReaderNotFoundError(f"reader {reader!r} went away")
            if event & sc.SCARD_STATE_PRESENT and not event & sc.SCARD_STATE_MUTE:
                return
            state = event & ~sc.SCARD_STATE_CHANGED
        if time.monotonic() >= deadline:
            raise NoCardError(f"no card in reader {reader!r} after waiting {timeout:g} s")
