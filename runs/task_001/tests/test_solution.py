from solution import is_palindrome


def test_simple_words():
    assert is_palindrome("level")
    assert not is_palindrome("python")


def test_ignores_case_and_punctuation():
    assert is_palindrome("A man, a plan, a canal: Panama!")
    assert is_palindrome("No 'x' in Nixon")


def test_digits_count():
    assert is_palindrome("12321")
    assert not is_palindrome("123 421")


def test_empty_and_symbols_only():
    assert is_palindrome("")
    assert is_palindrome("?!")
