"""A PIN or password value that never shows itself in reprs, logs or tracebacks."""

from __future__ import annotations

import hmac
from typing import NoReturn

from jpki.errors import PinFormatError


class Secret:
    """Holds a PIN/password; ``repr``/``str`` are redacted; compare with ``matches``."""

    __slots__ = ("_value",)

    def __init__(self, value: str | bytes) -> None:
        if isinstance(value, str):
            # Checked up front rather than catching UnicodeEncodeError: that exception keeps
            # the value in ``.object`` and would ride along as ``__context__``.
            if not value.isascii():
                raise PinFormatError("a PIN or password must be ASCII characters")
            value = value.encode("ascii")
        self._value = bytes(value)

    def reveal(self) -> bytes:
        """The raw bytes, for the one place that must send them to a card."""
        return self._value

    def __len__(self) -> int:
        return len(self._value)

    def matches(self, other: bytes | Secret) -> bool:
        """Constant-time equality."""
        o = other.reveal() if isinstance(other, Secret) else other
        return hmac.compare_digest(self._value, o)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret | bytes):
            return self.matches(other)
        return NotImplemented

    def __hash__(self) -> int:
        raise TypeError("Secret is not hashable")

    def __repr__(self) -> str:
        return "Secret(<redacted>)"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return format(repr(self), spec)

    def __reduce__(self) -> NoReturn:
        raise TypeError("Secret cannot be pickled")
