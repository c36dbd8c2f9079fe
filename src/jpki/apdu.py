"""Command and response APDU value types (ISO 7816-4), short and extended encodings."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from jpki.errors import ApduFormatError

MAX_SHORT_LC = 255
MAX_SHORT_LE = 256
MAX_EXTENDED_LC = 65535
MAX_EXTENDED_LE = 65536

INS_VERIFY = 0x20
INS_CHANGE_REFERENCE_DATA = 0x24
# Every INS whose data can carry a PIN: VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER
# (PUK + new PIN) and their odd-INS (BER-TLV data) variants. Their data is never logged.
SECRET_INS = frozenset({0x20, 0x21, 0x24, 0x25, 0x2C, 0x2D})


class SW(enum.IntEnum):
    """Status words the JPKI chip and ISO 7816-4 use."""

    OK = 0x9000
    WRONG_LENGTH = 0x6700
    SECURITY_STATUS_NOT_SATISFIED = 0x6982
    COMMAND_INCOMPATIBLE_WITH_FILE = 0x6981
    AUTH_METHOD_BLOCKED = 0x6983
    REFERENCE_DATA_BLOCKED = 0x6984
    CONDITIONS_NOT_SATISFIED = 0x6985
    COMMAND_NOT_ALLOWED = 0x6986
    WRONG_DATA = 0x6A80
    FUNCTION_NOT_SUPPORTED = 0x6A81
    FILE_NOT_FOUND = 0x6A82
    RECORD_NOT_FOUND = 0x6A83
    INCORRECT_P1P2 = 0x6A86
    REFERENCED_DATA_NOT_FOUND = 0x6A88
    WRONG_P1P2 = 0x6B00
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00
    NO_PRECISE_DIAGNOSIS = 0x6F00
    MEMORY_FAILURE = 0x6581
    END_OF_FILE = 0x6282

    @staticmethod
    def describe(sw: int) -> str:
        """A short human description of any status word."""
        sw1, sw2 = sw >> 8, sw & 0xFF
        if sw1 == 0x61:
            return f"{sw2 or 256} more bytes available"
        if sw1 == 0x6C:
            return f"wrong Le; exact length is {sw2 or 256}"
        if sw1 == 0x63 and sw2 & 0xF0 == 0xC0:
            return f"verification failed, {sw2 & 0x0F} tries left"
        try:
            return SW(sw).name.replace("_", " ").lower()
        except ValueError:
            return f"status word {sw:04X}"


@dataclass(frozen=True)
class CommandApdu:
    """A command APDU. ``le`` is None for no Le; 256 (short) / 65536 (extended) mean 'all'."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None

    def __post_init__(self) -> None:
        for name in ("cla", "ins", "p1", "p2"):
            v = getattr(self, name)
            if not 0 <= v <= 0xFF:
                raise ApduFormatError(f"{name} out of range: {v}")
        if len(self.data) > MAX_EXTENDED_LC:
            raise ApduFormatError(f"command data too long: {len(self.data)} bytes")
        if self.le is not None and not 1 <= self.le <= MAX_EXTENDED_LE:
            raise ApduFormatError(f"Le out of range: {self.le}")

    @property
    def needs_extended(self) -> bool:
        """True when the data (over 255 bytes) or Le (over 256) needs extended length."""
        return len(self.data) > MAX_SHORT_LC or (self.le is not None and self.le > MAX_SHORT_LE)

    def encode(self, extended: bool | None = None) -> bytes:
        """Encode; ``extended=None`` picks short unless the lengths need extended."""
        ext = self.needs_extended if extended is None else extended
        if not ext and self.needs_extended:
            raise ApduFormatError("lengths need an extended APDU")
        out = bytearray((self.cla, self.ins, self.p1, self.p2))
        if not ext:
            if self.data:
                out.append(len(self.data))
                out += self.data
            if self.le is not None:
                out.append(self.le & 0xFF)
            return bytes(out)
        if self.data:
            out += b"\x00" + len(self.data).to_bytes(2, "big") + self.data
            if self.le is not None:
                out += (self.le & 0xFFFF).to_bytes(2, "big")
        elif self.le is not None:
            out += b"\x00" + (self.le & 0xFFFF).to_bytes(2, "big")
        return bytes(out)

    def __bytes__(self) -> bytes:
        return self.encode()

    @classmethod
    def decode(cls, raw: bytes) -> CommandApdu:
        """Parse any of the ISO 7816-3 cases 1–4, short or extended."""
        n = len(raw)
        if n < 4:
            raise ApduFormatError(f"command APDU too short: {n} bytes")
        cla, ins, p1, p2 = raw[0], raw[1], raw[2], raw[3]
        body = raw[4:]
        b = len(body)
        if b == 0:
            return cls(cla, ins, p1, p2)
        if b == 1:
            return cls(cla, ins, p1, p2, le=body[0] or 256)
        if body[0] != 0:
            lc = body[0]
            if b == 1 + lc:
                return cls(cla, ins, p1, p2, bytes(body[1:]))
            if b == 2 + lc:
                return cls(cla, ins, p1, p2, bytes(body[1 : 1 + lc]), body[1 + lc] or 256)
            raise ApduFormatError(f"Lc={lc} does not match {b - 1} bytes of body")
        # body[0] == 0 with more bytes: extended form
        if b == 3:
            le = int.from_bytes(body[1:3], "big") or 65536
            return cls(cla, ins, p1, p2, le=le)
        if b < 3:
            raise ApduFormatError("truncated extended length")
        lc = int.from_bytes(body[1:3], "big")
        if lc == 0:
            raise ApduFormatError("extended Lc of zero")
        if b == 3 + lc:
            return cls(cla, ins, p1, p2, bytes(body[3:]))
        if b == 5 + lc:
            le = int.from_bytes(body[3 + lc :], "big") or 65536
            return cls(cla, ins, p1, p2, bytes(body[3 : 3 + lc]), le)
        raise ApduFormatError(f"extended Lc={lc} does not match {b - 3} bytes of body")

    def __repr__(self) -> str:
        # The dataclass repr would show a VERIFY's PIN bytes (tracebacks, %r in logs).
        return f"CommandApdu({self.redacted()})"

    def redacted(self) -> str:
        """Hex for logs, with VERIFY / CHANGE REFERENCE DATA data blanked."""
        head = f"{self.cla:02X} {self.ins:02X} {self.p1:02X} {self.p2:02X}"
        if self.data:
            if self.ins in SECRET_INS:
                # Not even the length: it tells a PIN from a signing password's size.
                head += " [secret]"
            else:
                head += " " + self.data.hex().upper()
        if self.le is not None:
            head += f" Le={self.le}"
        return head


