"""The learned router: which model a task should go to, from what the traces say won on similar tasks.

Training data comes from the trace tables: each run's task text (``routes``) and each candidate's
verdict (``verdicts``): its model, its quality (the execution score, else the rubric score) and its
cost. Cost is in USD when the traces price every candidate and some cost something; otherwise it is
the seconds spent in model calls (``calls``), since local models are free in dollars but not in time.

Features are TF-IDF weights of the task text (scikit-learn). A model's predicted quality on a task
is the similarity-weighted mean of its quality on the k most similar training tasks, shrunk towards
its overall mean, so a task unlike anything seen gets the model's average. Routing picks the cheapest
model whose prediction is within ``margin`` of the best one; it costs no model call.

Evaluation is k-fold by task: how often the router picks the model the judge ranked first on
held-out runs, and RouteLLM's measures for the (weak = cheapest, strong = best) pair of models:
CPT(50%), the share of calls that must go to the strong model to recover half the quality gap, and
APGR, the average performance gap recovered over all shares of strong calls.
"""

from __future__ import annotations

import os
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, ValidationError
from sklearn.feature_extraction.text import TfidfVectorizer

from orchestrator.errors import ConfigurationError, UserInputError
from orchestrator.records import WorkerSpec, utcnow
from orchestrator.settings import Settings
from orchestrator.traces import TraceStore

CostBasis = Literal["usd", "latency_s"]
#: weight of a model's overall mean against its neighbours' similarity weights (cosine, 0..1 each)
PRIOR_WEIGHT = 0.3


class ModelStats(BaseModel):
    quality: float  # mean over the tasks it was tried on
    cost: float  # mean per candidate, in the file's cost basis
    tasks: int


class Example(BaseModel):
    """One task as training data: its text, and each model's mean quality and cost on it."""

    task_id: str
    text: str
    quality: dict[str, float]
    cost: dict[str, float]


class Preference(BaseModel):
    """The model the judge ranked first in one run, among the models that ran."""

    run_id: str
    task_id: str
    winner: str
    models: list[str]


class TraceData(BaseModel):
    cost_basis: CostBasis
    examples: list[Example]
    preferences: list[Preference]


class RouterFile(BaseModel):
    """What ``orchestrator router train`` saves: readable JSON, refitted on load (no pickles)."""

    version: Literal[1] = 1
    cost_basis: CostBasis
    neighbours: int
    margin: float
    models: dict[str, ModelStats]
    examples: list[Example]
    trained_on: str = ""
    trained_at: datetime = Field(default_factory=utcnow)


class Choice(BaseModel):
    worker: WorkerSpec
    predicted: dict[str, float]
    cost: dict[str, float]
    skipped: dict[str, str]  # model -> why it could not be chosen here


class RouterEval(BaseModel):
    tasks: int
    models: list[str]
    cost_basis: CostBasis
    neighbours: int
    margin: float
    runs: int = 0  # held-out runs the agreement is measured on
    agreement: float | None = None
    weak: str | None = None
    strong: str | None = None
    pair_tasks: int = 0  # held-out tasks where both weak and strong have a verdict
    quality_weak: float | None = None
    quality_strong: float | None = None
    quality_router: float | None = None  # at the configured margin, weak/strong pair only
    strong_share: float | None = None
    pgr: float | None = None  # performance gap recovered at the configured margin
    cpt50: float | None = None
    apgr: float | None = None
    #: the cost-quality curve behind APGR: share of strong calls -> performance gap recovered
    curve: list[tuple[float, float]] = Field(default_factory=list)
    note: str | None = None


def model_label(provider: str, model: str) -> str:
    return f"{provider}:{model}"


# ---------------------------------------------------------------- training data


def read_traces(store: TraceStore) -> TraceData:
    """Join routes (task text), verdicts (quality, cost) and calls (latency) into training data."""
    texts: dict[str, tuple[str, str]] = {}
    for row in store.rows("routes"):
        texts.setdefault(row["run_id"], (row["task_id"], row["task_text"]))
    verdicts = [v for v in store.rows("verdicts") if v["run_id"] in texts]
    latency: dict[str, float] = defaultdict(float)
    for call in store.rows("calls"):
        if call["candidate_id"] and call["role"] == "solver":  # the solver's own time, as cost_usd counts
            latency[call["candidate_id"]] += float(call["latency_s"] or 0.0)
    costs = [v["cost_usd"] for v in verdicts]
    basis: CostBasis = "usd" if costs and all(c is not None for c in costs) and any(c > 0 for c in costs) else "latency_s"

    quality: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    cost: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    by_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
    task_text: dict[str, str] = {}
    for v in verdicts:
        score = v["exec_score"] if v["exec_score"] is not None else v["rubric_score"]
        if score is None:
            continue
        task_id, text = texts[v["run_id"]]
        label = model_label(v["provider"], v["model"])
        task_text[task_id] = text
        quality[task_id][label].append(float(score))
        cost[task_id][label].append(float(v["cost_usd"]) if basis == "usd" else latency[v["candidate_id"]])
        by_run[v["run_id"]].append(v)
    examples = [
        Example(
            task_id=task_id,
            text=task_text[task_id],
            quality={m: float(np.mean(q)) for m, q in sorted(quality[task_id].items())},
            cost={m: float(np.mean(c)) for m, c in sorted(cost[task_id].items())},
        )
        for task_id in sorted(quality)
    ]
    preferences = []
    for run_id, rows in sorted(by_run.items()):
        models = sorted({model_label(r["provider"], r["model"]) for r in rows})
        if len(models) > 1:
            best = min(rows, key=lambda r: r["rank"])
            preferences.append(
                Preference(run_id=run_id, task_id=texts[run_id][0], winner=model_label(best["provider"], best["model"]), models=models)
            )
    return TraceData(cost_basis=basis, examples=examples, preferences=preferences)


