"""A PIN or password value that never shows itself in reprs, logs or tracebacks."""

from __future__ import annotations

import hmac


class Secret:
    """Holds a PIN/password; ``repr``/``str`` are redacted; compare with ``matches``."""

    __slots__ = ("_value",)

    def __init__(self, value: str | bytes) -> None:
        self._value = value.encode("ascii", "strict") if isinstance(value, str) else bytes(value)

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

    def __reduce__(self) -> object:
        raise TypeError("Secret cannot be pickled")
