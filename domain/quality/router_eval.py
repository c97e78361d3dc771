"""Routers between a cheap and a dear side, measured on the per-problem rows (no new calls).

Two pairs (``PAIRS``): the issue's, SmolLM2 greedy (``weak-one``) against Qwen greedy (``one``), two
models; and Qwen's one call against Qwen's sample-and-filter (``filter(n=5,…)``), two strategies of
one model, where the question is the same: which problems deserve the dear side. The rows of both
sides on the same problems are exactly what a router evaluation needs: each problem's quality
(hidden tests) and cost (model seconds) on each side. Compared, with RouteLLM's measures
(``domain.router_learned``): share of calls sent to the strong side against the performance gap
recovered (PGR), CPT(50%) and APGR —

- always-weak (share 0, PGR 0), always-strong (share 1, PGR 1) and a random router (PGR = share in
  expectation: APGR 0.5, CPT(50%) 50 %);
- the learned router (TF-IDF nearest neighbours over the prompt), k-fold by problem, so each problem
  is routed by a router that never saw it (the held-out split);
- the verified cascade read as a router: it sends a problem to the strong side when the weak
  answer fails the visible tests (or there are none), a two-level score, so its curve has one
  point between the ends. For the second pair this is the decision ``filter``'s early stop makes;
- the cascade with a learned escalation score: a logistic regression, k-fold by problem like the
  learned router, over the request's size (what makes a problem hard for a small model: the word
  TF-IDF above cannot see it) and the weak attempt the cascade has already paid for (did it pass its
  visible tests, how long was it). It ranks the problems by the chance that the strong side wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from domain.router_learned import Example, TraceData, calls_to_recover, evaluate, pgr_curve


@dataclass(frozen=True)
class RouterPair:
    weak: str  # the cheap side's strategy label (a regex: labels carry the run's sampling settings)
    strong: str
    weak_name: str
    strong_name: str

    def sides(self, labels: list[str]) -> tuple[str | None, str | None]:
        """The run's labels of the weak and the strong side (None: that side was not run)."""

        def matching(pattern: str) -> str | None:
            return next((label for label in labels if re.fullmatch(pattern, label)), None)

        return matching(self.weak), matching(self.strong)


PAIRS = (
    RouterPair(weak="weak-one", strong="one", weak_name="SmolLM2-135M", strong_name="Qwen2.5-Coder-0.5B"),
    RouterPair(
        weak="one", strong=r"filter\(n=5,.*\)", weak_name="Qwen's one call", strong_name="Qwen's filter(n=5)"
    ),
)


class RouterLine(BaseModel):
    router: str
    apgr: float | None
    cpt50: float | None
    strong_share: float | None = None  # at its operating point (learned: the configured margin)
    pass_rate: float | None = None  # at that point
    curve: list[tuple[float, float]]  # share of strong calls -> pass rate


class RouterReport(BaseModel):
    weak_name: str
    strong_name: str
    weak_strategy: str
    strong_strategy: str
    problems: int
    weak_pass: float
    strong_pass: float
    folds: int
    lines: list[RouterLine]
    note: str | None = None


def _to_pass_rate(curve: list[tuple[float, float]], weak: float, strong: float) -> list[tuple[float, float]]:
    return [(round(share, 4), round(weak + pgr * (strong - weak), 4)) for share, pgr in curve]


def router_reports(
    strategies: dict[str, dict[str, dict[str, Any]]], texts: dict[str, str], *, neighbours: int, margin: float, folds: int = 5
) -> list[RouterReport]:
    """Each pair of ``PAIRS`` whose two sides have rows on the same problems."""
    reports = (
        router_report(strategies, texts, pair, neighbours=neighbours, margin=margin, folds=folds) for pair in PAIRS
    )
    return [report for report in reports if report is not None]


def router_report(
    strategies: dict[str, dict[str, dict[str, Any]]],
    texts: dict[str, str],
    pair: RouterPair = PAIRS[0],
    *,
    neighbours: int,
    margin: float,
    folds: int = 5,
) -> RouterReport | None:
    """The routers over the problems that both sides' rows cover (None: no such rows)."""
    weak_label, strong_label = pair.sides(list(strategies))
    if weak_label is None or strong_label is None:
        return None
    weak_rows, strong_rows = strategies[weak_label], strategies[strong_label]
    tasks = [t for t in strong_rows if t in weak_rows and t in texts]
    if len(tasks) < 2:
        return None
    q_weak = [float(weak_rows[t]["passed"]) for t in tasks]
    q_strong = [float(strong_rows[t]["passed"]) for t in tasks]
    weak, strong = float(np.mean(q_weak)), float(np.mean(q_strong))
    report = RouterReport(
        weak_name=pair.weak_name,
        strong_name=pair.strong_name,
        weak_strategy=weak_label,
        strong_strategy=strong_label,
        problems=len(tasks),
        weak_pass=weak,
        strong_pass=strong,
        folds=folds,
        lines=[],
    )
    report.lines += [
        RouterLine(router="always-weak", apgr=None, cpt50=None, strong_share=0.0, pass_rate=weak, curve=[(0.0, weak)]),
        RouterLine(router="always-strong", apgr=None, cpt50=None, strong_share=1.0, pass_rate=strong, curve=[(1.0, strong)]),
        RouterLine(router="random", apgr=0.5, cpt50=0.5, curve=[(0.0, weak), (1.0, strong)]),
    ]
    if strong <= weak:
        report.note = "the strong side is not better than the weak one on these problems: no gap to recover"
        return report
    data = TraceData(
        cost_basis="latency_s",
        examples=[
            Example(
                task_id=t,
                text=texts[t],
                quality={"weak": float(weak_rows[t]["passed"]), "strong": float(strong_rows[t]["passed"])},
                cost={"weak": float(weak_rows[t]["model_s"]), "strong": float(strong_rows[t]["model_s"])},
            )
            for t in tasks
        ],
        preferences=[],
    )
    learned = evaluate(data, neighbours=neighbours, margin=margin, folds=folds)
    if learned.weak == "weak" and learned.apgr is not None:
        report.lines.append(
            RouterLine(
                router=f"learned (k-fold {folds}, margin {margin})",
                apgr=round(learned.apgr, 3),
                cpt50=learned.cpt50,
                strong_share=learned.strong_share,
                pass_rate=learned.quality_router,
                curve=_to_pass_rate(learned.curve, weak, strong),
            )
        )
    elif learned.weak != "weak":
        report.note = f"the weak side's answers took longer than the strong one's on average ({learned.note or ''})"
    report.lines.append(cascade_line(weak_rows, tasks, q_weak, q_strong))
    learned_cascade = learned_cascade_line(weak_rows, texts, tasks, q_weak, q_strong, folds=folds)
    if learned_cascade is not None:
        report.lines.append(learned_cascade)
    return report


