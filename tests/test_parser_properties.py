"""Property-based tests of what parses untrusted input: a model's JSON reply, the router's decision, a task
folder. Whatever the input, each returns a value or raises one clear error; none crashes or hangs."""

from __future__ import annotations

import json
import string
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.json_reply import parse_json_object
from domain.routing import ALLOWED_ROLES, ALLOWED_WORKFLOWS, Routed, decide_from_reply, route_row
from orchestrator.errors import TaskFormatError, UserInputError
from orchestrator.records import RouteDecision
from orchestrator.settings import Settings
from orchestrator.taskspec import load_task

HOWS = {"json", "fenced", "embedded", "repaired", "failed", "empty"}
PROPERTIES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=5)
# Text with the characters the parser cares about over-represented.
reply_text = st.text(alphabet=st.sampled_from('{}[]",:\'\\ \n`abTrueFalsNn0123456789.-_é')) | st.text()


# ---------------------------------------------------------------- the JSON-reply parser


@PROPERTIES
@given(reply_text)
def test_any_reply_gives_an_object_or_a_named_failure(text: str) -> None:
    parsed = parse_json_object(text)
    assert parsed.how in HOWS
    assert (parsed.value is None) == (parsed.how in {"failed", "empty"})
    assert parsed.value is None or isinstance(parsed.value, dict)


@PROPERTIES
@given(json_objects, st.text(alphabet=string.ascii_letters + " .,\n", max_size=40))
def test_an_object_is_found_bare_fenced_or_in_prose(obj: dict[str, Any], prose: str) -> None:
    text = json.dumps(obj)
    assert parse_json_object(text).value == obj
    assert parse_json_object(f"```json\n{text}\n```").value == obj
    assert parse_json_object(f"{prose} {text} {prose}").value == obj


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "junk",
    [
        "{" * 50_000,
        "[" * 50_000,
        "a " * 50_000,
        '{"a": ' * 20_000,
        "{'k': True, " * 10_000,
        "1" * 50_000,
        '{"n": ' + "9" * 5_000 + "}",
        "```\n" * 10_000,
        '"' * 50_000,
    ],
    ids=["braces", "brackets", "words", "nested-keys", "python-literals", "digits", "huge-int", "fences", "quotes"],
)
def test_long_junk_does_not_hang_or_crash_the_parser(junk: str) -> None:
    parsed = parse_json_object(junk)
    assert parsed.how in HOWS


# ---------------------------------------------------------------- the router's decision


@pytest.fixture(scope="module")
def router_env() -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        replay = root / "solver.jsonl"
        replay.write_text(json.dumps({"task_id": "t1", "content": "x"}) + "\n")
        config = Settings(allowed_providers=("replay",), provider="replay", model=str(replay), cache_dir=root / "cache")
        tasks = {}
        for hint in (None, "coding"):
            folder = root / f"task-{hint}"
            (folder / "tests").mkdir(parents=True)
            line = f'workflow = "{hint}"\n' if hint else ""
            (folder / "task.toml").write_text(f'id = "t1"\n{line}prompt = "Write add(a, b)."\n')
            (folder / "solution.py").write_text("def add(a, b):\n    ...\n")
            (folder / "tests" / "test_add.py").write_text("def test_add():\n    assert True\n")
            tasks[hint] = load_task(folder)
        yield config, tasks, str(replay)


def _workers_like(replay: str) -> st.SearchStrategy[Any]:
    worker = st.fixed_dictionaries(
        {},
        optional={
            "provider": st.sampled_from(["replay", "openai", "", "local", " replay "]) | json_values,
            "model": st.sampled_from([replay, "gpt-4o", ""]) | json_values,
            "role": st.sampled_from([*ALLOWED_ROLES, "judge", "boss"]) | json_values,
            "extra": json_values,
        },
    )
    return st.lists(worker | json_values, max_size=4) | json_values


