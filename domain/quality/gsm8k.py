"""GSM8K strategies: one answer, self-consistency, critic rounds, and the program-aided variants.

- ``one``: one greedy answer in prose (``domain/question_prompts.py``'s prompt, ``ANSWER: <number>``);
- ``sc`` / ``sc<N>``: up to N answers at the temperature, majority vote (``domain.answers.majority_vote``),
  sampling stopped once the remaining answers could not change the winner (``vote_settled``);
- ``critic`` / ``critic<R>``: the greedy answer, then up to R rounds in which the same model reviews
  it (``domain/critique.py``'s prompts, as the flows' debate step sends them, ``VERDICT: APPROVE|REVISE``) and, unless it approves,
  revises it; the last answer counts;
- ``pal`` / ``pal-sc<N>``: the model writes a program, the sandbox runs it, its last printed number
  is the answer (one greedy program, or N sampled ones and a majority vote);
- ``pal-fix`` / ``pal-fix<R>``: the greedy program, and while it crashes or prints no number (about one
  program in six with the 0.5B model: a misspelt variable, prose instead of code) up to R repairs,
  each shown the traceback's last lines: execution as the verifier, as the coding workflow's fix loop;
- ``mix`` / ``mix<N>``: a vote across the two ways of answering, N answers at most: the greedy program,
  up to N - 2 sampled programs, then the greedy prose answer, each only while the answers so far could
  still lose the vote (``vote_settled``); ties go to the greedy program, then the prose answer. Prose and
  program fail on different problems (on GSM8K's first 200: 20 solved by both, 74 by either), so
  agreement between them is evidence that neither way alone has.
"""

from __future__ import annotations

import re
from typing import Any

from domain.answers import majority_vote, parse_answer, score_answer, vote_settled
from domain.code_extract import extract_code
from domain.critique import critique_messages, parse_approval, revise_messages
from domain.quality.harness import Bench, Config, Spend
from domain.quality.humaneval import CODE_STOP
from domain.question_prompts import question_messages, revise_instruction
from orchestrator.errors import UserInputError
from orchestrator.records import Message
from orchestrator.taskspec import Task

PAL_SYSTEM = (
    "You solve maths word problems by writing Python. Answer with exactly one ```python block: a short "
    "program that computes the answer step by step and prints only the final number."
)
PAL_REPAIR = (
    "Running your program failed:\n\n{error}\n\nWrite the corrected program: exactly one ```python block "
    "that computes the answer and prints only the final number."
)
_NAME = re.compile(r"^(one|sc|critic|pal|pal-sc|pal-fix|mix)(\d*)$")
STRATEGIES = ("one", "sc<N>", "critic<R>", "pal", "pal-sc<N>", "pal-fix<R>", "mix<N>")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def parse_strategy(name: str, config: Config) -> tuple[str, int]:
    """``sc5`` -> ("sc", 5), ``critic2`` -> ("critic", 2); bare names take the config's samples/rounds."""
    match = _NAME.match(name)
    if match is None:
        raise UserInputError(f"unknown gsm8k strategy {name!r}; choose from {', '.join(STRATEGIES)}")
    kind, number = match.groups()
    if number and kind in ("one", "pal"):
        raise UserInputError(f"gsm8k strategy {kind!r} takes no number ({name!r})")
    default = config.rounds if kind in ("critic", "pal-fix") else config.samples
    budget = int(number) if number else default
    least = 2 if kind == "mix" else 1  # a mix has a program and a prose answer
    if budget < least:
        raise UserInputError(f"gsm8k strategy {name!r}: the number must be {least} or more")
    return kind, budget


def label(name: str, config: Config) -> str:
    kind, budget = parse_strategy(name, config)
    if kind in ("sc", "pal-sc"):
        return f"{kind}(n={budget},T={config.temperature})"
    if kind in ("critic", "pal-fix"):
        return f"{kind}(rounds={budget})"
    if kind == "mix":
        return f"mix(n={budget},T={config.temperature})"
    return kind


