import pytest

from roman import roman_to_int


def test_single_digits():
    assert roman_to_int("I") == 1
    assert roman_to_int("V") == 5


def test_subtractive():
    assert roman_to_int("IV") == 4
    assert roman_to_int("XC") == 90


def test_invalid_character():
    with pytest.raises(ValueError):
        roman_to_int("XZ")
