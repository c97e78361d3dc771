def run_length_encode(text: str) -> str:
    """Encode each run of a repeated character as the character followed by the run's length."""
    raise NotImplementedError
