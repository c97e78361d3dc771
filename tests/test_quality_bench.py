"""The quality benchmark's logic (domain/quality/): what a fix prompt is shown, what the extraction adds
back, the choice among candidates, the strategies over a cache of replies (real sandbox verdicts,
no model), the table, and the routers' measures against hand-computed values."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from domain.critique import critique_messages
from domain.prompts import solve_messages
from domain.quality import gsm8k, harness, humaneval
from domain.quality.gsm8k import PAL_REPAIR, PAL_SYSTEM, GSM8KRun, parse_strategy
from domain.quality.harness import Bench, Cache, Config
from domain.quality.router_eval import cascade_line, learned_cascade_line, router_report, router_reports
from domain.quality.run import benchmark_tasks
from domain.quality.summary import summaries
from domain.question_prompts import question_messages, revise_instruction
from orchestrator.errors import UserInputError
from orchestrator.records import Message
from sandbox import get_backend
from sandbox.pytest_runner import run_pytest

STARTER = (
    "from typing import List\n\n\ndef is_palindrome(s: str) -> bool:\n    return s == s[::-1]\n\n\n"
    "def longest(xs: List[str]) -> str:\n    \"\"\"The longest palindrome.\n    >>> longest(['ab', 'aba'])\n"
    '    \'aba\'\n    """\n'
)


def test_merge_starter_adds_back_dropped_imports_and_helpers_but_not_stubs():
    reply = (
        "def longest(xs: List[str]) -> str:\n    return max((x for x in xs if is_palindrome(x)), key=len)\n"
    )
    merged = humaneval.merge_starter(reply, STARTER)
    namespace: dict[str, object] = {}
    exec(merged, namespace)  # would be a NameError (List, is_palindrome) without the merge
    assert namespace["longest"](["ab", "aba"]) == "aba"  # type: ignore[operator]
    assert merged.count("def longest") == 1  # the starter's stub of the entry is not copied
    whole = STARTER.replace('    """\n', '    """\n    return xs[0]\n')
    assert humaneval.merge_starter(whole, STARTER) == whole  # nothing missing, nothing added
    assert humaneval.merge_starter("def longest(:\n", STARTER) == "def longest(:\n"  # unparsable: untouched


def test_fix_feedback_is_the_first_failing_example_without_the_namespace_dump(tmp_path):
    tests = {
        "test_examples.py": (
            "import pytest\nimport solution\n\n"
            "@pytest.mark.parametrize(('call', 'expected'), [('f(1)', '2'), ('f(2)', '3')])\n"
            "def test_docstring_example(call, expected):\n"
            "    namespace = dict(vars(solution))\n"
            "    assert eval(call, namespace) == eval(expected, namespace), f'{call} should be {expected}'\n"
        )
    }
    from orchestrator.records import Limits
    from orchestrator.settings import get_settings

    result, report = run_pytest(
        get_backend("local", get_settings()), {"solution.py": "def f(x):\n    return x\n"}, tests, Limits()
    )
    assert report.failed == 2
    feedback = harness.first_failure(result.stdout + result.stderr)
    lines = feedback.splitlines()
    assert lines[0] == "test_docstring_example[f(1)-2]"
    assert "AssertionError: f(1) should be 2" in lines and "assert 1 == 2" in lines
    assert "f(2)" not in feedback and "__builtins__" not in feedback  # one example, no eval dump


def test_fix_feedback_finds_the_header_of_a_long_test_id():
    output = (
        "F\n=== FAILURES ===\n_ test_docstring_example[f([1.0, 2.0, 3.0, 4.0, 5.0, 2.2, 9.0, 8.0, 7.0])-(2.0, 2.2)] _\n"
        "solution.py:3: in f\n    return x_mean\nE   NameError: name 'x_mean' is not defined\n=== 1 failed ===\n"
    )
    assert harness.first_failure(output).splitlines()[1:] == ["NameError: name 'x_mean' is not defined"]


def test_the_chosen_candidate_is_the_first_visible_pass_else_the_best_partial():
    def candidate(passed: int, cases: int = 2) -> object:
        verdict = {"passed": passed == cases, "cases_passed": passed, "cases": cases}
        return humaneval.Candidate(code=f"# {passed}", visible=verdict, model="m", reply="")

    tried = [candidate(1), candidate(2), candidate(2)]
    assert humaneval.choose(tried) is tried[1]
    partial = [candidate(0), candidate(1), candidate(1)]
    assert humaneval.choose(partial) is partial[1]  # ties go to the earliest
    no_tests = [humaneval.Candidate(code="x", visible=None, model="m", reply="")]
    assert humaneval.choose(no_tests) is no_tests[0]


