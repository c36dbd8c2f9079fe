"""ISO 7816-4 protocol layer: response chaining, Le correction, SELECT, READ BINARY, SW → errors.

This is the one place that knows about 61xx GET RESPONSE, 6Cxx re-sends, chunked and DER-sized
READ BINARY; the per-application session classes above it only speak in verbs.
"""

from __future__ import annotations

from jpki.apdu import SECRET_INS, SW, CommandApdu, ResponseApdu
from jpki.card.constants import Aid
from jpki.errors import (
    ApduError,
    ApduFormatError,
    CardError,
    FileNotFoundOnCardError,
    LastTryWrongPin,
    PinBlocked,
    SecurityStatusError,
    TlvError,
    UsageError,
    WrongPin,
)
from jpki.tlv import der_total_length
from jpki.transport.base import Connection

INS_SELECT = 0xA4
INS_READ_BINARY = 0xB0
INS_GET_RESPONSE = 0xC0
#: Commands that carry or consume a PIN (the same set whose data is never logged): never
#: re-sent by this layer, whatever the card answers.
PIN_INS = SECRET_INS

#: Most bytes one short READ BINARY returns.
CHUNK = 256
#: READ BINARY offsets are 15 bits: P1's high bit means "short EF identifier", never offset.
MAX_OFFSET = 0x7FFF
#: Largest file reachable with 15-bit offsets and 256-byte reads.
MAX_FILE_SIZE = MAX_OFFSET + CHUNK


def sw_error(sw: int, what: str | None = None) -> ApduError:
    """The exception for a non-9000 status word (``what`` names the operation)."""
    prefix = f"{what}: " if what else ""
    sw1, sw2 = sw >> 8, sw & 0xFF
    if sw == SW.SECURITY_STATUS_NOT_SATISFIED:
        return SecurityStatusError(sw, f"{prefix}security status not satisfied (verify the PIN)")
    if sw == SW.FILE_NOT_FOUND:
        return FileNotFoundOnCardError(sw, f"{prefix}application or file not found on the card")
    if sw1 == 0x63 and sw2 & 0xF0 == 0xC0:
        if sw2 & 0x0F == 0:
            return LastTryWrongPin(sw)
        return WrongPin(sw, sw2 & 0x0F)
    if sw in (SW.REFERENCE_DATA_BLOCKED, SW.AUTH_METHOD_BLOCKED):
        return PinBlocked(sw)
    return ApduError(sw, f"{prefix}card answered {sw:04X} ({SW.describe(sw)})")


def raise_for_sw(response: ResponseApdu, what: str | None = None) -> ResponseApdu:
    """Return ``response`` if its status word is 9000, else raise the mapped error."""
    if response.sw != SW.OK:
        raise sw_error(response.sw, what)
    return response