def visible_pass(row: dict[str, Any]) -> bool:
    """The weak answer passed its visible tests (False when there were none: no signal)."""
    return bool(row["visible_tests"] and row["visible_passed"])


def cascade_line(
    weak_rows: dict[str, dict[str, Any]], tasks: list[str], q_weak: list[float], q_strong: list[float]
) -> RouterLine:
    """The cascade's escalation signal as a router score: 1 when the weak answer failed its visible
    tests or had none to pass (the cascade calls the strong side), else 0."""
    escalate = [float(not visible_pass(weak_rows[t])) for t in tasks]
    return score_line("cascade read as a router (visible tests decide)", escalate, q_weak, q_strong, operating=True)


def score_line(
    router: str, score: list[float], q_weak: list[float], q_strong: list[float], *, operating: bool = False
) -> RouterLine:
    """A router given as a score per problem (higher: to the strong side first); ``operating``: the
    score is 0/1 and its 1s are the router's own decision, reported as its operating point."""
    weak, strong = float(np.mean(q_weak)), float(np.mean(q_strong))
    shares, pgrs = pgr_curve(score, q_weak, q_strong)
    share = float(np.mean(score)) if operating else None
    pgr_at = None if share is None else dict(zip(shares, pgrs, strict=True)).get(share)
    return RouterLine(
        router=router,
        apgr=round(float(np.trapezoid(pgrs, shares)), 3),
        cpt50=calls_to_recover(shares, pgrs, 0.5),
        strong_share=share,
        pass_rate=None if pgr_at is None else weak + pgr_at * (strong - weak),
        curve=_to_pass_rate(list(zip(shares, pgrs, strict=True)), weak, strong),
    )


def attempt_features(text: str, weak_row: dict[str, Any]) -> list[float]:
    """What the cascade knows before it decides: the request's size and the weak attempt's outcome."""
    return [
        float(np.log1p(len(text))),
        float(np.log1p(len(text.split()))),
        float(text.count("\n")),
        float(text.count(">>>")),  # docstring examples: also how many visible tests there are
        float(visible_pass(weak_row)),
        float(np.log1p(weak_row.get("completion_tokens", 0))),
    ]


def learned_cascade_line(
    weak_rows: dict[str, dict[str, Any]],
    texts: dict[str, str],
    tasks: list[str],
    q_weak: list[float],
    q_strong: list[float],
    *,
    folds: int,
    repeats: int = 10,
) -> RouterLine | None:
    """The cascade with a learned escalation score, each problem scored by models fitted on the
    other folds only: the mean of its held-out scores over ``repeats`` random k-fold splits (one
    split of 164 problems moves APGR by +-0.02). None: too few problems, or a training fold where
    the strong side never wins."""
    if len(tasks) < 2 * folds:
        return None
    features = np.array([attempt_features(texts[t], weak_rows[t]) for t in tasks])
    strong_wins = (np.array(q_strong) > np.array(q_weak)).astype(int)
    score = np.zeros(len(tasks))
    for seed in range(repeats):
        for train, held_out in KFold(folds, shuffle=True, random_state=seed).split(features):
            if len(set(strong_wins[train])) < 2:
                return None
            model = make_pipeline(StandardScaler(), LogisticRegression()).fit(features[train], strong_wins[train])
            score[held_out] += model.predict_proba(features[held_out])[:, 1] / repeats
    return score_line(
        f"cascade, learned escalation (k-fold {folds} x {repeats}: request size, weak attempt)",
        [float(s) for s in score],
        q_weak,
        q_strong,
    )


def markdown(report: RouterReport) -> str:
    def pct(value: float | None) -> str:
        return "—" if value is None else f"{100 * value:.1f} %"

    lines = [
        f"Router between {report.weak_name} (weak, `{report.weak_strategy}`: {pct(report.weak_pass)}) and "
        f"{report.strong_name} (strong, `{report.strong_strategy}`: {pct(report.strong_pass)}) over {report.problems} "
        "problems, hidden tests deciding:",
        "",
        "| router | strong side | pass@1 | CPT(50%) | APGR |",
        "|---|---|---|---|---|",
    ]
    for line in report.lines:
        apgr = "—" if line.apgr is None else f"{line.apgr:.3f}"
        lines.append(f"| {line.router} | {pct(line.strong_share)} | {pct(line.pass_rate)} | {pct(line.cpt50)} | {apgr} |")
    if report.note:
        lines += ["", report.note]
    return "\n".join(lines)