def _replies(replay: str) -> st.SearchStrategy[str]:
    decision = st.fixed_dictionaries(
        {},
        optional={
            "workflow": st.sampled_from([*ALLOWED_WORKFLOWS, "poetry"]) | json_values,
            "workers": _workers_like(replay),
            "tools": st.dictionaries(st.sampled_from(["python_sandbox", "rag", "web"]), json_values, max_size=3)
            | json_values,
            "controls": st.dictionaries(
                st.sampled_from(["use_debate", "max_rounds", "temperature"]),
                json_values | st.sampled_from(["3", "1e400", "-7", "NaN", 2.5, 10**12]),
                max_size=3,
            )
            | json_values,
            "reason": json_values,
        },
    )
    as_text = decision.map(json.dumps) | decision.map(lambda d: "Sure! ```json\n" + json.dumps(d)[:-1])
    return as_text | reply_text


@PROPERTIES
@given(data=st.data())
def test_any_router_reply_gives_a_valid_decision_or_one_clear_error(router_env: Any, data: st.DataObject) -> None:
    config, tasks, replay = router_env
    reply = data.draw(_replies(replay))
    hint = data.draw(st.sampled_from([None, "coding"]))
    task = tasks[hint]
    try:
        decision, dropped, used_defaults, how = decide_from_reply(reply, task, "cost-first", config, max_rounds=2)
    except UserInputError as exc:
        assert hint is None and "\n" not in str(exc) and "task.toml" in str(exc)
        return
    assert isinstance(decision, RouteDecision) and how in HOWS
    assert decision.workflow in ALLOWED_WORKFLOWS and any(w.role == "solver" for w in decision.workers)
    assert 1 <= decision.controls.max_rounds <= 4
    # What is recorded of it is a valid trace row.
    row = route_row(task, "r1", Routed(decision=decision, dropped=dropped, used_defaults=used_defaults, raw_reply=reply, parsed_as=how))
    assert isinstance(json.loads(row.dropped), list)


# ---------------------------------------------------------------- the task-folder loader

toml_values = st.one_of(
    st.text(max_size=20).map(json.dumps),  # a TOML basic string is a JSON string, near enough
    st.integers(-5, 10**6).map(str),
    st.sampled_from(["true", "false", "1.5", "-0.0", "[]", '["a", 1]', "{}", "{ timeout_s = -1 }",
                     "{ memory_mb = 10 }", "{ cpus = 2 }", "1979-05-27T07:32:00Z", "inf", "nan"]),
)
toml_keys = st.sampled_from(
    ["id", "prompt", "workflow", "entry", "limits", "answer", "answer_type", "tolerance", "choices",
     "evidence", "corpus", "tags", "unknown", "units"]
)
toml_documents = st.dictionaries(toml_keys, toml_values, max_size=8).map(
    lambda d: "".join(f"{k} = {v}\n" for k, v in d.items())
)
entry_names = st.sampled_from(["solution.py", "../x.py", "/etc/passwd", "a.txt", "sub/sol.py", "", "x\x00.py"])


@PROPERTIES
@given(
    toml=toml_documents | st.text(max_size=200),
    prompt_md=st.none() | st.binary(max_size=40),
    entry=st.none() | entry_names,
    tests=st.sampled_from([None, "tests", "hidden_tests", "tests-empty"]),
    docs=st.booleans(),
    toml_bytes=st.none() | st.binary(max_size=30),
)
def test_any_task_folder_loads_or_fails_with_one_clear_line(
    toml: str, prompt_md: bytes | None, entry: str | None, tests: str | None, docs: bool, toml_bytes: bytes | None
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "task"
        folder.mkdir()
        if toml_bytes is not None:
            (folder / "task.toml").write_bytes(toml_bytes)
        else:
            (folder / "task.toml").write_text(toml, encoding="utf-8", errors="surrogatepass")
        if prompt_md is not None:
            (folder / "prompt.md").write_bytes(prompt_md)
        if entry and "\x00" not in entry and not entry.startswith(("/", "..")):
            (folder / entry).parent.mkdir(parents=True, exist_ok=True)
            (folder / entry).write_text("def f():\n    ...\n")
        if tests == "tests-empty":
            (folder / "tests").mkdir()
        elif tests:
            (folder / tests).mkdir()
            (folder / tests / "test_f.py").write_text("def test_f():\n    assert True\n")
        if docs:
            (folder / "docs").mkdir()
        try:
            task = load_task(folder)
        except TaskFormatError as exc:
            message = str(exc)
            assert "\n" not in message and message.startswith(str(folder)), message
            assert exc.problem.strip()
            return
        assert task.id and task.prompt.strip()
