def roman_to_int(numeral: str) -> int:
    raise NotImplementedError
