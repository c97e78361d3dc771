from pathlib import Path

import pytest

from orchestrator.errors import TaskFormatError
from orchestrator.taskspec import discover_tasks, load_task

from .conftest import RUNS


def make_task(root: Path, toml: str | None, files: dict[str, str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if toml is not None:
        (root / "task.toml").write_text(toml)
    for name, text in (files or {}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


GOOD_FILES = {"solution.py": "def f():\n    pass\n", "tests/test_f.py": "def test_x():\n    assert True\n"}


@pytest.mark.parametrize("name", ["task_001", "task_002", "task_003"])
def test_shipped_examples_load(name):
    task = load_task(RUNS / name)
    assert task.workflow == "coding"
    assert task.has_tests
    assert task.spec.entry in task.starter_files()


def test_prompt_md_is_read(tmp_path):
    folder = make_task(tmp_path / "t", 'id = "t"\n', {**GOOD_FILES, "prompt.md": "Do the thing."})
    assert load_task(folder).prompt == "Do the thing."


def test_hidden_tests_are_not_starter_files():
    task = load_task(RUNS / "task_003")
    assert task.has_hidden_tests
    assert not any(path.startswith(("tests/", "hidden_tests/")) for path in task.starter_files())
    assert "test_roman_hidden.py" in task.hidden_tests()


@pytest.mark.parametrize(
    ("toml", "files", "problem"),
    [
        (None, GOOD_FILES, "no task.toml"),
        ('id = "t"\nprompt = "x\n', GOOD_FILES, "not valid TOML"),
        ('id = "t"\nprompt = "x"\ncolour = "red"\n', GOOD_FILES, "unknown key 'colour'"),
        ('prompt = "x"\n', GOOD_FILES, "missing key 'id'"),
        ('id = "t"\nprompt = "x"\n[limits]\ntimeout_s = -1\n', GOOD_FILES, "limits.timeout_s"),
        ('id = "t"\nprompt = "x"\nentry = "missing.py"\n', GOOD_FILES, "entry file 'missing.py' is missing"),
        ('id = "t"\nprompt = "x"\nentry = "../evil.py"\n', GOOD_FILES, "relative .py path"),
        ('id = "t"\nprompt = "x"\n', {"solution.py": "x = 1\n"}, "no tests"),
        ('id = "t"\n', GOOD_FILES, "no prompt"),
        ('id = "t"\nprompt = "x"\nworkflow = "poetry"\n', GOOD_FILES, "workflow"),
        ('id = "t"\nprompt = "x"\nverdict = "trust me"\n', GOOD_FILES, "verdict"),
    ],
)
def test_malformed_folders_are_refused_with_one_line(tmp_path, toml, files, problem):
    folder = make_task(tmp_path / "bad", toml, files)
    with pytest.raises(TaskFormatError) as info:
        load_task(folder)
    message = str(info.value)
    assert problem in message
    assert str(folder) in message
    assert "\n" not in message


def test_the_verdict_mode_is_isolated_unless_a_task_chooses_in_process(tmp_path):
    assert load_task(make_task(tmp_path / "a", 'id = "a"\nprompt = "x"\n', GOOD_FILES)).spec.verdict == "isolated"
    chosen = make_task(tmp_path / "b", 'id = "b"\nprompt = "x"\nverdict = "in_process"\n', GOOD_FILES)
    assert load_task(chosen).spec.verdict == "in_process"


def test_not_a_directory(tmp_path):
    with pytest.raises(TaskFormatError, match="not a directory"):
        load_task(tmp_path / "nope")


def test_discover_finds_task_folders(tmp_path):
    make_task(tmp_path / "a", 'id = "a"\nprompt = "x"\n', GOOD_FILES)
    make_task(tmp_path / "group" / "b", 'id = "b"\nprompt = "x"\n', GOOD_FILES)
    assert [p.name for p in discover_tasks(tmp_path)] == ["a", "b"]
    assert discover_tasks(RUNS / "task_001") == [RUNS / "task_001"]
