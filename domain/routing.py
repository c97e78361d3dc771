"""Routing, the plain part: which workflow, which workers in which roles, which tools and controls.

tasks/route.py asks the LLM router (a model call) and writes the ``routes`` row; the rules are here.

Who decides, in order: workers given explicitly (``--worker``) bypass routing; otherwise the mode
(``--router`` or ``ORCH_ROUTER_MODE``) picks one of

- ``hint``: the task folder's own workflow and the configured default model; no model call;
- ``learned``: a model trained on the traces (domain/router_learned.py); no model call;
- ``cost-first`` / ``quality-first``: an LLM router is asked for a JSON decision. Each mode has its
  own prompt and its own default workers.

Nothing a router says is trusted: the reply is parsed as far as it can be (domain/json_reply.py) and
validated part by part against the allow-lists; every item dropped or adjusted is recorded with its
reason in the ``routes`` table, beside the raw reply and the final decision.
"""

from __future__ import annotations

import json
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, ValidationError

from domain.json_reply import parse_json_object
from domain.workers import parse_worker, preflight
from orchestrator.errors import OrchestratorError, UserInputError
from orchestrator.records import (
    MAX_ROUNDS,
    MIN_ROUNDS,
    ROUTER_MODES,
    Message,
    RouteControls,
    RouteDecision,
    RouteRow,
    RouteTools,
    WorkerSpec,
)
from orchestrator.settings import Settings
from orchestrator.taskspec import Task, Workflow
from providers.pricing import unit_prices

ALLOWED_WORKFLOWS: tuple[str, ...] = get_args(Workflow)
ALLOWED_ROLES: tuple[str, ...] = ("solver", "critic", "verifier", "retriever")
LLM_MODES: tuple[str, ...] = ("cost-first", "quality-first")
TASK_TEXT_CHARS = 3000  # what the LLM router is shown of a long task


def _workers(*labels: str) -> tuple[WorkerSpec, ...]:
    return tuple(parse_worker(label) for label in labels)


_LOCAL = "local:qwen2.5-coder-0.5b"
#: mode -> workflow -> default workers. Used when a router names no usable worker; workers whose
#: provider is not usable here (not allowed, no key) are left out, so offline this is the local model.
DEFAULT_WORKERS: dict[str, dict[str, tuple[WorkerSpec, ...]]] = {
    "cost-first": {workflow: _workers(f"{_LOCAL}:solver") for workflow in ALLOWED_WORKFLOWS},
    "quality-first": {
        "coding": _workers(
            "openai:gpt-4o:solver",
            "anthropic:claude-3-5-sonnet-latest:solver",
            f"{_LOCAL}:solver",
            "openai:gpt-4o-mini:critic",
            f"{_LOCAL}:critic",
        ),
        **{
            workflow: _workers(
                "openai:gpt-4o:solver",
                "anthropic:claude-3-5-sonnet-latest:solver",
                f"{_LOCAL}:solver",
                "openai:gpt-4o-mini:critic",
                f"{_LOCAL}:critic",
                "openai:gpt-4o-mini:verifier",
                f"{_LOCAL}:verifier",
            )
            for workflow in ("reasoning", "science", "rag_qa")
        },
    },
}
DEFAULT_CONTROLS: dict[str, RouteControls] = {
    "cost-first": RouteControls(use_debate=False, max_rounds=2),
    "quality-first": RouteControls(use_debate=True, max_rounds=3),
}
DEFAULT_TOOLS: dict[str, RouteTools] = {
    "coding": RouteTools(python_sandbox=True),
    "reasoning": RouteTools(),
    "science": RouteTools(python_sandbox=True),
    "rag_qa": RouteTools(rag=True),
}

_MODE_BRIEF = {
    "cost-first": (
        "Spend as little as possible: choose the single cheapest worker likely to solve the task, add a "
        "critic (use_debate) only for a hard task, and keep max_rounds low."
    ),
    "quality-first": (
        "Aim for the best answer: choose the strongest workers, several solvers when they are available, "
        "a critic with use_debate for anything non-trivial, and up to 4 rounds."
    ),
}

#: What the router must answer; given to providers that can constrain output to a schema (llama.cpp).
REPLY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "workflow": {"type": "string", "enum": list(ALLOWED_WORKFLOWS)},
        "workers": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "provider": {"type": "string"},
                    "model": {"type": "string"},
                    "role": {"type": "string", "enum": list(ALLOWED_ROLES)},
                },
                "required": ["provider", "model", "role"],
            },
        },
        "tools": {
            "type": "object",
            "properties": {"python_sandbox": {"type": "boolean"}, "rag": {"type": "boolean"}},
        },
        "controls": {
            "type": "object",
            "properties": {"use_debate": {"type": "boolean"}, "max_rounds": {"type": "integer"}},
        },
    },
    "required": ["workflow", "workers", "tools", "controls"],
}


