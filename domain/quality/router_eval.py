"""Routers between the weak and the strong model, measured on the per-problem rows (no new calls).

The rows of ``weak-one`` (SmolLM2 greedy) and ``one`` (Qwen greedy) on the same problems are exactly
what a router evaluation needs: each problem's quality (hidden tests) and cost (model seconds) on
each model. Compared, with RouteLLM's measures (``domain.router_learned``): share of calls sent to
the strong model against the performance gap recovered (PGR), CPT(50%) and APGR —

- always-weak (share 0, PGR 0), always-strong (share 1, PGR 1) and a random router (PGR = share in
  expectation: APGR 0.5, CPT(50%) 50 %);
- the learned router (TF-IDF nearest neighbours over the prompt), k-fold by problem, so each problem
  is routed by a router that never saw it (the held-out split);
- the verified cascade read as a router: it sends a problem to the strong model when the weak
  answer fails the visible tests (or there are none), a two-level score, so its curve has one
  point between the ends.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel

from domain.router_learned import Example, TraceData, calls_to_recover, evaluate, pgr_curve

WEAK_STRATEGY = "weak-one"
STRONG_STRATEGY = "one"


class RouterLine(BaseModel):
    router: str
    apgr: float | None
    cpt50: float | None
    strong_share: float | None = None  # at its operating point (learned: the configured margin)
    pass_rate: float | None = None  # at that point
    curve: list[tuple[float, float]]  # share of strong calls -> pass rate


class RouterReport(BaseModel):
    problems: int
    weak_pass: float
    strong_pass: float
    folds: int
    lines: list[RouterLine]
    note: str | None = None


def _to_pass_rate(curve: list[tuple[float, float]], weak: float, strong: float) -> list[tuple[float, float]]:
    return [(round(share, 4), round(weak + pgr * (strong - weak), 4)) for share, pgr in curve]


def router_report(
    strategies: dict[str, dict[str, dict[str, Any]]],
    texts: dict[str, str],
    *,
    neighbours: int,
    margin: float,
    folds: int = 5,
) -> RouterReport | None:
    """The routers over the problems that both ``weak-one`` and ``one`` rows cover (None: no such rows)."""
    weak_rows, strong_rows = strategies.get(WEAK_STRATEGY, {}), strategies.get(STRONG_STRATEGY, {})
    tasks = [t for t in strong_rows if t in weak_rows and t in texts]
    if len(tasks) < 2:
        return None
    q_weak = [float(weak_rows[t]["passed"]) for t in tasks]
    q_strong = [float(strong_rows[t]["passed"]) for t in tasks]
    weak, strong = float(np.mean(q_weak)), float(np.mean(q_strong))
    report = RouterReport(problems=len(tasks), weak_pass=weak, strong_pass=strong, folds=folds, lines=[])
    report.lines += [
        RouterLine(router="always-weak", apgr=None, cpt50=None, strong_share=0.0, pass_rate=weak, curve=[(0.0, weak)]),
        RouterLine(router="always-strong", apgr=None, cpt50=None, strong_share=1.0, pass_rate=strong, curve=[(1.0, strong)]),
        RouterLine(router="random", apgr=0.5, cpt50=0.5, curve=[(0.0, weak), (1.0, strong)]),
    ]
    if strong <= weak:
        report.note = "the strong model is not better than the weak one on these problems: no gap to recover"
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
        report.note = f"the weak model's answers took longer than the strong one's on average ({learned.note or ''})"
    report.lines.append(cascade_line(weak_rows, tasks, q_weak, q_strong))
    return report


def cascade_line(
    weak_rows: dict[str, dict[str, Any]], tasks: list[str], q_weak: list[float], q_strong: list[float]
) -> RouterLine:
    """The cascade's escalation signal as a router score: 1 when the weak answer failed its visible
    tests or had none to pass (the cascade calls the strong model), else 0."""
    escalate = [float(not (weak_rows[t]["visible_tests"] and weak_rows[t]["visible_passed"])) for t in tasks]
    weak, strong = float(np.mean(q_weak)), float(np.mean(q_strong))
    shares, pgrs = pgr_curve(escalate, q_weak, q_strong)
    share = float(np.mean(escalate))
    pgr_at = dict(zip(shares, pgrs, strict=True)).get(share)
    return RouterLine(
        router="cascade read as a router (visible tests decide)",
        apgr=round(float(np.trapezoid(pgrs, shares)), 3),
        cpt50=calls_to_recover(shares, pgrs, 0.5),
        strong_share=share,
        pass_rate=None if pgr_at is None else weak + pgr_at * (strong - weak),
        curve=_to_pass_rate(list(zip(shares, pgrs, strict=True)), weak, strong),
    )


def markdown(report: RouterReport) -> str:
    def pct(value: float | None) -> str:
        return "—" if value is None else f"{100 * value:.1f} %"

    lines = [
        f"Router between SmolLM2-135M (weak, `weak-one`: {pct(report.weak_pass)}) and Qwen2.5-Coder-0.5B "
        f"(strong, `one`: {pct(report.strong_pass)}) over {report.problems} problems, hidden tests deciding:",
        "",
        "| router | strong calls | pass@1 | CPT(50%) | APGR |",
        "|---|---|---|---|---|",
    ]
    for line in report.lines:
        apgr = "—" if line.apgr is None else f"{line.apgr:.3f}"
        lines.append(f"| {line.router} | {pct(line.strong_share)} | {pct(line.pass_rate)} | {pct(line.cpt50)} | {apgr} |")
    if report.note:
        lines += ["", report.note]
    return "\n".join(lines)