# ---------------------------------------------------------------- strategies over a cache of replies

WRONG = "```python\nfrom typing import List\n\n\ndef has_close_elements(numbers: List[float], threshold: float) -> bool:\n    return False\n```"
RIGHT = (
    "```python\nfrom typing import List\n\n\ndef has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
    "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1 :])\n```"
)


def put_reply(cache: Cache, model: str, messages: list[Message], text: str, **params: object) -> None:
    """A model reply as Bench.call keys it (max_tokens 512, greedy unless told)."""
    sampling = {"max_tokens": 512, "temperature": 0.0, "seed": 0, "stop": None, **params}
    key = Cache.key(kind="call", model=model, messages=[m.model_dump() for m in messages], **sampling)
    cache.put(key, {"kind": "call", "model": model, "text": text, "prompt_tokens": 100, "completion_tokens": 10, "latency_s": 1.0})


@pytest.fixture(scope="module")
def he_task(tmp_path_factory: pytest.TempPathFactory):
    return benchmark_tasks("humaneval", tmp_path_factory.mktemp("he"), 1)[0]  # HumanEval/0


def offline_bench(cache: Cache) -> Bench:
    bench = Bench(cache, max_tokens=512, timeout_s=20.0)
    bench.offline = True  # a call the test did not put in the cache fails it
    return bench


def test_filter_resamples_until_a_visible_pass_and_the_cascade_escalates_on_a_visible_failure(tmp_path, he_task):
    cache = Cache(tmp_path / "cache.jsonl")
    messages = solve_messages(he_task)
    stop = humaneval.CODE_STOP
    put_reply(cache, harness.STRONG, messages, WRONG, stop=stop)
    put_reply(cache, harness.STRONG, messages, WRONG, stop=stop, temperature=0.8, seed=1)
    put_reply(cache, harness.STRONG, messages, RIGHT, stop=stop, temperature=0.8, seed=2)
    put_reply(cache, harness.WEAK, messages, WRONG, stop=stop)
    run = humaneval.HumanEvalRun(offline_bench(cache), Config())
    one, filter2, filter3, cascade = (run.run(name, he_task) for name in ("one", "filter2", "filter3", "cascade"))
    assert (one["passed"], one["candidates"]) == (False, 1)
    assert (filter2["passed"], filter2["candidates"]) == (False, 2)  # the budget ends before the right sample
    assert (filter3["passed"], filter3["candidates"], filter3["chosen"]) == (True, 3, 2)
    assert filter3["tokens"] == 3 * 110 and filter3["calls"] == 3  # cached calls count for the strategy
    assert (cascade["passed"], cascade["candidates"], cascade["chosen_model"]) == (True, 4, harness.STRONG)
    assert cascade["tokens_by_model"] == {harness.WEAK: 110, harness.STRONG: 330}


def test_strategy_names_and_labels():
    config = Config()
    assert humaneval.label("filter3", config) == "filter(n=3,T=0.8)"
    assert humaneval.label("filter", config) == "filter(n=5,T=0.8)"  # the bare name takes --samples
    assert humaneval.label("fix4", config) == "fix(rounds=4,T=0.5)"
    assert parse_strategy("sc5", config) == ("sc", 5) and parse_strategy("critic", config) == ("critic", 3)
    assert parse_strategy("pal-fix", config) == ("pal-fix", 3) and parse_strategy("pal-sc4", config) == ("pal-sc", 4)
    assert gsm8k.label("mix3", config) == "mix(n=3,T=0.8)"
    for bad in ("filtre3", "one2", "fix0"):
        with pytest.raises(UserInputError):
            humaneval.parse_strategy(bad, config)
    with pytest.raises(UserInputError, match="unknown gsm8k strategy"):
        parse_strategy("vote", config)


@pytest.fixture(scope="module")
def gsm_task(tmp_path_factory: pytest.TempPathFactory):
    return benchmark_tasks("gsm8k", tmp_path_factory.mktemp("gsm"), 1)[0]  # Janet's ducks: 18


