import pytest

from domain.code_extract import extract_code


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Here:\n```python\ndef f():\n    return 1\n```\nDone.", "def f():\n    return 1\n"),
        ("```\ndef f():\n    return 2\n```", "def f():\n    return 2\n"),
        ("```py\ndef f():\n    return 3\n```", "def f():\n    return 3\n"),
        ("def f():\n    return 4\n", "def f():\n    return 4\n"),
        ("```python\ndef f():\n    return 5\n", "def f():\n    return 5\n"),  # cut by max_tokens
    ],
)
def test_code_forms(reply, expected):
    assert extract_code(reply) == expected


def test_prefers_block_defining_the_entry():
    reply = (
        "```python\nprint(add(1, 2))  # usage example, quite a long line to be longer\n```\n"
        "```python\ndef add(a, b):\n    return a + b\n```"
    )
    assert extract_code(reply, "add") == "def add(a, b):\n    return a + b\n"


def test_prefers_python_over_other_languages():
    reply = "```bash\npip install something-long-and-longer-than-the-code\n```\n```python\nx = 1\n```"
    assert extract_code(reply) == "x = 1\n"
