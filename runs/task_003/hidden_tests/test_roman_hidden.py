import pytest

from roman import roman_to_int


@pytest.mark.parametrize(
    ("numeral", "value"),
    [("III", 3), ("LVIII", 58), ("MCMXCIV", 1994), ("MMMCMXCIX", 3999), ("CDXLIV", 444)],
)
def test_values(numeral, value):
    assert roman_to_int(numeral) == value


def test_empty_is_an_error():
    with pytest.raises(ValueError):
        roman_to_int("")
