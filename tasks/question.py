"""One solver turn (the caller parses the reply): the question workflows' task, and write-code's call."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from orchestrator.records import Message, WorkerSpec
from orchestrator.settings import get_settings
from orchestrator.taskspec import Task
from orchestrator.traces import TraceStore
from tasks.model_call import CallContext, call_model


class Reply(BaseModel):
    text: str
    worker: WorkerSpec
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None


@task(name="ask-solver", cache_policy=NO_CACHE)
def ask_solver(
    spec: Task,
    workers: list[WorkerSpec],
    messages: list[Message],
    run_id: str,
    candidate_id: str,
    purpose: str,
    traces_dir: str,
    temperature: float,
    seed: int | None = None,
) -> Reply:
    """One solver turn (falling back along ``workers``); the reply is parsed by the flow."""
    settings = get_settings()
    params = {"seed": seed} if seed is not None else {}
    completion, used = call_model(
        workers,
        messages,
        CallContext(run_id=run_id, task_id=spec.id, purpose=purpose, candidate_id=candidate_id),
        settings=settings,
        store=TraceStore(traces_dir),
        max_tokens=settings.max_tokens,
        temperature=temperature,
        **params,
    )
    return Reply(
        text=completion.text, worker=used, prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens, cost_usd=completion.cost_usd,
    )