def test_critic_rounds_revise_until_the_critic_approves(tmp_path, gsm_task):
    cache = Cache(tmp_path / "cache.jsonl")
    model = harness.STRONG
    first, revised = "16 - 3 - 4 = 9 eggs.\nANSWER: 9", "9 eggs at $2 each.\nANSWER: 18"
    review = "The answer forgets the price of $2 per egg.\nVERDICT: REVISE"
    history = question_messages(gsm_task)
    put_reply(cache, model, history, first)
    put_reply(cache, model, critique_messages(gsm_task.prompt, first), review)
    revision = [
        *history,
        Message(role="assistant", content=first),
        Message(role="user", content=f"A reviewer critiqued your answer:\n\n{review}\n\n{revise_instruction(gsm_task)}"),
    ]
    put_reply(cache, model, revision, revised)
    put_reply(cache, model, critique_messages(gsm_task.prompt, revised), "Correct.\nVERDICT: APPROVE")
    run = GSM8KRun(offline_bench(cache), Config())
    assert run.run("one", gsm_task)["passed"] is False
    row = run.run("critic2", gsm_task)
    assert (row["passed"], row["answer"], row["revisions"], row["calls"]) == (True, "18", 1, 4)
    # one round only: the revision is made, and not reviewed again
    assert run.run("critic1", gsm_task)["calls"] == 3


def test_self_consistency_is_the_majority_of_the_samples(tmp_path, gsm_task):
    cache = Cache(tmp_path / "cache.jsonl")
    history = question_messages(gsm_task)
    for seed, answer in ((1, "18"), (2, "7"), (3, "18.0")):
        put_reply(cache, harness.STRONG, history, f"ANSWER: {answer}", temperature=0.8, seed=seed)
    row = GSM8KRun(offline_bench(cache), Config()).run("sc3", gsm_task)
    assert (row["passed"], row["votes"], row["candidates"]) == (True, 2, 3)


def test_pal_fix_shows_a_crashing_program_its_traceback_and_takes_the_repaired_answer(tmp_path, gsm_task):
    cache = Cache(tmp_path / "cache.jsonl")
    stop = humaneval.CODE_STOP
    crashing = "```python\neggs = 16 - 3 - 4\nprint(Eggs * 2)\n```"
    repaired = "```python\neggs = 16 - 3 - 4\nprint(eggs * 2)\n```"
    asked = [Message(role="system", content=PAL_SYSTEM), Message(role="user", content=gsm_task.prompt.strip())]
    put_reply(cache, harness.STRONG, asked, crashing, stop=stop)
    bench = offline_bench(cache)
    crash = bench.run_program(harness.Spend(), "eggs = 16 - 3 - 4\nprint(Eggs * 2)\n")  # in the real sandbox
    assert crash.exit_code != 0 and "NameError: name 'Eggs' is not defined" in crash.error()
    repair = [
        *asked,
        Message(role="assistant", content=crashing),
        Message(role="user", content=PAL_REPAIR.format(error=crash.error())),
    ]
    put_reply(cache, harness.STRONG, repair, repaired, stop=stop, temperature=0.5, seed=1)
    run = GSM8KRun(bench, Config())
    assert run.run("pal", gsm_task)["passed"] is False  # the crash gives no answer
    row = run.run("pal-fix2", gsm_task)  # stops repairing once a number is printed
    assert (row["passed"], row["answer"], row["repairs"], row["calls"]) == (True, "18", 1, 2)


def test_mix_asks_the_prose_answer_only_when_the_programs_disagree_and_votes_across_both(tmp_path, gsm_task):
    cache = Cache(tmp_path / "cache.jsonl")
    stop = humaneval.CODE_STOP
    asked = [Message(role="system", content=PAL_SYSTEM), Message(role="user", content=gsm_task.prompt.strip())]
    put_reply(cache, harness.STRONG, asked, "```python\nprint(16 - 3 - 4)\n```", stop=stop)  # 9: the price forgotten
    put_reply(cache, harness.STRONG, asked, "```python\nprint((16 - 3 - 4) * 2)\n```", stop=stop, temperature=0.8, seed=1)
    put_reply(cache, harness.STRONG, question_messages(gsm_task), "9 eggs at $2.\nANSWER: 18")
    run = GSM8KRun(offline_bench(cache), Config())
    assert run.run("pal", gsm_task)["passed"] is False
    row = run.run("mix3", gsm_task)  # 9 (greedy program), 18 (sample), 18 (prose): the programs disagreed
    assert (row["passed"], row["answer"], row["votes"], row["candidates"], row["calls"]) == (True, "18", 2, 3, 3)
    mix2 = run.run("mix2", gsm_task)  # 9 against 18: the tie goes to the greedy program
    assert (mix2["passed"], mix2["answer"], mix2["candidates"]) == (False, "9", 2)
    # the sample agrees with the greedy program: two votes of three settle it, and no prose answer is asked
    agree = Cache(tmp_path / "agree.jsonl")
    for params in ({}, {"temperature": 0.8, "seed": 1}):
        put_reply(agree, harness.STRONG, asked, "```python\nprint((16 - 3 - 4) * 2)\n```", stop=stop, **params)
    settled = GSM8KRun(offline_bench(agree), Config()).run("mix3", gsm_task)
    assert (settled["passed"], settled["candidates"], settled["calls"]) == (True, 2, 2)
    with pytest.raises(UserInputError, match="2 or more"):
        parse_strategy("mix1", Config())


