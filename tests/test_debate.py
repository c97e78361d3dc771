"""The critic step shared by every workflow: its prompt, its verdict line, and the revision request."""

from __future__ import annotations

import pytest

from domain.critique import critique_messages, parse_approval, revise_messages
from orchestrator.records import Message


@pytest.mark.parametrize(
    ("text", "approved"),
    [
        ("All good.\nVERDICT: APPROVE", True),
        ("Off by one in the loop.\nVERDICT: REVISE", False),
        ("verdict - approve", True),
        ("First I thought VERDICT: APPROVE, but no.\nVERDICT: REVISE", False),
        ("Looks fine to me.", False),  # no verdict line: the cautious reading
    ],
)
def test_parse_approval(text, approved):
    assert parse_approval(text) is approved


def test_critique_sees_feedback_only_when_given():
    plain = critique_messages("Add two numbers.", "def add(a, b): return a - b")
    assert plain[0].role == "system" and "VERDICT: APPROVE" in plain[0].content
    assert "Add two numbers." in plain[1].content and "Feedback" not in plain[1].content
    with_output = critique_messages("Add two numbers.", "def add(a, b): return a - b", feedback="assert -1 == 3")
    assert "Feedback from running it:\nassert -1 == 3" in with_output[1].content


def test_revise_extends_the_conversation():
    history = [Message(role="system", content="s"), Message(role="user", content="q")]
    messages = revise_messages(history, "answer 1", "  It is wrong.  ", "Answer again.")
    assert [m.role for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[2].content == "answer 1"
    assert messages[3].content == "A reviewer critiqued your answer:\n\nIt is wrong.\n\nAnswer again."
