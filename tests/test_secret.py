"""Secret: never shows its value; compares in constant time."""

from __future__ import annotations

import copy
import hmac
import logging
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jpki.errors import PinFormatError
from jpki.secret import Secret

PIN = "JPKITEST01"


def _renderings(s: Secret) -> list[str]:
    return [
        repr(s),
        str(s),
        f"{s}",
        f"{s!r}",
        f"{s!s}",
        f"{s:>30}",
        format(s, ""),
        "%s %r" % (s, s),  # noqa: UP031 - the old formatting path must be covered too
        "{} {!r}".format(s, s),  # noqa: UP032
        repr([s]),
        repr({"pin": s}),
        repr((s,)),
    ]


@given(st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=4, max_size=16))
def test_renderings_never_show_value(value: str) -> None:
    s = Secret(value)
    for text in _renderings(s):
        assert value not in text
        assert "redacted" in text


def test_reveal_and_len() -> None:
    s = Secret(PIN)
    assert s.reveal() == PIN.encode()
    assert len(s) == len(PIN)
    assert Secret(b"1234").reveal() == b"1234"


def test_logging_does_not_show_value(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("jpki.test").debug("pin=%s %r", Secret(PIN), Secret(PIN))
    assert PIN not in caplog.text
    assert "redacted" in caplog.text


def test_exception_message_does_not_show_value() -> None:
    s = Secret(PIN)
    try:
        raise ValueError(f"bad {s}", s)
    except ValueError as exc:
        assert PIN not in str(exc)
        assert PIN not in repr(exc)


def test_cannot_pickle_or_copy() -> None:
    s = Secret(PIN)
    for proto in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(TypeError):
            pickle.dumps(s, protocol=proto)
    with pytest.raises(TypeError):
        copy.copy(s)
    with pytest.raises(TypeError):
        copy.deepcopy(s)


def test_no_instance_dict() -> None:
    s = Secret(PIN)
    assert not hasattr(s, "__dict__")
    with pytest.raises(AttributeError):
        s.extra = 1  # type: ignore[attr-defined]


def test_not_hashable() -> None:
    with pytest.raises(TypeError):
        hash(Secret(PIN))


@given(st.binary(max_size=20), st.binary(max_size=20))
def test_matches_is_equality(a: bytes, b: bytes) -> None:
    assert Secret(a).matches(b) == (a == b)
    assert Secret(a).matches(Secret(b)) == (a == b)
    assert (Secret(a) == b) == (a == b)
    assert (Secret(a) == Secret(b)) == (a == b)


def test_eq_with_other_types_is_false() -> None:
    assert Secret("1234") != "1234"
    assert Secret("1234") != 1234


def test_matches_uses_constant_time_compare(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert Secret("1234").matches(b"1234")
    assert not Secret("1234").matches(Secret("1235"))
    assert calls == [(b"1234", b"1234"), (b"1234", b"1235")]


def test_non_ascii_is_a_pin_format_error_without_the_value() -> None:
    value = "１２３４"  # full-width digits, as an IME might type them
    with pytest.raises(PinFormatError) as info:
        Secret(value)
    assert value not in str(info.value)
    # Nothing in the chain keeps the value either.
    assert info.value.__context__ is None
    assert info.value.__cause__ is None