def model_stats(examples: Sequence[Example]) -> dict[str, ModelStats]:
    quality: dict[str, list[float]] = defaultdict(list)
    cost: dict[str, list[float]] = defaultdict(list)
    for ex in examples:
        for m, q in ex.quality.items():
            quality[m].append(q)
            cost[m].append(ex.cost[m])
    return {
        m: ModelStats(quality=float(np.mean(quality[m])), cost=float(np.mean(cost[m])), tasks=len(quality[m]))
        for m in sorted(quality)
    }


# ---------------------------------------------------------------- the router


class LearnedRouter:
    def __init__(self, file: RouterFile) -> None:
        self.file = file
        self._vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
        self._matrix: Any = None
        try:
            self._matrix = self._vectorizer.fit_transform([ex.text for ex in file.examples])
        except ValueError:  # no words at all in the texts: every prediction is the model's mean
            self._matrix = None

    @property
    def models(self) -> list[str]:
        return list(self.file.models)

    def _similarities(self, text: str) -> np.ndarray:
        if self._matrix is None:
            return np.zeros(len(self.file.examples))
        vector = self._vectorizer.transform([text])
        return np.asarray((self._matrix @ vector.T).toarray()).ravel()

    def predict(self, text: str) -> dict[str, float]:
        """Each known model's expected quality (0..1) on a task with this text."""
        sims = self._similarities(text)
        out: dict[str, float] = {}
        for model, stats in self.file.models.items():
            tried = [i for i, ex in enumerate(self.file.examples) if model in ex.quality]
            nearest = sorted(tried, key=lambda i: -sims[i])[: self.file.neighbours]
            weights = [max(float(sims[i]), 0.0) for i in nearest]
            total = sum(w * self.file.examples[i].quality[model] for w, i in zip(weights, nearest, strict=True))
            out[model] = (total + PRIOR_WEIGHT * stats.quality) / (sum(weights) + PRIOR_WEIGHT)
        return out

    def choose(
        self, text: str, usable: Callable[[WorkerSpec], str | None] | None = None, margin: float | None = None
    ) -> Choice:
        """The cheapest usable model predicted within ``margin`` of the best usable prediction."""
        margin = self.file.margin if margin is None else margin
        predicted = self.predict(text)
        skipped: dict[str, str] = {}
        for model in predicted:
            problem = usable(WorkerSpec.from_label(model)) if usable else None
            if problem:
                skipped[model] = problem
        options = sorted((m for m in predicted if m not in skipped), key=lambda m: (self.file.models[m].cost, m))
        if not options:
            raise ConfigurationError(
                "the learned router knows only models that cannot be used here "
                f"({'; '.join(f'{m}: {why}' for m, why in skipped.items())}); retrain it or change the allow-list"
            )
        best = max(predicted[m] for m in options)
        pick = next(m for m in options if predicted[m] >= best - margin - 1e-12)
        return Choice(
            worker=WorkerSpec.from_label(pick),
            predicted={m: round(q, 4) for m, q in predicted.items()},
            cost={m: round(self.file.models[m].cost, 6) for m in predicted},
            skipped=skipped,
        )


def fit(examples: Sequence[Example], cost_basis: CostBasis, neighbours: int, margin: float, trained_on: str = "") -> LearnedRouter:
    if not examples:
        raise UserInputError(
            f"no training data in {trained_on or 'the traces'}: the learned router needs runs with verdicts; "
            "run tasks with two or more workers first"
        )
    return LearnedRouter(
        RouterFile(
            cost_basis=cost_basis,
            neighbours=neighbours,
            margin=margin,
            models=model_stats(examples),
            examples=list(examples),
            trained_on=trained_on,
        )
    )


def train(store: TraceStore, neighbours: int, margin: float) -> LearnedRouter:
    data = read_traces(store)
    return fit(data.examples, data.cost_basis, neighbours, margin, trained_on=str(store.root))


def router_path(settings: Settings) -> Path:
    return settings.learned_router_path or settings.cache_dir / "router" / "learned_router.json"


