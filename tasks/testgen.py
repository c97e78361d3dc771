"""Tests for coding tasks that have none: a tester role writes them, and they are checked before use.

Before solving, a tester model writes pytest tests from the prompt and the starter file. A suite is
accepted only when it runs against the unimplemented starter in the sandbox without errors (it
imports, its fixtures work) and fails there: a test that already passes on the starter cannot tell
a solution from no solution, so it is dropped. A rejected suite goes back to the tester once with
the reason. Accepted tests are stored in the ``generated_tests`` table and as a file under
``<traces>/generated/<run_id>/tests/``; the run then uses them as its visible suite.

After the candidates are tested, :func:`review_generated_tests` applies AlphaCodium's rule: a test
that every candidate fails, with the same failure (the candidates agree on what the code does), is
more likely wrong than every candidate; it is flagged in ``suspect_tests`` rather than trusted.
``orchestrator tests promote RUN_ID TASK_DIR`` copies accepted tests, less suspect ones, into the task.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from domain.code_extract import extract_code
from orchestrator.errors import OrchestratorError
from orchestrator.records import (
    CandidateResult,
    GeneratedTestRow,
    Message,
    SuspectTestRow,
    TestCase,
    WorkerSpec,
)
from orchestrator.settings import get_settings
from orchestrator.taskspec import Task
from orchestrator.traces import TraceStore
from sandbox import SandboxBackend, get_backend
from tasks.coding import run_task_suites
from tasks.logs import run_logger
from tasks.model_call import AllWorkersFailed, CallContext, call_model

GENERATED_FILE = "test_generated.py"
MAX_ATTEMPTS = 2

TESTER_SYSTEM = (
    "You are a meticulous test engineer. You write pytest tests that pin down exactly the behaviour a task "
    "states, and nothing it does not state. Answer with exactly one ```python fenced block holding the whole "
    "test file, and nothing else."
)


class TestGenerationError(OrchestratorError):
    """The tester could not produce a usable suite; the run cannot be verified."""

    __test__ = False
    exit_code = 1




class TaskWithGeneratedTests(Task):
    """A task whose visible suite is the generated one (the task folder itself is not touched)."""

    generated_dir: Path

    @property
    def tests_dir(self) -> Path:
        return self.generated_dir


class TestReview(BaseModel):
    __test__ = False

    suspect: list[str] = Field(default_factory=list)
    #: candidate id -> whether it passes every generated test that is not suspect
    passes_trusted: dict[str, bool] = Field(default_factory=dict)


# ---------------------------------------------------------------- reading and editing a test file


def collected_tests(source: str) -> list[str]:
    """Names of the test functions pytest would collect at the top level and in Test* classes."""
    tree = ast.parse(source)
    names = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
            names.append(node.name)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            names += [n.name for n in node.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test")]
    return names


def complete_prefix(source: str) -> str | None:
    """The longest run of whole top-level statements that parses, for a reply cut off by the token limit.

    None when no such prefix holds a test function.
    """
    lines = source.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line[:1].strip() and not line.startswith((")", "]", "}"))]
    for cut in reversed(starts):
        prefix = "".join(lines[:cut])
        try:
            if collected_tests(prefix):
                return prefix
        except SyntaxError:
            continue
    return None


def remove_tests(source: str, names: set[str]) -> str:
    """``source`` without the named test functions (decorators included), keeping everything else as written.

    A test class left with no test is removed whole.
    """
    tree = ast.parse(source)
    spans = []

    def span(node: ast.stmt) -> tuple[int, int]:
        decorators = getattr(node, "decorator_list", [])
        return min([node.lineno, *(d.lineno for d in decorators)]), node.end_lineno or node.lineno

    def removed(node: ast.stmt) -> bool:
        return isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in names

    for node in tree.body:
        if removed(node):
            spans.append(span(node))
        elif isinstance(node, ast.ClassDef):
            methods = [n for n in node.body if removed(n)]
            rest = [n for n in node.body if not removed(n) and not isinstance(n, ast.Expr | ast.Pass)]
            spans += [span(node)] if methods and not rest else [span(m) for m in methods]
    lines = source.splitlines(keepends=True)
    keep = [line for number, line in enumerate(lines, start=1) if not any(a <= number <= b for a, b in spans)]
    return "".join(keep)


# ---------------------------------------------------------------- generation


def tester_workers(workers: list[WorkerSpec] | None) -> list[WorkerSpec]:
    """Testers among the workers; else the solvers (then anyone) acting as tester; else the default model."""
    workers = workers or []
    testers = [w for w in workers if w.role == "tester"]
    if testers:
        return testers
    others = [w for w in workers if w.role == "solver"] or workers
    if others:
        return [w.model_copy(update={"role": "tester"}) for w in others]
    settings = get_settings()
    return [WorkerSpec(provider=settings.provider, model=settings.model, role="tester")]


def module_name(entry: str) -> str:
    return entry.removesuffix(".py").replace("/", ".")


def tester_messages(spec: Task) -> list[Message]:
    module = module_name(spec.spec.entry)
    text = (
        f"{spec.prompt.strip()}\n\nThe solution will be the file `{spec.spec.entry}`; its starter:\n"
        f"```python\n{spec.entry_source()}```\n\n"
        f"Write a pytest file that tests it. Import what you test from `{module}` (for example "
        f"`from {module} import ...`). Write 4 to 8 small test functions with plain `assert`s covering the "
        "ordinary cases and every edge case the task states. Check only behaviour the task states; work out "
        "each expected value carefully. Reply with the whole file in one ```python block."
    )
    return [Message(role="system", content=TESTER_SYSTEM), Message(role="user", content=text)]


class Checked(BaseModel):
    accepted_code: str | None
    problem: str | None
    tests: int = 0
    stub_passed: int = 0
    stub_failed: int = 0
    stub_errors: int = 0
    dropped: list[str] = Field(default_factory=list)


def check_generated(code: str, spec: Task, backend: SandboxBackend) -> Checked:
    """Accept a generated suite when it runs on the starter without errors and fails there."""
    try:
        names = collected_tests(code)
    except SyntaxError as exc:
        salvaged = complete_prefix(code)
        if salvaged is None:
            return Checked(accepted_code=None, problem=f"the file is not valid Python ({exc.msg}, line {exc.lineno})")
        code, names = salvaged, collected_tests(salvaged)
    if not names:
        return Checked(accepted_code=None, problem="the file has no test functions (def test_...)")
    result, report = run_task_suites(backend, spec, spec.starter_files(), {"visible": {GENERATED_FILE: code}})["visible"]
    cases = report.cases
    if not report.report_found:
        tail = (result.stdout + result.stderr).strip()[-800:]
        return Checked(accepted_code=None, problem=f"pytest wrote no report; its output: {tail}")
    counts = {kind: sum(c.outcome == kind for c in cases) for kind in ("passed", "failed", "error")}
    checked = Checked(accepted_code=None, problem=None, tests=len(cases), stub_passed=counts["passed"],
                      stub_failed=counts["failed"], stub_errors=counts["error"])
    errors = [c for c in cases if c.outcome == "error"]
    if errors or not cases:
        detail = errors[0].message if errors else "no test was collected"
        checked.problem = f"the tests do not run against the starter file (import or setup error): {detail}"
        return checked
    by_function: dict[str, list[TestCase]] = {}
    for case in cases:
        by_function.setdefault(case.function, []).append(case)
    vacuous = {name for name, runs in by_function.items() if all(c.outcome == "passed" for c in runs)}
    if vacuous == set(by_function):
        checked.problem = "every test passes on the unimplemented starter, so none can tell a solution from none"
        return checked
    checked.dropped = sorted(vacuous)
    checked.accepted_code = remove_tests(code, vacuous) if vacuous else code
    return checked


def generated_dir(store: TraceStore, run_id: str) -> Path:
    """A local folder (the sandbox copies tests from disk): beside the traces, or in the cache for a remote store."""
    base = get_settings().cache_dir if store.remote else Path(store.root)
    return base / "generated" / run_id / "tests"


@task(name="generate-tests", cache_policy=NO_CACHE)
def generate_tests(
    spec: Task, workers: list[WorkerSpec] | None, run_id: str, traces_dir: str, sandbox: str
) -> Task:
    """The task as it is when it has tests; else the task with a checked, generated visible suite.

    Raises :class:`TestGenerationError` when no attempt gives a usable suite.
    """
    if spec.has_tests or spec.has_hidden_tests:
        return spec
    logger = run_logger()
    settings = get_settings()
    backend = get_backend(sandbox, settings)
    store = TraceStore(traces_dir)
    testers = tester_workers(workers)
    messages = tester_messages(spec)
    problems = []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            completion, used = call_model(
                testers, messages, CallContext(run_id=run_id, task_id=spec.id, purpose="write-tests"),
                settings=settings, store=store, max_tokens=settings.max_tokens, temperature=settings.temperature,
            )
        except AllWorkersFailed as exc:
            raise TestGenerationError(f"{spec.id}: no tester could write tests ({exc}); add tests/ to the task") from None
        code = extract_code(completion.text)
        checked = check_generated(code, spec, backend)
        row = GeneratedTestRow(
            run_id=run_id, task_id=spec.id, attempt=attempt, tester=used.label, file=GENERATED_FILE, code=code,
            accepted_code=checked.accepted_code, tests=checked.tests, stub_passed=checked.stub_passed,
            stub_failed=checked.stub_failed, stub_errors=checked.stub_errors, dropped=json.dumps(checked.dropped),
            accepted=checked.accepted_code is not None, problem=checked.problem,
        )
        if checked.accepted_code is not None:
            folder = generated_dir(store, run_id)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / GENERATED_FILE).write_text(checked.accepted_code, encoding="utf-8")
            row.folder = str(folder)
            store.write("generated_tests", [row])
            logger.info("generated tests accepted on attempt %d (%d dropped as vacuous)", attempt, len(checked.dropped))
            return TaskWithGeneratedTests(folder=spec.folder, spec=spec.spec, prompt=spec.prompt, generated_dir=folder)
        store.write("generated_tests", [row])
        logger.warning("generated tests rejected (attempt %d): %s", attempt, checked.problem)
        problems.append(f"attempt {attempt}: {checked.problem}")
        messages = [
            *messages,
            Message(role="assistant", content=completion.text),
            Message(role="user", content=f"These tests cannot be used: {checked.problem}. Fix them and reply "
                                         "with the whole corrected file in one ```python block."),
        ]
    raise TestGenerationError(
        f"{spec.id}: the generated tests were not usable ({'; '.join(problems)}); add tests/ to the task"
    )


@task(name="review-generated-tests", cache_policy=NO_CACHE)
def review_generated_tests(
    spec: Task, candidates: list[CandidateResult], run_id: str, traces_dir: str
) -> TestReview:
    """Flag generated tests that every candidate fails the same way (AlphaCodium), and re-judge without them.

    Reads each candidate's per-test outcomes from its verdict's run (``test_cases``): nothing runs again.
    Needs two or more candidates with code: one candidate's failure says nothing about agreement.
    """
    with_code = [c for c in candidates if c.output.strip()]
    if not isinstance(spec, TaskWithGeneratedTests) or len(with_code) < 2:
        return TestReview()
    runs: dict[str, list[TestCase]] = {cand.candidate_id: cand.test_cases for cand in with_code}
    names = sorted({c.name for cases in runs.values() for c in cases})
    suspect = []
    for name in names:
        outcomes = [next((c for c in cases if c.name == name), None) for cases in runs.values()]
        failures = [c for c in outcomes if c is not None and c.outcome == "failed"]
        if len(failures) == len(runs) and len({c.message for c in failures}) == 1:
            suspect.append(name)
    if suspect:
        TraceStore(traces_dir).write(
            "suspect_tests",
            [
                SuspectTestRow(run_id=run_id, task_id=spec.id, file=GENERATED_FILE, test=name,
                               candidates=len(runs), failure=next(c.message for c in runs[with_code[0].candidate_id]
                                                                  if c.name == name))
                for name in suspect
            ],
        )
    passes = {
        cid: bool(cases) and all(c.outcome in ("passed", "skipped") or c.name in suspect for c in cases)
        for cid, cases in runs.items()
    }
    return TestReview(suspect=suspect, passes_trusted=passes)
