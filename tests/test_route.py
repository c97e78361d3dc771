"""The router: junk replies still give a valid decision, and the trace says what was dropped and why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from domain.routing import DEFAULT_TOOLS, DEFAULT_WORKERS, decide_from_reply, route_row
from orchestrator.errors import UserInputError
from orchestrator.records import RouteDecision, WorkerSpec, new_id
from orchestrator.settings import Settings
from orchestrator.taskspec import Task, load_task
from orchestrator.traces import TraceStore
from tasks.route import route

from .conftest import RUNS, write_replay


def make_task(root: Path, *, workflow: str | None, task_id: str = "t1") -> Task:
    folder = root / task_id
    (folder / "tests").mkdir(parents=True)
    hint = f'workflow = "{workflow}"\n' if workflow else ""
    (folder / "task.toml").write_text(f'id = "{task_id}"\n{hint}prompt = "Write add(a, b)."\n')
    (folder / "solution.py").write_text("def add(a, b):\n    ...\n")
    (folder / "tests" / "test_add.py").write_text("from solution import add\n\ndef test_add():\n    assert add(1, 2) == 3\n")
    return load_task(folder)


@pytest.fixture
def solver_file(tmp_path: Path) -> Path:
    return write_replay(tmp_path / "solver.jsonl", "t1", "```python\ndef add(a, b):\n    return a + b\n```")


@pytest.fixture
def settings(tmp_path: Path, solver_file: Path) -> Settings:
    # Only replay is allowed: the defaults (local, openai, ...) are dropped, the default model remains.
    return Settings(
        allowed_providers=("replay",), provider="replay", model=str(solver_file), cache_dir=tmp_path / "cache"
    )


def dropped_fields(dropped) -> dict[str, str]:
    return {d.field: d.reason for d in dropped}


def test_junk_reply_gives_a_valid_decision_and_names_what_was_dropped(tmp_path, settings, solver_file):
    task = make_task(tmp_path, workflow="coding")
    reply = (
        "Sure! Here is the routing decision you asked for:\n```json\n"
        + '{"workflow": "coding", "workers": ['
        + f'{{"provider": "replay", "model": "{solver_file}", "role": "solver"}},'
        + '{"provider": "skynet", "model": "t-800", "role": "solver"},'
        + '{"provider": "ollama", "model": "mistral:70b", "role": "critic"},'
        + f'{{"provider": "replay", "model": "{solver_file}", "role": "overlord"}},'
        + '"not a worker",],'
        + '"tools": {"python_sandbox": true, "rag": "maybe"},'
        + '"controls": {"use_debate": false, "max_rounds": 99,}, "temperature": 2}\n```\nLet me know!'
    )
    decision, dropped, used_defaults, how = decide_from_reply(reply, task, "cost-first", settings, max_rounds=2)
    assert isinstance(decision, RouteDecision)
    assert how == "repaired"  # prose, a fence and trailing commas
    assert decision.workers == [WorkerSpec(provider="replay", model=str(solver_file), role="solver")]
    assert not used_defaults
    assert decision.controls.max_rounds == 4
    assert decision.tools == DEFAULT_TOOLS["coding"]  # a bad "rag" value: the workflow's default tools...
    reasons = dropped_fields(dropped)
    assert "provider 'skynet'" in reasons["workers[1]"]
    assert "ollama" in reasons["workers[2]"]
    assert "overlord" in reasons["workers[3]"]
    assert "workers[4]" in reasons
    assert reasons["controls.max_rounds"] == "clamped to 4 (1..4)"
    assert "tools" in reasons  # ...and is recorded
    assert reasons["temperature"] == "not part of a routing decision"


def test_prose_without_json_falls_back_to_defaults(tmp_path, settings, solver_file):
    task = make_task(tmp_path, workflow="coding")
    decision, dropped, used_defaults, how = decide_from_reply(
        "I would use a big model and think hard about it.", task, "quality-first", settings, max_rounds=3
    )
    assert how == "failed" and used_defaults
    # quality-first defaults are all unusable here (not allowed): the configured default model stands in
    assert decision.workers == [WorkerSpec(provider="replay", model=str(solver_file), role="solver")]
    assert decision.workflow == "coding"
    assert decision.controls.use_debate is True and decision.controls.max_rounds == 3
    reasons = dropped_fields(dropped)
    assert "no JSON object" in reasons["reply"]
    assert "defaults" in reasons["workers"]


def test_half_json_cut_off_by_the_token_limit_is_repaired(tmp_path, settings, solver_file):
    task = make_task(tmp_path, workflow="coding")
    reply = (
        '{"workflow": "coding", "workers": [{"provider": "replay", "model": "'
        + str(solver_file)
        + '", "role": "solver"}, {"provider": "openai", "model": "gpt-4o'
    )
    decision, dropped, used_defaults, how = decide_from_reply(reply, task, "cost-first", settings, max_rounds=2)
    assert how == "repaired"
    assert [w.model for w in decision.workers] == [str(solver_file)]
    assert decision.controls.max_rounds == 2  # missing controls: the mode's defaults with the run's rounds
    assert "openai" in dropped_fields(dropped)["workers[1]"]


def test_router_critic_without_solver_gets_default_solvers(tmp_path, settings, solver_file):
    task = make_task(tmp_path, workflow="coding")
    reply = json.dumps({"workers": [{"provider": "replay", "model": str(solver_file), "role": "critic"}]})
    decision, dropped, used_defaults, _ = decide_from_reply(reply, task, "cost-first", settings, max_rounds=2)
    assert used_defaults
    assert [w.role for w in decision.workers] == ["solver", "critic"]
    assert "solver" in dropped_fields(dropped)["workers"]


def test_unknown_workflow_without_a_hint_is_a_clear_error(tmp_path, settings):
    task = make_task(tmp_path, workflow=None)
    with pytest.raises(UserInputError, match="workflow 'poetry'.*set workflow"):
        decide_from_reply('{"workflow": "poetry"}', task, "cost-first", settings, max_rounds=2)


def test_unknown_workflow_with_a_hint_uses_the_hint(tmp_path, settings):
    task = make_task(tmp_path, workflow="coding")
    decision, dropped, _, _ = decide_from_reply('{"workflow": "poetry"}', task, "cost-first", settings, max_rounds=2)
    assert decision.workflow == "coding"
    assert "hint" in dropped_fields(dropped)["workflow"]


def test_a_different_valid_workflow_is_recorded_not_followed(tmp_path, settings):
    task = make_task(tmp_path, workflow=None)  # runs as coding, the default
    decision, dropped, _, _ = decide_from_reply('{"workflow": "reasoning"}', task, "cost-first", settings, max_rounds=2)
    assert decision.workflow == "coding"
    assert "runs as 'coding'" in dropped_fields(dropped)["workflow"]


def test_max_rounds_below_range_and_non_numbers(tmp_path, settings):
    task = make_task(tmp_path, workflow="coding")
    low, dropped, _, _ = decide_from_reply('{"controls": {"max_rounds": -3}}', task, "cost-first", settings, 2)
    assert low.controls.max_rounds == 1 and "clamped to 1" in dropped_fields(dropped)["controls.max_rounds"]
    text, dropped, _, _ = decide_from_reply('{"controls": {"max_rounds": "lots"}}', task, "cost-first", settings, 2)
    assert text.controls.max_rounds == 2 and "not a number" in dropped_fields(dropped)["controls.max_rounds"]
    as_text, _, _, _ = decide_from_reply('{"controls": {"max_rounds": "3"}}', task, "cost-first", settings, 2)
    assert as_text.controls.max_rounds == 3


def test_llm_router_call_is_traced_with_the_raw_reply(tmp_path, settings, solver_file):
    """The router model is a replay file: a real provider call with purpose 'route', and a routes row."""
    task = make_task(tmp_path, workflow="coding")
    junk = f'Routing: {{"workers": [{{"provider": "replay", "model": "{solver_file}"}}, {{"provider": "nope", "model": "x"}}], "controls": {{"max_rounds": 99}}}}'
    router_file = write_replay(tmp_path / "router.jsonl", "t1", junk)
    store = TraceStore(tmp_path / "traces")
    run_id = new_id()
    settings = settings.model_copy(update={"router_worker": f"replay:{router_file}"})
    routed = route(task, run_id, store, settings, router="cost-first", max_rounds=2)
    store.write("routes", [route_row(task, run_id, routed)])

    calls = store.rows("calls", run_id=run_id)
    assert [(c["purpose"], c["role"], c["model"]) for c in calls] == [("route", "router", str(router_file))]
    (row,) = store.rows("routes", run_id=run_id)
    assert row["router"] == "cost-first" and row["raw_reply"] == junk and row["parsed_as"] == "embedded"
    dropped = {d["field"]: d for d in json.loads(row["dropped"])}
    assert dropped["workers[1]"]["value"] == {"provider": "nope", "model": "x"}
    assert dropped["controls.max_rounds"]["value"] == 99
    decision = RouteDecision.model_validate_json(row["decision"])
    assert decision.controls.max_rounds == 4 and decision.workers[0].model == str(solver_file)
    assert json.loads(row["workers"]) == [f"replay:{solver_file}:solver"]


def test_a_failing_router_model_falls_back_to_defaults(tmp_path, settings):
    task = make_task(tmp_path, workflow="coding")
    other = write_replay(tmp_path / "other.jsonl", "someone-else", "{}")  # no line for t1: a permanent error
    settings = settings.model_copy(update={"router_worker": f"replay:{other}"})
    store = TraceStore(tmp_path / "traces")
    routed = route(task, new_id(), store, settings, router="quality-first", max_rounds=2)
    assert routed.used_defaults and routed.decision.workers[0].provider == "replay"
    assert "router call failed" in routed.dropped[0].reason


def test_hint_and_explicit_routers_make_no_call(tmp_path, settings, solver_file):
    task = make_task(tmp_path, workflow="coding")
    store = TraceStore(tmp_path / "traces")
    hint = route(task, new_id(), store, settings, router="hint", max_rounds=9)
    assert hint.decision.router == "hint" and hint.decision.controls.max_rounds == 4
    assert hint.decision.workers == [WorkerSpec(provider="replay", model=str(solver_file))]
    critic = WorkerSpec(provider="replay", model=str(solver_file), role="critic")
    explicit = route(task, new_id(), store, settings, workers=[critic, hint.decision.workers[0]], max_rounds=2)
    assert explicit.decision.router == "explicit" and explicit.decision.controls.use_debate is True
    assert store.rows("calls") == []


def test_explicit_workers_outside_the_allow_list_are_refused(tmp_path, settings):
    task = make_task(tmp_path, workflow="coding")
    with pytest.raises(UserInputError, match="allow-list"):
        route(task, new_id(), TraceStore(tmp_path), settings, workers=[WorkerSpec(provider="local", model="m")])


def test_unknown_router_mode_is_refused(tmp_path, settings):
    task = make_task(tmp_path, workflow="coding")
    with pytest.raises(UserInputError, match="choose one of"):
        route(task, new_id(), TraceStore(tmp_path), settings, router="vibes")


def test_default_worker_tables_cover_every_workflow_with_a_solver():
    for mode, table in DEFAULT_WORKERS.items():
        assert set(table) == {"coding", "reasoning", "science", "rag_qa"}, mode
        assert all(any(w.role == "solver" for w in workers) for workers in table.values())
    assert DEFAULT_WORKERS["cost-first"]["coding"] != DEFAULT_WORKERS["quality-first"]["coding"]


def test_shipped_tasks_route_by_hint(tmp_path, settings):
    task = load_task(RUNS / "task_002")
    routed = route(task, new_id(), TraceStore(tmp_path), settings, router="hint")
    assert routed.decision.workflow == "coding" and routed.decision.tools.python_sandbox


@pytest.mark.parametrize(
    ("reply", "value", "how"),
    [
        ('{"a": 1}', {"a": 1}, "json"),
        ('```json\n{"a": 1}\n```', {"a": 1}, "fenced"),
        ('I pick {"a": {"b": [1, 2]}} and {"c": 3}.', {"a": {"b": [1, 2]}}, "embedded"),
        ('{"a": "x}y", "b": 2} then prose', {"a": "x}y", "b": 2}, "embedded"),
        ('{"a": [1, 2,], "b": {"c": 3,},}', {"a": [1, 2], "b": {"c": 3}}, "repaired"),
        ("{'a': True, 'b': None, 'c': 'it\"s'}", {"a": True, "b": None, "c": 'it"s'}, "repaired"),
        ('{"a": [1, 2}', {"a": [1, 2]}, "repaired"),
        ('{"a": 1, "b": {"c": "cut of', {"a": 1, "b": {"c": "cut of"}}, "repaired"),
        ('{"a": 1, "b": tr', {"a": 1}, "repaired"),
        ('{"a": 1, "b":', {"a": 1, "b": None}, "repaired"),
        ("no braces at all", None, "failed"),
        ("[1, 2, 3]", None, "failed"),
        ("   ", None, "empty"),
    ],
)
def test_parse_json_object(reply, value, how):
    from domain.json_reply import parse_json_object

    parsed = parse_json_object(reply)
    assert (parsed.value, parsed.how) == (value, how)