def save_router(router: LearnedRouter, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(router.file.model_dump_json(indent=1), encoding="utf-8")
    os.replace(tmp, path)
    return path


_loaded: dict[tuple[Path, float], LearnedRouter] = {}


def load_router(path: Path) -> LearnedRouter:
    """The router saved at ``path`` (refitted once per file version in this process)."""
    try:
        key = (path.resolve(), path.stat().st_mtime)
    except OSError:
        raise ConfigurationError(
            f"no learned router at {path}; train one with `orchestrator router train` (or set ORCH_LEARNED_ROUTER_PATH)"
        ) from None
    if key not in _loaded:
        try:
            _loaded[key] = LearnedRouter(RouterFile.model_validate_json(path.read_text(encoding="utf-8")))
        except (ValidationError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"{path} is not a learned router file ({str(exc).splitlines()[0]}); retrain it") from None
    return _loaded[key]


# ---------------------------------------------------------------- evaluation


def evaluate(data: TraceData, neighbours: int, margin: float, folds: int = 5, seed: int = 0) -> RouterEval:
    """Held-out quality of the router: k-fold by task, so no task is judged by a router that saw it."""
    examples = data.examples
    stats = model_stats(examples)
    report = RouterEval(tasks=len(examples), models=list(stats), cost_basis=data.cost_basis, neighbours=neighbours, margin=margin)
    if len(examples) < 2 or len(stats) < 2:
        report.note = "needs at least two tasks and two models in the traces"
        return report
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    k = min(folds, len(examples))
    predicted: dict[str, dict[str, float]] = {}
    picks: dict[str, str] = {}
    for fold in range(k):
        held = {examples[i].task_id for i in order[fold::k]}
        train_set = [ex for ex in examples if ex.task_id not in held]
        router = fit(train_set, data.cost_basis, neighbours, margin)
        for ex in examples:
            if ex.task_id in held:
                predicted[ex.task_id] = router.predict(ex.text)
                chosen = router.choose(ex.text).worker
                picks[ex.task_id] = model_label(chosen.provider, chosen.model)

    judged = [p for p in data.preferences if picks.get(p.task_id) in p.models]
    report.runs = len(judged)
    if judged:
        report.agreement = sum(picks[p.task_id] == p.winner for p in judged) / len(judged)

    weak = min(stats, key=lambda m: (stats[m].cost, m))
    others = [m for m in stats if m != weak]
    strong = max(others, key=lambda m: (stats[m].quality, -stats[m].cost))
    report.weak, report.strong = weak, strong
    items = [ex for ex in examples if weak in ex.quality and strong in ex.quality and strong in predicted.get(ex.task_id, {})]
    report.pair_tasks = len(items)
    if not items:
        report.note = f"no task has verdicts for both {weak} and {strong}"
        return report
    q_weak = [ex.quality[weak] for ex in items]
    q_strong = [ex.quality[strong] for ex in items]
    advantage = [predicted[ex.task_id][strong] - predicted[ex.task_id][weak] for ex in items]
    report.quality_weak, report.quality_strong = float(np.mean(q_weak)), float(np.mean(q_strong))
    routed_strong = [a > margin for a in advantage]
    report.strong_share = sum(routed_strong) / len(items)
    report.quality_router = float(np.mean([s if r else w for s, w, r in zip(q_strong, q_weak, routed_strong, strict=True)]))
    gap = report.quality_strong - report.quality_weak
    if gap <= 0:
        report.note = f"{strong} is not better than {weak} on these tasks: no gap to recover"
        return report
    report.pgr = (report.quality_router - report.quality_weak) / gap
    shares, pgrs = pgr_curve(advantage, q_weak, q_strong)
    report.curve = list(zip(shares, pgrs, strict=True))
    report.apgr = float(np.trapezoid(pgrs, shares))
    report.cpt50 = calls_to_recover(shares, pgrs, 0.5)
    return report


def pgr_curve(score: Sequence[float], q_weak: Sequence[float], q_strong: Sequence[float]) -> tuple[list[float], list[float]]:
    """Share of calls sent to the strong model vs. performance gap recovered, as the threshold falls.

    Tasks go to the strong model in order of falling ``score``; tasks with equal scores move together
    (a threshold cannot split them), so the curve is exact for ties rather than depending on order.
    """
    n = len(score)
    gap = float(np.mean(q_strong) - np.mean(q_weak))
    groups: dict[float, float] = defaultdict(float)
    sizes: dict[float, int] = defaultdict(int)
    for s, w, st in zip(score, q_weak, q_strong, strict=True):
        groups[s] += st - w
        sizes[s] += 1
    shares, pgrs, gain, sent = [0.0], [0.0], 0.0, 0
    for s in sorted(groups, reverse=True):
        gain += groups[s] / n
        sent += sizes[s]
        shares.append(sent / n)
        pgrs.append(gain / gap)
    return shares, pgrs


def calls_to_recover(shares: Sequence[float], pgrs: Sequence[float], target: float) -> float | None:
    """The smallest share of strong calls whose PGR reaches ``target`` (linear between curve points)."""
    for i in range(1, len(shares)):
        if pgrs[i] >= target:
            if pgrs[i] == pgrs[i - 1]:
                return shares[i]
            t = (target - pgrs[i - 1]) / (pgrs[i] - pgrs[i - 1])
            return shares[i - 1] + max(0.0, t) * (shares[i] - shares[i - 1])
    return None