def test_the_cache_reads_other_files_and_folders_and_writes_only_its_own(tmp_path):
    (tmp_path / "runs").mkdir()
    Cache(tmp_path / "runs" / "a.jsonl").put("k1", {"text": "a"})
    Cache(tmp_path / "b.jsonl").put("k2", {"text": "b"})
    with (tmp_path / "b.jsonl").open("a") as fh:
        fh.write('{"key": "k3", "te')  # a line another process is still writing
    cache = Cache(tmp_path / "mine.jsonl", also=[tmp_path / "runs", tmp_path / "b.jsonl"])
    assert cache.get("k1") == {"key": "k1", "text": "a"} and cache.get("k2") is not None and cache.get("k3") is None
    cache.put("k4", {"text": "new"})
    assert [json.loads(line)["key"] for line in (tmp_path / "mine.jsonl").read_text().splitlines()] == ["k4"]
    assert "k4" not in (tmp_path / "b.jsonl").read_text()


# ---------------------------------------------------------------- the table and the routers


def row(strategy: str, task: int, passed: bool, tokens: int, **extra: object) -> dict[str, object]:
    return {
        "strategy": strategy, "task_id": f"HumanEval/{task}", "passed": passed, "tokens": tokens, "calls": 1,
        "model_s": tokens / 100, "test_s": 0.5, **extra,
    }  # fmt: skip


def test_the_table_pairs_each_strategy_with_the_one_call_on_the_problems_both_finished():
    rows = [
        row("one", 0, True, 100), row("one", 1, False, 100), row("one", 2, False, 100),
        row("filter(n=3,T=0.8)", 0, True, 100), row("filter(n=3,T=0.8)", 1, True, 300),
        row("one", 1, False, 120),  # a rerun's row wins
    ]  # fmt: skip
    one, filt = summaries(rows)
    assert (one["problems"], one["passed"], one["tokens"], one["tokens_ratio"]) == (3, 1, 320, 1.0)
    # HumanEval/2: filter did not finish it, so it is compared with the one call on HumanEval/0 and /1
    assert (filt["problems"], filt["passed"], filt["tokens"], filt["baseline_pass_at_1"]) == (2, 2, 400, 0.5)
    assert filt["points_over_baseline"] == 50.0 and filt["tokens_ratio"] == round(400 / 220, 2)
    assert filt["wall_s"] == 1.0 + 3.0 + 1.0 and filt["cost_usd"] == 0.0


def test_the_cascade_read_as_a_router_against_hand_computed_pgr_cpt_and_apgr():
    # weak passes t2 only; strong t0, t1, t2. The weak answers of t0, t1 fail their visible tests
    # (escalated), t2 and t3 pass them (t3 wrongly: its hidden tests fail for both models).
    weak = {
        f"t{i}": {"passed": p, "visible_tests": True, "visible_passed": v}
        for i, (p, v) in enumerate([(False, False), (False, False), (True, True), (False, True)])
    }
    tasks = ["t0", "t1", "t2", "t3"]
    line = cascade_line(weak, tasks, [0.0, 0.0, 1.0, 0.0], [1.0, 1.0, 1.0, 0.0])
    # curve: (0, 25 %) -> (50 %, 75 %): the two escalated tasks recover the whole gap -> (100 %, 75 %)
    assert line.curve == [(0.0, 0.25), (0.5, 0.75), (1.0, 0.75)]
    assert line.apgr == 0.75  # 0.5 * (0 + 1) / 2 + 0.5 * (1 + 1) / 2
    assert line.cpt50 == pytest.approx(0.25)  # PGR 0.5 halfway to the first step
    assert (line.strong_share, line.pass_rate) == (0.5, 0.75)


