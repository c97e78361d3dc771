def is_palindrome(text: str) -> bool:
    """Return True when text is a palindrome, ignoring case and non-alphanumeric characters."""
    raise NotImplementedError