class CardProtocol:
    """Talks ISO 7816-4 to one card over a ``Connection``.

    ``max_chain`` bounds GET RESPONSE rounds and 6Cxx re-sends so that a card that answers
    61xx (or 6Cxx) forever ends in a ``CardError`` instead of a hang.
    """

    def __init__(self, conn: Connection, *, max_chain: int = 128, max_resend: int = 2) -> None:
        self.connection = conn
        self.max_chain = max_chain
        self.max_resend = max_resend
        #: The DF this protocol selected last (None: unknown / none). Selecting a DF clears
        #: the card's verified PINs, so session classes use this to know where they stand.
        self.selected_df: bytes | None = None

    # --- raw exchange ----------------------------------------------------------------------

    def _exchange(self, apdu: CommandApdu) -> ResponseApdu:
        raw = self.connection.transmit(apdu.encode())
        if len(raw) < 2:
            raise CardError(f"card answer of {len(raw)} bytes has no status word")
        try:
            return ResponseApdu.decode(raw)
        except ApduFormatError as exc:  # pragma: no cover - length checked above
            raise CardError(str(exc)) from None

    def transmit(
        self, apdu: CommandApdu, *, check: bool = True, what: str | None = None
    ) -> ResponseApdu:
        """Send ``apdu``; follow 61xx with GET RESPONSE and 6Cxx with an exact-Le re-send.

        With ``check`` (default) a final status word other than 9000 raises the mapped
        ``ApduError`` subclass; with ``check=False`` the response is returned as is.
        """
        response = self._exchange(apdu)
        resends = 0
        while response.sw1 == 0x6C:
            # A PIN command is never sent twice on our own (it could spend a second try).
            if apdu.ins in PIN_INS or resends >= self.max_resend:
                break
            resends += 1
            apdu = CommandApdu(apdu.cla, apdu.ins, apdu.p1, apdu.p2, apdu.data, response.sw2 or 256)
            response = self._exchange(apdu)
        if response.sw1 == 0x61:
            response = self._get_response_chain(response)
        if check:
            raise_for_sw(response, what)
        return response

    def _get_response_chain(self, first: ResponseApdu) -> ResponseApdu:
        data = bytearray(first.data)
        response = first
        rounds = 0
        while response.sw1 == 0x61:
            rounds += 1
            if rounds > self.max_chain:
                raise CardError(f"card kept answering 61xx after {self.max_chain} GET RESPONSE")
            get = CommandApdu(0x00, INS_GET_RESPONSE, 0, 0, le=response.sw2 or 256)
            response = self._exchange(get)
            if response.sw1 == 0x6C:
                get = CommandApdu(0x00, INS_GET_RESPONSE, 0, 0, le=response.sw2 or 256)
                response = self._exchange(get)
            data += response.data
        return ResponseApdu(bytes(data), response.sw)

    def send(self, apdu: CommandApdu, *, what: str | None = None) -> bytes:
        """Send ``apdu`` and return its data; any status word but 9000 raises."""
        return self.transmit(apdu, what=what).data

    # --- SELECT ----------------------------------------------------------------------------

    def select_df(self, aid: bytes | Aid) -> None:
        """SELECT DF by name (``00 A4 04 0C``, no FCI). Clears the card's verified PINs."""
        name = bytes(aid.value if isinstance(aid, Aid) else aid)
        if not 1 <= len(name) <= 16:
            raise UsageError(f"AID must be 1-16 bytes, not {len(name)}")
        self.selected_df = None
        self.send(CommandApdu(0x00, INS_SELECT, 0x04, 0x0C, name), what=f"SELECT {name.hex()}")
        self.selected_df = name

    def select_ef(self, fid: int) -> None:
        """SELECT EF by file identifier (``00 A4 02 0C 02 FID``) inside the current DF."""
        if not 0 <= fid <= 0xFFFF:
            raise UsageError(f"file id out of range: {fid}")
        what = f"SELECT EF {fid:04X}"
        self.send(CommandApdu(0x00, INS_SELECT, 0x02, 0x0C, fid.to_bytes(2, "big")), what=what)

    # --- READ BINARY -----------------------------------------------------------------------

    def read_binary(self, offset: int, length: int = CHUNK) -> bytes:
        """READ BINARY of up to ``length`` (1–256) bytes at a 15-bit ``offset``.

        The card may return fewer bytes (short tail, 9000 or 6282). Past the end: ``ApduError``
        with sw 6B00.
        """
        if not 0 <= offset <= MAX_OFFSET:
            raise UsageError(f"READ BINARY offset {offset} does not fit 15 bits")
        if not 1 <= length <= CHUNK:
            raise UsageError(f"READ BINARY length must be 1-{CHUNK}, not {length}")
        apdu = CommandApdu(0x00, INS_READ_BINARY, offset >> 8, offset & 0xFF, le=length)
        response = self.transmit(apdu, check=False)
        # 6282 "end of file reached before Le bytes" is a warning with valid data.
        if response.sw not in (SW.OK, SW.END_OF_FILE):
            raise sw_error(response.sw, f"READ BINARY at {offset}")
        if len(response.data) > length:
            raise CardError(f"card returned {len(response.data)} bytes for a {length}-byte read")
        return response.data

    def _read_tail(self, offset: int, length: int = CHUNK) -> bytes | None:
        """One READ BINARY at ``offset``; None when the card says the offset is past the end."""
        try:
            return self.read_binary(offset, length)
        except ApduError as exc:
            if exc.sw == SW.WRONG_P1P2:
                return None
            raise

    def read_file(self, max_size: int = MAX_FILE_SIZE) -> bytes:
        """Read the selected EF until a short chunk, 6B00, or ``max_size`` bytes."""
        if not 1 <= max_size <= MAX_FILE_SIZE:
            raise UsageError(f"max_size must be 1-{MAX_FILE_SIZE}")
        data = bytearray()
        while len(data) < max_size:
            want = min(CHUNK, max_size - len(data))
            if len(data) > MAX_OFFSET:
                break
            chunk = self._read_tail(len(data), want)
            if chunk is None:
                break
            data += chunk
            if len(chunk) < want:
                break
        return bytes(data)

    def read_der_file(self, max_size: int = MAX_FILE_SIZE) -> bytes:
        """Read the selected EF holding one DER/BER object, sized from its header.

        Any definite length form works (short, 81, 82, 83, 84). Bytes after the object
        (padding) are not returned; a file shorter than its header says is a ``CardError``.
        """
        data = bytearray()
        total: int | None = None
        # Usually the first 256-byte chunk holds the header; a stingy card may need more reads.
        while total is None:
            if len(data) > 16:
                raise CardError("DER header longer than 16 bytes")
            chunk = self._read_tail(len(data))
            if not chunk:
                raise CardError("file is empty" if not data else "file ends inside its DER header")
            data += chunk
            try:
                total = der_total_length(bytes(data))
            except TlvError as exc:
                raise CardError(f"file does not start with a DER object: {exc}") from None
        if total > max_size:
            raise CardError(f"DER object of {total} bytes is larger than {max_size}")
        while len(data) < total:
            offset = len(data)
            if offset > MAX_OFFSET:
                raise CardError(f"DER object of {total} bytes is beyond 15-bit READ offsets")
            # Ask for exactly what is missing; a card (or NFC stack) returning less than asked
            # is tolerated as long as it makes progress.
            chunk = self._read_tail(offset, min(CHUNK, total - offset))
            if not chunk:
                raise CardError(f"file ends at {offset} bytes; its DER header says {total}")
            data += chunk
        return bytes(data[:total])


def as_protocol(protocol_or_conn: CardProtocol | Connection) -> CardProtocol:
    """Accept either layer: session classes take a protocol or a bare connection."""
    if isinstance(protocol_or_conn, CardProtocol):
        return protocol_or_conn
    if isinstance(protocol_or_conn, Connection):
        return CardProtocol(protocol_or_conn)
    raise UsageError(f"need a CardProtocol or Connection, not {type(protocol_or_conn).__name__}")


__all__ = [
    "CHUNK",
    "MAX_FILE_SIZE",
    "MAX_OFFSET",
    "CardProtocol",
    "as_protocol",
    "raise_for_sw",
    "sw_error",
]