class GSM8KRun:
    def __init__(self, bench: Bench, config: Config) -> None:
        self.bench, self.config = bench, config

    def answer(self, spend: Spend, task: Task, program: bool, temperature: float, seed: int) -> str | None:
        if not program:
            return parse_answer(
                self.bench.call(spend, self.config.strong, question_messages(task), temperature=temperature, seed=seed)
            ).answer
        return self.program_answer(spend, task, temperature, seed, repairs=0)[0]

    def program_answer(self, spend: Spend, task: Task, temperature: float, seed: int, repairs: int) -> tuple[str | None, int]:
        """The last number the model's program prints, after up to ``repairs`` rounds of showing it
        the error of a program that crashed or printed none; returns it and the repairs made."""
        model = self.config.strong
        messages = [
            Message(role="system", content=PAL_SYSTEM),
            Message(role="user", content=task.prompt.strip()),
        ]
        reply = self.bench.call(spend, model, messages, temperature=temperature, seed=seed, stop=CODE_STOP)
        made = 0
        while True:
            executed = self.bench.run_program(spend, extract_code(reply))
            numbers = _NUMBER.findall(executed.stdout) if executed.exit_code == 0 else []
            if numbers or made == repairs:
                return (numbers[-1].replace(",", "") if numbers else None), made
            messages = [
                *messages,
                Message(role="assistant", content=reply),
                Message(role="user", content=PAL_REPAIR.format(error=executed.error())),
            ]
            made += 1
            # A greedy retry tends to repeat the same program: the fix temperature, a seed per round.
            reply = self.bench.call(
                spend, model, messages, temperature=self.config.fix_temperature, seed=made, stop=CODE_STOP
            )

    def mixed_answers(self, spend: Spend, task: Task, size: int) -> list[str | None]:
        """Up to ``size`` answers for ``mix``, in the vote's tie-break order: the greedy program, the
        prose answer (when it was asked for), the sampled programs."""
        programs = [self.answer(spend, task, True, 0.0, 0)]
        while len(programs) < size - 1 and not vote_settled(programs, task.spec, size - len(programs)):
            programs.append(self.answer(spend, task, True, self.config.temperature, len(programs)))
        if vote_settled(programs, task.spec, size - len(programs)):
            return programs
        return [programs[0], self.answer(spend, task, False, 0.0, 0), *programs[1:]]

    def critic_rounds(self, spend: Spend, task: Task, rounds: int) -> tuple[str | None, int]:
        """The greedy answer, reviewed and revised until the critic approves or ``rounds`` reviews;
        returns the last answer and the number of revisions."""
        model = self.config.strong
        history = question_messages(task)
        instruction = revise_instruction(task)
        reply = self.bench.call(spend, model, history)
        revisions = 0
        for _ in range(rounds):
            review = self.bench.call(spend, model, critique_messages(task.prompt, reply))
            if parse_approval(review):
                break
            history = revise_messages(history, reply, review, instruction)
            reply = self.bench.call(spend, model, history)
            revisions += 1
        return parse_answer(reply).answer, revisions

    def run(self, name: str, task: Task) -> dict[str, Any]:
        kind, budget = parse_strategy(name, self.config)
        spend = Spend()
        extra: dict[str, Any] = {}
        program = kind.startswith("pal")
        if kind == "critic":
            answer, extra["revisions"] = self.critic_rounds(spend, task, budget)
            answers = [answer]
        elif kind == "pal-fix":
            answer, extra["repairs"] = self.program_answer(spend, task, 0.0, 0, repairs=budget)
            answers = [answer]
        elif kind == "mix":
            answers = self.mixed_answers(spend, task, budget)
        elif kind in ("one", "pal"):
            answers = [self.answer(spend, task, program, 0.0, 0)]
        else:
            answers = []
            for seed in range(1, budget + 1):
                answers.append(self.answer(spend, task, program, self.config.temperature, seed))
                if vote_settled(answers, task.spec, budget - seed):
                    break
        vote = majority_vote(answers, task.spec)
        return {
            "task_id": task.id,
            "passed": bool(score_answer(vote.answer, task.spec)),
            "answer": vote.answer,
            "votes": vote.count,
            "candidates": len(answers),
            **extra,
            **spend.fields(),
        }
