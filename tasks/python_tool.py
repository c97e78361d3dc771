"""The ``python_sandbox`` tool of the science workflow: a solver's Python runs in the task sandbox.

A reply that holds a ```python block and no ``ANSWER:`` line asks for its code to be run. It runs
in a fresh session of the same sandbox backend as coding tasks (no network, the task's limits),
and the output goes back to the solver before it answers. Every run is a ``tool_runs`` row.
"""

from __future__ import annotations

import re

from prefect import task
from prefect.cache_policies import NO_CACHE

from domain.answers import parse_answer
from orchestrator.records import Limits, ToolRunRow
from orchestrator.settings import get_settings
from orchestrator.traces import TraceStore
from sandbox import get_backend

TOOL_FILE = "tool.py"
#: what of the output goes back to the model (the head and the tail: errors are usually at the end)
FEEDBACK_CHARS = 3000
_PYTHON_BLOCK = re.compile(r"```[ \t]*(?:python3?|py)[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)




def code_to_run(reply: str) -> str | None:
    """The code a reply asks to run: its last python block, unless the reply already answers."""
    if parse_answer(reply).form == "answer_line":
        return None
    blocks = [b for b in _PYTHON_BLOCK.findall(reply) if b.strip()]
    return blocks[-1] if blocks else None


def clip(text: str, limit: int = FEEDBACK_CHARS) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n... [{len(text) - limit} characters cut] ...\n{text[-half:]}"


@task(name="run-python", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def run_python(
    code: str, sandbox: str, limits: Limits, run_id: str, candidate_id: str, worker: str, step: int,
    traces_dir: str,
) -> ToolRunRow:
    """Run ``code`` as a script in a fresh sandbox session; stdout then stderr come back as ``output``.

    Retried once by Prefect: a failure here is the sandbox failing to start, not the code failing.
    """
    backend = get_backend(sandbox, get_settings())
    with backend.open(limits) as session:
        session.write_files({TOOL_FILE: code})
        result = session.run(["python3", TOOL_FILE], limits)
    output = result.stdout + (("\n" if result.stdout else "") + result.stderr if result.stderr.strip() else "")
    row = ToolRunRow(
        run_id=run_id, candidate_id=candidate_id, worker=worker, step=step, code=code,
        sandbox=result.backend or backend.name, exit_code=result.exit_code, timed_out=result.timed_out,
        killed=result.killed, duration_s=result.duration_s, output=clip(output.strip(), 16_000),
    )
    TraceStore(traces_dir).write("tool_runs", [row])
    return row
