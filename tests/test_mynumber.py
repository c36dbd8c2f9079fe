"""My Number check digit, validation and redaction."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jpki.errors import JpkiError, MyNumberError
from jpki.mynumber import MyNumber, check_digit, format_my_number, is_valid, validate

# Worked example: 12345678901 → 6+10+12+12+10+42+42+40+36+0+2 = 212; 212 % 11 = 3 → 11-3 = 8.
KNOWN = "123456789018"


def test_check_digit_worked_example() -> None:
    assert check_digit("12345678901") == 8
    assert validate(KNOWN) == KNOWN


WEIGHTS = (6, 5, 4, 3, 2, 7, 6, 5, 4, 3, 2)


def remainder(first11: str) -> int:
    return sum(int(d) * w for d, w in zip(first11, WEIGHTS, strict=True)) % 11


@pytest.mark.parametrize(
    ("first11", "digit"),
    [("00000000000", 0), ("00000000001", 9), ("00000000010", 8), ("10000000000", 5)],
)
def test_check_digit_table(first11: str, digit: int) -> None:
    assert check_digit(first11) == digit


def test_remainder_one_gives_zero() -> None:
    first11 = next(f"{n:011d}" for n in range(1000) if remainder(f"{n:011d}") == 1)
    assert check_digit(first11) == 0


@pytest.mark.parametrize(
    "bad", ["", "12345678901", "1234567890123", "12345678901a", "１２３４５６７８９０１８"]
)
def test_bad_format(bad: str) -> None:
    with pytest.raises(MyNumberError) as err:
        validate(bad)
    assert bad not in str(err.value) or not bad


def test_wrong_check_digit() -> None:
    with pytest.raises(MyNumberError, match="check digit"):
        validate("123456789010")
    assert not is_valid("123456789010")


def test_separators_are_accepted() -> None:
    assert validate("1234 5678 9018") == KNOWN
    assert validate("1234-5678-9018") == KNOWN


def test_redaction() -> None:
    mn = MyNumber(KNOWN)
    for shown in (repr(mn), str(mn), f"{mn}", mn.format(), repr([mn]), repr({"x": mn})):
        assert "9018" not in shown and "1234" not in shown
    assert mn.format() == "**** **** ****"
    assert mn.format(redact=False) == "1234 5678 9018"
    assert mn.reveal() == KNOWN
    assert format_my_number(KNOWN) == "**** **** ****"


def test_equality_and_pickle_round_trip() -> None:
    assert MyNumber(KNOWN) == MyNumber("1234 5678 9018")
    assert MyNumber(KNOWN) != MyNumber("000000000000")
    assert pickle.loads(pickle.dumps(MyNumber(KNOWN))) == MyNumber(KNOWN)


digits11 = st.text(alphabet="0123456789", min_size=11, max_size=11)


@settings(max_examples=300)
@given(digits11)
def test_every_11_digits_have_exactly_one_valid_check_digit(first11: str) -> None:
    valid = [d for d in range(10) if is_valid(first11 + str(d))]
    assert valid == [check_digit(first11)]
    assert MyNumber(first11 + str(valid[0])).reveal() == first11 + str(valid[0])


@settings(max_examples=300)
@given(digits11, st.integers(0, 10), st.sampled_from("0123456789"))
def test_single_digit_errors_are_detected(first11: str, pos: int, new: str) -> None:
    good = first11 + str(check_digit(first11))
    bad = good[:pos] + new + good[pos + 1 :]
    # The statute maps remainders 0 and 1 both to 0: that one collision goes undetected.
    collision = pos < 11 and {remainder(good[:11]), remainder(bad[:11])} == {0, 1}
    assert is_valid(bad) == (bad == good or collision)


@settings(max_examples=300)
@given(st.text(max_size=20))
def test_arbitrary_text_only_raises_my_number_error(text: str) -> None:
    try:
        assert validate(text).isdigit()
    except JpkiError as exc:
        assert isinstance(exc, MyNumberError)
