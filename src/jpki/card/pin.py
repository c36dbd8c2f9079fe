"""PIN handling shared by every application: free retry counter, the last-try guard, VERIFY.

Rules (ARCHITECTURE.md "PIN safety"): read the counter first (an empty VERIFY spends nothing),
refuse to VERIFY when one try is left unless forced, and never send a VERIFY twice on our own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from jpki.apdu import INS_CHANGE_REFERENCE_DATA, INS_VERIFY, SW, CommandApdu
from jpki.card.protocol import CardProtocol, sw_error
from jpki.errors import CardError, PinBlocked, PinFormatError, PinGuardError, WrongPin
from jpki.secret import Secret


@dataclass(frozen=True)
class PinStatus:
    """Tries left on one PIN / collation key, read without spending a try.

    ``tries_left`` is None when the card does not say (it answered 9000 to the empty VERIFY;
    a real card answers 63Cx even right after a good VERIFY, so 9000 means "unknown", not
    "logged in").
    """

    name: str
    tries_left: int | None
    max_tries: int | None = None
    #: The card answered 6300 to the empty VERIFY: a key without a retry limit (JICSAP).
    unlimited: bool = False

    @property
    def blocked(self) -> bool:
        """True when no try is left (the card says 0)."""
        return self.tries_left == 0

    @property
    def last_try(self) -> bool:
        """True when one try is left: a wrong value now blocks it."""
        return self.tries_left == 1


def pin_status(protocol: CardProtocol, key_fid: int, name: str, max_tries: int | None) -> PinStatus:
    """SELECT the key EF and send an empty VERIFY: 63Cx → x tries, 6984/6983 → blocked."""
    protocol.select_ef(key_fid)
    response = protocol.transmit(CommandApdu(0x00, INS_VERIFY, 0x00, 0x80), check=False)
    sw = response.sw
    if sw >> 8 == 0x63 and sw & 0xF0 == 0xC0:
        if max_tries is not None and sw & 0x0F > max_tries:
            # A damaged answer (or a broken card): reporting it would be a wrong PIN count.
            raise CardError(
                f"card reported {sw & 0x0F} tries left for the {name}, more than "
                f"its maximum {max_tries}: the answer cannot be trusted"
            )
        return PinStatus(name, sw & 0x0F, max_tries)
    if sw in (SW.REFERENCE_DATA_BLOCKED, SW.AUTH_METHOD_BLOCKED):
        return PinStatus(name, 0, max_tries)
    if sw == 0x6300:
        # No retry counter on this key: "unknown/unlimited", not an error.
        return PinStatus(name, None, max_tries, unlimited=True)
    if sw == SW.OK:
        return PinStatus(name, None, max_tries)
    raise sw_error(sw, f"PIN status of {name}")


_DIGITS = re.compile(rb"[0-9]+")
_SIGNING = re.compile(rb"[A-Z0-9]{6,16}")


def check_digits(secret: Secret, name: str, length: int) -> Secret:
    """Exactly ``length`` ASCII digits, or ``PinFormatError`` (the value is never quoted)."""
    value = secret.reveal()
    if len(value) != length or not _DIGITS.fullmatch(value):
        raise PinFormatError(f"{name} must be exactly {length} digits")
    return secret


def normalise_signing_password(secret: Secret) -> Secret:
    """6–16 of A–Z and 0–9; lower case letters are upper-cased (as users type them)."""
    value = secret.reveal().upper()
    if not _SIGNING.fullmatch(value):
        raise PinFormatError("signing password must be 6-16 characters of A-Z and 0-9")
    return Secret(value)


def guarded_verify(
    protocol: CardProtocol,
    key_fid: int,
    name: str,
    secret: Secret,
    *,
    max_tries: int | None,
    force: bool = False,
) -> PinStatus:
    """Counter first, guard, then exactly one VERIFY. Returns the status read before it.

    Raises ``PinBlocked`` (nothing sent), ``PinGuardError`` (one try left, not forced; nothing
    sent), ``WrongPin`` / ``LastTryWrongPin`` / ``PinBlocked`` from the card's answer.
    """
    status = pin_status(protocol, key_fid, name, max_tries)
    if status.blocked:
        raise PinBlocked()
    if status.last_try and not force:
        raise PinGuardError(1)
    # The empty VERIFY left the key EF selected; the one real VERIFY follows.
    apdu = CommandApdu(0x00, INS_VERIFY, 0x00, 0x80, secret.reveal())
    try:
        protocol.transmit(apdu, what=f"VERIFY {name}")
    except WrongPin as exc:
        # A wrong PIN spends a try: a count not below the one read just before (or above the
        # maximum) is a damaged answer, and passing it on would report a wrong PIN count.
        before = status.tries_left if status.tries_left is not None else max_tries
        if before is not None and exc.retries_left >= before:
            raise CardError(
                f"card answered a wrong {name} with {exc.retries_left} tries left, not fewer "
                f"than the {before} before it: the answer cannot be trusted (read the counter "
                "again with `jpki card status`)"
            ) from exc
        raise
    return status


def change_reference_data(protocol: CardProtocol, name: str, new: Secret) -> None:
    """CHANGE REFERENCE DATA ``00 24 01 80 Lc <new>`` (the old value was verified just before)."""
    apdu = CommandApdu(0x00, INS_CHANGE_REFERENCE_DATA, 0x01, 0x80, new.reveal())
    protocol.transmit(apdu, what=f"CHANGE {name}")