class Dropped(BaseModel):
    """A part of a router's reply that was not used as given, and why."""

    field: str
    value: Any = None
    reason: str


class _ReplyWorker(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    provider: str
    model: str
    role: str = "solver"


class _ReplyTools(BaseModel):
    model_config = ConfigDict(extra="forbid")

    python_sandbox: bool | None = None
    rag: bool | None = None


class Routed(BaseModel):
    """A decision with the evidence of how it was reached (what goes into the ``routes`` row)."""

    decision: RouteDecision
    dropped: list[Dropped] = []
    used_defaults: bool = False
    raw_reply: str | None = None
    parsed_as: str = "none"
    router_model: str | None = None


# ---------------------------------------------------------------- validation


def worker_problem(worker: WorkerSpec, settings: Settings) -> str | None:
    """Why a worker cannot be used here (not allowed, unknown, no key, bad model file), or None."""
    try:
        preflight([worker], settings)
    except OrchestratorError as exc:
        return str(exc)
    return None


def usable_workers(workers: tuple[WorkerSpec, ...] | list[WorkerSpec], settings: Settings) -> list[WorkerSpec]:
    return [w for w in workers if worker_problem(w, settings) is None]


def default_solver(settings: Settings) -> WorkerSpec:
    return WorkerSpec(provider=settings.provider, model=settings.model, role="solver")


def default_workers(mode: str, workflow: str, settings: Settings) -> list[WorkerSpec]:
    """The mode's default workers for a workflow that are usable here; at least the default model."""
    if mode in DEFAULT_WORKERS:
        workers = usable_workers(DEFAULT_WORKERS[mode][workflow], settings)
        if any(w.role == "solver" for w in workers):
            return workers
    return [default_solver(settings)]


def clamp_rounds(value: int) -> int:
    return min(max(value, MIN_ROUNDS), MAX_ROUNDS)


def decide_from_reply(
    reply: str | None, task: Task, mode: str, settings: Settings, max_rounds: int
) -> tuple[RouteDecision, list[Dropped], bool, str]:
    """Validate an LLM router's reply into a decision: (decision, dropped, used_defaults, parsed_as).

    Raises UserInputError when the reply names a workflow that does not exist and the task folder
    gives no workflow of its own to fall back on.
    """
    dropped: list[Dropped] = []
    parsed = parse_json_object(reply or "")
    raw: dict[str, Any] = parsed.value or {}
    if parsed.value is None:
        dropped.append(Dropped(field="reply", value=(reply or "")[:500], reason=f"no JSON object found ({parsed.how})"))
    for key in sorted(set(raw) - {"workflow", "workers", "tools", "controls"}):
        dropped.append(Dropped(field=key, value=raw[key], reason="not part of a routing decision"))

    workflow = _workflow(raw.get("workflow"), task, dropped)
    workers, used_defaults = _reply_workers(raw.get("workers"), workflow, mode, settings, dropped)
    tools = _tools(raw.get("tools"), workflow, dropped)
    controls = _controls(raw.get("controls"), mode, max_rounds, dropped)
    decision = RouteDecision(workflow=workflow, workers=workers, tools=tools, controls=controls, router=mode)
    return decision, dropped, used_defaults, parsed.how


def _workflow(value: Any, task: Task, dropped: list[Dropped]) -> str:
    """The task's hint wins; without one, the router's choice if valid; a flow runs the workflow it is."""
    hint = task.spec.workflow
    if value is None:
        if hint is None:
            dropped.append(Dropped(field="workflow", reason=f"missing; the task runs as {task.workflow!r}"))
        return task.workflow
    if value not in ALLOWED_WORKFLOWS:
        if hint is None:
            raise UserInputError(
                f"task {task.id}: the router chose workflow {value!r}, which is not one of "
                f"{', '.join(ALLOWED_WORKFLOWS)}, and the task names none; set workflow = \"...\" in its task.toml"
            )
        dropped.append(Dropped(field="workflow", value=value, reason=f"unknown workflow; the task's hint {hint!r} is used"))
        return hint
    if value != task.workflow:
        why = f"the task's hint is {hint!r}" if hint else f"this task runs as {task.workflow!r} (set workflow in task.toml)"
        dropped.append(Dropped(field="workflow", value=value, reason=why))
    return task.workflow


def _reply_workers(
    value: Any, workflow: str, mode: str, settings: Settings, dropped: list[Dropped]
) -> tuple[list[WorkerSpec], bool]:
    kept: list[WorkerSpec] = []
    items = value if isinstance(value, list) else []
    if value is not None and not isinstance(value, list):
        dropped.append(Dropped(field="workers", value=value, reason="not a list of workers"))
    for index, item in enumerate(items):
        where = f"workers[{index}]"
        try:
            parsed = _ReplyWorker.model_validate(item)
        except ValidationError as exc:
            dropped.append(Dropped(field=where, value=item, reason=_first_error(exc)))
            continue
        if parsed.role not in ALLOWED_ROLES:
            dropped.append(Dropped(field=where, value=item, reason=f"role {parsed.role!r} is not one of {', '.join(ALLOWED_ROLES)}"))
            continue
        worker = WorkerSpec(provider=parsed.provider, model=parsed.model, role=parsed.role)  # type: ignore[arg-type]
        problem = worker_problem(worker, settings)
        if problem:
            dropped.append(Dropped(field=where, value=item, reason=problem))
        elif worker in kept:
            dropped.append(Dropped(field=where, value=item, reason="duplicate"))
        else:
            kept.append(worker)
    if any(w.role == "solver" for w in kept):
        return kept, False
    defaults = default_workers(mode, workflow, settings)
    if not kept:
        dropped.append(Dropped(field="workers", reason=f"no usable worker; the {mode} defaults for {workflow} are used"))
        return defaults, True
    # The router's critics and verifiers stay; only the missing solvers come from the defaults.
    dropped.append(Dropped(field="workers", reason=f"no usable solver; the {mode} default solvers are added"))
    return [*[w for w in defaults if w.role == "solver"], *kept], True


def _tools(value: Any, workflow: str, dropped: list[Dropped]) -> RouteTools:
    defaults = DEFAULT_TOOLS[workflow]
    if value is None:
        return defaults
    try:
        parsed = _ReplyTools.model_validate(value)
    except ValidationError as exc:
        dropped.append(Dropped(field="tools", value=value, reason=f"{_first_error(exc)}; defaults used"))
        return defaults
    return RouteTools(
        python_sandbox=defaults.python_sandbox if parsed.python_sandbox is None else parsed.python_sandbox,
        rag=defaults.rag if parsed.rag is None else parsed.rag,
    )


def _controls(value: Any, mode: str, max_rounds: int, dropped: list[Dropped]) -> RouteControls:
    defaults = DEFAULT_CONTROLS.get(mode, RouteControls()).model_copy(update={"max_rounds": clamp_rounds(max_rounds)})
    if value is None:
        return defaults
    if not isinstance(value, dict):
        dropped.append(Dropped(field="controls", value=value, reason="not an object; defaults used"))
        return defaults
    use_debate, rounds = defaults.use_debate, defaults.max_rounds
    for key in sorted(set(value) - {"use_debate", "max_rounds"}):
        dropped.append(Dropped(field=f"controls.{key}", value=value[key], reason="unknown control"))
    debate = value.get("use_debate")
    if isinstance(debate, bool):
        use_debate = debate
    elif debate is not None:
        dropped.append(Dropped(field="controls.use_debate", value=debate, reason=f"not a boolean; {use_debate} used"))
    asked = value.get("max_rounds")
    if asked is not None:
        number = _as_int(asked)
        if number is None:
            dropped.append(Dropped(field="controls.max_rounds", value=asked, reason=f"not a number; {rounds} used"))
        else:
            rounds = clamp_rounds(number)
            if rounds != number:
                dropped.append(
                    Dropped(field="controls.max_rounds", value=asked, reason=f"clamped to {rounds} ({MIN_ROUNDS}..{MAX_ROUNDS})")
                )
    return RouteControls(use_debate=use_debate, max_rounds=rounds)


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number == number and abs(number) < 1e9 else None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else err["msg"]


# ---------------------------------------------------------------- the routers


def explicit_decision(task: Task, workers: list[WorkerSpec], max_rounds: int) -> RouteDecision:
    """Workers the user named: used as given (a critic among them turns debate on)."""
    return RouteDecision(
        workflow=task.workflow,
        workers=workers,
        tools=DEFAULT_TOOLS[task.workflow],
        controls=RouteControls(use_debate=any(w.role == "critic" for w in workers), max_rounds=clamp_rounds(max_rounds)),
        router="explicit",
    )


def hint_decision(task: Task, settings: Settings, max_rounds: int) -> RouteDecision:
    return RouteDecision(
        workflow=task.workflow,
        workers=[default_solver(settings)],
        tools=DEFAULT_TOOLS[task.workflow],
        controls=RouteControls(max_rounds=clamp_rounds(max_rounds)),
        router="hint",
    )


def router_workers(settings: Settings) -> list[WorkerSpec]:
    """The LLM router's worker: ``ORCH_ROUTER_WORKER``, else the default provider and model."""
    base = parse_worker(settings.router_worker) if settings.router_worker else default_solver(settings)
    return [base.model_copy(update={"role": "router"})]


def router_messages(task: Task, mode: str, settings: Settings) -> list[Message]:
    menu = _menu(settings)
    system = (
        "You route tasks to language models. " + _MODE_BRIEF[mode] + " Reply with one JSON object and nothing else."
    )
    user = "\n".join(
        [
            f"Task {task.id}:",
            task.prompt.strip()[:TASK_TEXT_CHARS],
            "",
            f"The task folder names its workflow: {task.spec.workflow or 'no'}.",
            f"Workflows: {', '.join(ALLOWED_WORKFLOWS)}.",
            "Roles: solver (writes a candidate), critic (reviews a candidate; the solver revises), "
            "verifier (checks the final answer), retriever (fetches context for rag_qa).",
            "Available workers (provider:model): " + (", ".join(menu) or "none"),
            f"Tools: python_sandbox (run Python), rag (retrieve from documents). max_rounds is {MIN_ROUNDS} to {MAX_ROUNDS}.",
            'Answer format: {"workflow": "...", "workers": [{"provider": "...", "model": "...", "role": "solver"}], '
            '"tools": {"python_sandbox": false, "rag": false}, "controls": {"use_debate": false, "max_rounds": 2}}',
        ]
    )
    return [Message(role="system", content=system), Message(role="user", content=user)]


def _menu(settings: Settings) -> list[str]:
    """provider:model pairs the router may choose from: the defaults of both modes and allowed Ollama models."""
    seen: dict[str, WorkerSpec] = {}
    candidates = [w for by_workflow in DEFAULT_WORKERS.values() for ws in by_workflow.values() for w in ws]
    candidates += [WorkerSpec(provider="ollama", model=m) for m in settings.allowed_ollama_models]
    candidates.append(default_solver(settings))
    for worker in candidates:
        key = worker.model_label
        if key not in seen:
            seen[key] = worker.model_copy(update={"role": "solver"})
    return [key for key, worker in seen.items() if worker_problem(worker, settings) is None]


def learned_route(task: Task, settings: Settings, max_rounds: int) -> Routed:
    """Pick the solver with the learned router: no model call."""
    from domain.router_learned import load_router, router_path

    router = load_router(router_path(settings))
    choice = router.choose(task.prompt, usable=lambda w: worker_problem(w, settings))
    dropped = [Dropped(field="workers", value=label, reason=why) for label, why in choice.skipped.items()]
    decision = RouteDecision(
        workflow=task.workflow,
        workers=[choice.worker],
        tools=DEFAULT_TOOLS[task.workflow],
        controls=RouteControls(max_rounds=clamp_rounds(max_rounds)),
        router="learned",
    )
    return Routed(
        decision=decision,
        dropped=dropped,
        raw_reply=json.dumps({"predicted_quality": choice.predicted, "cost": choice.cost}),
        parsed_as="none",
        router_model=str(router_path(settings)),
    )


def check_router(mode: str, settings: Settings) -> None:
    """Before any work: the mode exists, and its model file, router worker or default model is usable."""
    if mode not in ROUTER_MODES:
        raise UserInputError(f"--router {mode!r}: choose one of {', '.join(ROUTER_MODES)}")
    if mode == "learned":
        from domain.router_learned import load_router, router_path

        load_router(router_path(settings))
    elif mode in LLM_MODES:
        preflight(router_workers(settings), settings)
    else:
        preflight([default_solver(settings)], settings)


def route_row(task: Task, run_id: str, routed: Routed) -> RouteRow:
    decision = routed.decision
    return RouteRow(
        run_id=run_id,
        task_id=task.id,
        task_text=task.prompt,
        hint=task.spec.workflow,
        router=decision.router,
        router_model=routed.router_model,
        raw_reply=routed.raw_reply,
        parsed_as=routed.parsed_as,
        dropped=json.dumps([d.model_dump(mode="json") for d in routed.dropped], default=str),
        used_defaults=routed.used_defaults,
        workflow=decision.workflow,
        workers=json.dumps([w.label for w in decision.workers]),
        decision=decision.model_dump_json(),
    )


def refuse_unpriced(workers: list[WorkerSpec], router: str, workflows: list[str], settings: Settings) -> None:
    """Refuse a dollar budget when a model a run may call (the explicit workers, else the router's
    model and its defaults for these workflows; and the judge) has no entry in the price table."""
    candidates = list(workers)
    if not candidates:
        candidates = router_workers(settings) if router in LLM_MODES else []
        for workflow in workflows:
            candidates += default_workers(router, workflow, settings)
    if settings.judge_worker:
        candidates.append(parse_worker(settings.judge_worker))
    unpriced = sorted({w.model_label for w in candidates if unit_prices(w.provider, w.model, settings) is None})
    if unpriced:
        raise UserInputError(
            f"--max-cost: {', '.join(unpriced)} has no price, so a dollar budget cannot be kept; "
            "add it to ORCH_PRICES_FILE, pass --ignore-unpriced, or budget in --max-tokens"
        )
