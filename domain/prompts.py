"""Prompt text for the coding workflow (kept in one place so that replayed runs stay comparable)."""

from __future__ import annotations

from orchestrator.records import Message
from orchestrator.taskspec import Task

CODER_SYSTEM = (
    "You are a careful Python programmer. You write complete, correct, self-contained Python modules. "
    "Answer with exactly one ```python fenced block holding the whole file, and nothing else."
)


def solve_messages(task: Task) -> list[Message]:
    starter = task.entry_source()
    parts = [task.prompt.strip(), ""]
    if starter.strip():
        parts += [f"Complete the file `{task.spec.entry}`. Its current contents:", f"```python\n{starter}```", ""]
    parts.append(f"Reply with the complete contents of `{task.spec.entry}` in one ```python block.")
    return [Message(role="system", content=CODER_SYSTEM), Message(role="user", content="\n".join(parts))]


def fix_messages(task: Task, history: list[Message], code: str, test_output: str) -> list[Message]:
    tests = "\n\n".join(f"# {name}\n{text}" for name, text in task.visible_tests().items())
    feedback = (
        "Your file failed the tests.\n\n"
        f"The tests:\n```python\n{tests}\n```\n\n"
        f"pytest output:\n```\n{test_output}\n```\n\n"
        f"Fix `{task.spec.entry}`. Reply with the complete corrected file in one ```python block."
    )
    return [*history, Message(role="assistant", content=f"```python\n{code}```"), Message(role="user", content=feedback)]
