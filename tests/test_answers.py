"""Final-answer parsing, scoring against a reference, and the self-consistency vote."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.answers import (
    answer_type_of,
    choice_letter,
    majority_vote,
    parse_answer,
    parse_number,
    score_answer,
    vote_settled,
)
from orchestrator.taskspec import TaskSpec


@pytest.mark.parametrize(
    ("reply", "answer", "form"),
    [
        ("Half of 84 is 42.\nANSWER: 42", "42", "answer_line"),
        ("Reasoning...\n**Answer:** $1,250.", "$1,250", "answer_line"),
        ("answer: x\nthen I changed my mind\nANSWER: y", "y", "answer_line"),
        ("Final answer: (B)", "(B)", "answer_line"),
        ("So the result is \\boxed{\\frac{3}{4}} overall.", "3/4", "boxed"),
        ("first \\boxed{1} then \\boxed{ 2 }", "2", "boxed"),
        ("I think it is\n\n  7 apples  \n", "7 apples", "last_line"),
        ("```python\nprint(1)\n```", None, "none"),
        ("It is 12.\n```python\nprint(12)\n```", "It is 12", "last_line"),
        ("   \n", None, "none"),
    ],
)
def test_parse_answer_finds_the_form(reply, answer, form):
    parsed = parse_answer(reply)
    assert (parsed.answer, parsed.form) == (answer, form)


def test_unbalanced_boxed_falls_back_to_the_last_line():
    parsed = parse_answer("we get \\boxed{12\nand that is 12")
    assert parsed.form == "last_line"
    assert parsed.answer == "and that is 12"


@pytest.mark.parametrize(
    ("text", "units", "value"),
    [
        ("42", None, 42.0),
        ("$1,250.50", None, 1250.5),
        ("-3.5e2", None, -350.0),
        ("−7", None, -7.0),
        ("3/4", None, 0.75),
        ("x = 4, so 12 in total", None, 12.0),
        ("9.81 m/s^2 (about 10)", "m/s^2", 9.81),
        ("45%", None, 45.0),
        ("no number here", None, None),
        ("1/0", None, None),
    ],
)
def test_parse_number(text, units, value):
    assert parse_number(text, units) == value


def spec(**kw) -> TaskSpec:
    return TaskSpec(id="t", prompt="q", workflow="reasoning", **kw)


def test_number_answers_use_relative_tolerance():
    loose = spec(answer="9.81", answer_type="number", tolerance=0.01, units="m/s^2")
    assert score_answer("9.8 m/s^2", loose) is True
    assert score_answer("9.6 m/s^2", loose) is False
    strict = spec(answer="18", answer_type="number")
    assert score_answer("18.0", strict) is True
    assert score_answer("18.001", strict) is False
    assert score_answer("eighteen", strict) is False
    assert score_answer(None, strict) is False
    assert score_answer("0", spec(answer="0", answer_type="number")) is True


def test_choice_answers_compare_letters_or_option_text():
    s = spec(answer="B", answer_type="choice", choices=["4 J", "8 J", "16 J"])
    assert score_answer("B", s) is True
    assert score_answer("(b)", s) is True
    assert score_answer("B) 8 J", s) is True
    assert score_answer("8 J", s) is True
    assert score_answer("A", s) is False
    assert score_answer("D", s) is False  # outside the options
    assert choice_letter("Z", ["x", "y"]) is None


def test_exact_answers_are_normalised():
    s = spec(answer="The Eiffel Tower", answer_type="exact")
    assert score_answer("eiffel tower.", s) is True
    assert score_answer("Eiffel-Tower", s) is True
    assert score_answer("Louvre", s) is False


def test_free_answers_and_missing_references_are_left_to_the_judge():
    assert score_answer("anything", spec(answer="x", answer_type="free")) is None
    assert score_answer("anything", spec()) is None


def test_answer_type_is_inferred_when_unstated():
    assert answer_type_of(spec(answer="1,000")) == "number"
    assert answer_type_of(spec(answer="Paris")) == "exact"
    assert answer_type_of(spec(answer="A", choices=["x", "y"])) == "choice"
    assert answer_type_of(spec()) == "free"


def test_majority_vote_groups_equal_answers():
    s = spec(answer="12", answer_type="number")
    vote = majority_vote(["12", "12.0", "$12", "13", None], s)
    assert (vote.key, vote.count, vote.total) == (repr(12.0), 3, 5)
    assert vote.answer == "12"


def test_majority_vote_ties_go_to_the_first_seen_and_empty_votes_have_no_winner():
    s = spec(answer="A", answer_type="choice", choices=["x", "y"])
    assert majority_vote(["B", "A", "a", "(b)"], s).key == "B"
    empty = majority_vote([None, "nonsense words"], spec(answer="1", answer_type="number"))
    assert (empty.key, empty.count, empty.total) == (None, 0, 2)


@given(
    st.lists(st.sampled_from(["1", "2", "3", None]), min_size=1, max_size=9),
    st.lists(st.sampled_from(["1", "2", "3", None]), max_size=9),
)
def test_a_settled_vote_keeps_its_winner_whatever_the_remaining_answers_say(drawn, rest):
    s = spec(answer="1", answer_type="number")
    if vote_settled(drawn, s, len(rest)):
        assert majority_vote(drawn + rest, s).key == majority_vote(drawn, s).key


def test_a_vote_settles_only_when_the_runner_up_cannot_catch_up():
    s = spec(answer="1", answer_type="number")
    assert vote_settled(["4", "4", "4"], s, remaining=2)
    assert not vote_settled(["4", "4", "5"], s, remaining=2)
    assert vote_settled(["4", "4", "5"], s, remaining=0)
    assert not vote_settled([None, None], s, remaining=0)