def test_router_report_has_the_baselines_and_a_held_out_learned_router():
    strategies: dict[str, dict[str, dict[str, object]]] = {"weak-one": {}, "one": {}}
    texts = {}
    for i in range(20):  # the strong model solves the "sort" problems, the weak one nothing
        sort = i % 2 == 0
        texts[f"HumanEval/{i}"] = ("sort the list of numbers" if sort else "count the vowels in a word") + f" case {i}"
        strategies["weak-one"][f"HumanEval/{i}"] = {"passed": False, "model_s": 1.0, "visible_tests": True, "visible_passed": False}
        strategies["one"][f"HumanEval/{i}"] = {"passed": sort, "model_s": 5.0}
    report = router_report(strategies, texts, neighbours=3, margin=0.1, folds=5)
    assert report is not None and (report.problems, report.weak_pass, report.strong_pass) == (20, 0.0, 0.5)
    lines = {line.router.split(" ")[0]: line for line in report.lines}
    assert lines["random"].apgr == 0.5 and lines["always-strong"].pass_rate == 0.5
    # the words tell the two kinds apart, so held-out problems are ranked sort-first: near-perfect
    assert lines["learned"].apgr is not None and lines["learned"].apgr > 0.7
    assert lines["learned"].cpt50 is not None and lines["learned"].cpt50 <= 0.3
    assert lines["cascade"].strong_share == 1.0  # the weak model passed no visible tests: always escalates


def test_the_learned_escalation_ranks_held_out_problems_by_request_size_and_weak_attempt():
    # the strong model wins the short requests; the weak attempts all fail their visible tests, and
    # its long (rambling) attempts come with the long requests
    tasks = [f"t{i}" for i in range(30)]
    short = [i % 3 != 0 for i in range(30)]
    texts = {t: ("def f(x):\n    return x\n" if s else "def f(x):\n" + "    # a long story about x\n" * (5 + i % 4)) for i, (t, s) in enumerate(zip(tasks, short, strict=True))}
    weak = {t: {"visible_tests": True, "visible_passed": False, "completion_tokens": 60 if s else 500} for t, s in zip(tasks, short, strict=True)}
    q_weak, q_strong = [0.0] * 30, [float(s) for s in short]
    line = learned_cascade_line(weak, texts, tasks, q_weak, q_strong, folds=5, repeats=3)
    assert line is not None and line.router.startswith("cascade, learned escalation (k-fold 5 x 3")
    # every strong win is ranked before every loss on held-out folds: PGR 1 at 2/3 of the calls
    assert line.cpt50 == pytest.approx(1 / 3, abs=0.02) and line.apgr == pytest.approx(1 - (2 / 3) / 2, abs=0.01)
    # the ranking inverted (the strong side wins the long requests) is learned as well
    flipped = learned_cascade_line(weak, texts, tasks, q_weak, [1.0 - q for q in q_strong], folds=5, repeats=3)
    assert flipped is not None and flipped.apgr is not None and flipped.apgr > 0.8
    # too few problems for the folds, or a training fold with no strong win: no line
    assert learned_cascade_line(weak, texts, tasks[:6], q_weak[:6], q_strong[:6], folds=5) is None
    assert learned_cascade_line(weak, texts, tasks, q_weak, q_weak, folds=5) is None


def test_a_router_report_per_pair_one_call_to_filter_read_from_the_labels_of_the_run():
    strategies: dict[str, dict[str, dict[str, object]]] = {"weak-one": {}, "one": {}, "filter(n=5,T=0.7)": {}}
    for i in range(4):  # one passes t0 and t1 (its visible tests say so); filter also t2, which one's visible tests failed
        task = f"HumanEval/{i}"
        strategies["weak-one"][task] = {"passed": False, "model_s": 1.0, "visible_tests": True, "visible_passed": False}
        strategies["one"][task] = {"passed": i < 2, "model_s": 5.0, "visible_tests": True, "visible_passed": i < 2}
        strategies["filter(n=5,T=0.7)"][task] = {"passed": i < 3, "model_s": 9.0}
    texts = {f"HumanEval/{i}": f"problem {i}" for i in range(4)}
    models, sides = router_reports(strategies, texts, neighbours=3, margin=0.1, folds=2)
    assert (models.weak_strategy, models.strong_strategy) == ("weak-one", "one")
    assert (sides.weak_strategy, sides.strong_strategy, sides.problems) == ("one", "filter(n=5,T=0.7)", 4)
    cascade = next(line for line in sides.lines if line.router.startswith("cascade"))
    # escalates t2 and t3 (visible failed): half the problems to filter, the whole gap (t2) recovered
    assert (cascade.strong_share, cascade.pass_rate) == (0.5, 0.75)
    assert router_reports({"one": strategies["one"]}, texts, neighbours=3, margin=0.1) == []  # no pair complete


def test_passes_started_side_by_side_import_the_tasks_once_and_both_read_them(tmp_path):
    folder = tmp_path / "humaneval"
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda _: benchmark_tasks("humaneval", folder, 40), range(2)))
    assert [[t.id for t in tasks] for tasks in results] == [[f"HumanEval/{i}" for i in range(40)]] * 2
    assert len(list(folder.glob("*/task.toml"))) == 40