def redact_command(raw: bytes) -> str:
    """Log form of raw command bytes; never shows PIN data, even for malformed APDUs."""
    try:
        return CommandApdu.decode(raw).redacted()
    except ApduFormatError:
        if len(raw) >= 2 and raw[1] in SECRET_INS:
            return raw[:4].hex().upper() + (" [secret]" if len(raw) > 4 else "")
        return raw.hex().upper()


@dataclass(frozen=True)
class ResponseApdu:
    """A response APDU: data and the two-byte status word."""

    data: bytes
    sw: int

    def __post_init__(self) -> None:
        if not 0 <= self.sw <= 0xFFFF:
            raise ApduFormatError(f"status word out of range: {self.sw}")

    @property
    def sw1(self) -> int:
        """The first status byte (``0x90`` of ``9000``)."""
        return self.sw >> 8

    @property
    def sw2(self) -> int:
        """The second status byte (``0x00`` of ``9000``)."""
        return self.sw & 0xFF

    @property
    def ok(self) -> bool:
        """True when the status word is ``9000``."""
        return self.sw == SW.OK

    def encode(self) -> bytes:
        """The response as sent: data followed by the two status bytes."""
        return self.data + self.sw.to_bytes(2, "big")

    def __bytes__(self) -> bytes:
        return self.encode()

    @classmethod
    def decode(cls, raw: bytes) -> ResponseApdu:
        """Split raw bytes into data and status word; under 2 bytes is an ``ApduFormatError``."""
        if len(raw) < 2:
            raise ApduFormatError(f"response APDU too short: {len(raw)} bytes")
        return cls(bytes(raw[:-2]), int.from_bytes(raw[-2:], "big"))

    def __repr__(self) -> str:
        return f"ResponseApdu(data={self.data.hex()!r}, sw={self.sw:04X})"
