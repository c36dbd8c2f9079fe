"""My Number (個人番号): check digit, validation and a value type that never shows itself.

The My Number is "specific personal information": it must not reach logs, reprs or
tracebacks. ``MyNumber`` redacts fully (``************``), not even the last four digits,
because any part of it narrows a person down; call ``reveal()`` or ``format(redact=False)``
where the user asked to see it.
"""

from __future__ import annotations

from jpki.errors import MyNumberError

LENGTH = 12
_WEIGHTS = (6, 5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
REDACTED = "*" * LENGTH


def check_digit(first11: str) -> int:
    """Check digit for the first 11 digits (statutory: weights 6,5,4,3,2,7,6,5,4,3,2)."""
    if len(first11) != LENGTH - 1 or not (first11.isascii() and first11.isdigit()):
        raise MyNumberError("need exactly 11 digits to compute a My Number check digit")
    r = sum(int(d) * w for d, w in zip(first11, _WEIGHTS, strict=True)) % 11
    return 0 if r <= 1 else 11 - r


def normalise(value: str) -> str:
    """Drop the spaces and hyphens people write between groups (``1234 5678 9012``)."""
    return value.replace(" ", "").replace("-", "").replace("\u3000", "")


def validate(value: str) -> str:
    """The 12 digits of ``value`` if valid, else ``MyNumberError`` (the value is not quoted)."""
    digits = normalise(value)
    if len(digits) != LENGTH or not (digits.isascii() and digits.isdigit()):
        raise MyNumberError("a My Number is exactly 12 digits")
    if check_digit(digits[:-1]) != int(digits[-1]):
        raise MyNumberError("My Number check digit is wrong")
    return digits


def is_valid(value: str) -> bool:
    """True if ``value`` is a 12-digit My Number with a correct check digit."""
    try:
        validate(value)
    except MyNumberError:
        return False
    return True


def format_my_number(value: str, *, redact: bool = True) -> str:
    """``1234 5678 9012`` grouping; ``**** **** ****`` when redacted."""
    digits = REDACTED if redact else normalise(value)
    return " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))


class MyNumber:
    """A validated My Number whose ``repr``/``str`` are always redacted."""

    __slots__ = ("_digits",)

    def __init__(self, value: str) -> None:
        self._digits = validate(value)

    def reveal(self) -> str:
        """The 12 digits, for the one place that must show or send them."""
        return self._digits

    def format(self, *, redact: bool = True) -> str:
        """``1234 5678 9012`` grouping, or ``**** **** ****`` unless ``redact=False``."""
        return format_my_number(self._digits, redact=redact)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MyNumber):
            return self._digits == other._digits
        return NotImplemented

    def __hash__(self) -> int:
        return hash(("MyNumber", self._digits))

    def __repr__(self) -> str:
        return f"MyNumber({REDACTED})"

    def __str__(self) -> str:
        return REDACTED
