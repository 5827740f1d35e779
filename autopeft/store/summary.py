"""One study summary and one Pareto front, computed from the reader's trial rows (no I/O).

`autopeft studies`, `autopeft pareto` and the dashboard all show these; nothing else computes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from autopeft.pareto import hypervolume, pareto_indices
from autopeft.store.reader import StudyInfo, TrialRow


def complete_rows(rows: Sequence[TrialRow]) -> list[TrialRow]:
    """Completed trials that have both objective values, in the order given."""
    return [r for r in rows if r.state == "complete" and r.metric is not None and r.params_pct is not None]


def front(rows: Sequence[TrialRow], maximize: bool = True) -> list[TrialRow]:
    """The Pareto-optimal completed trials (metric in its direction, params % minimised), cheapest first."""
    done = complete_rows(rows)
    return [done[i] for i in pareto_indices([(r.metric, r.params_pct) for r in done], maximize)]


@dataclass(frozen=True)
class StudySummary:
    """One row of `autopeft studies` and of the dashboard's study list."""

    study_id: int
    name: str
    model: str
    task: str
    space: str
    metric: str
    direction: str  # of the metric: maximize | minimize
    budget_pct: float | None
    states: dict[str, int]  # "complete", "fail", "running", "waiting", "pruned" -> count
    trials: int
    best_metric: float | None  # best within the budget (the reference point's params %)
    best_trial: int | None
    hypervolume: float
    pareto_size: int
    last_update: str | None  # ISO time of the latest start or completion
    refinements: list[str] = field(default_factory=list)  # linked studies of `autopeft refine`

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(info: StudyInfo, rows: Sequence[TrialRow], refinements: Sequence[str] = ()) -> StudySummary:
    """The summary of an autopeft study (`info.spec` set): states, best metric within the budget
    (`budget.max_params_pct`, 100 when unset), hypervolume at the objective's reference point, front size."""
    spec, objective = info.spec, info.objective
    if spec is None:
        raise ValueError(f"study {info.name!r} stores no autopeft spec")
    states: dict[str, int] = {}
    for r in rows:
        states[r.state] = states.get(r.state, 0) + 1
    done = complete_rows(rows)
    reference = objective.reference_point(spec.budget.max_params_pct)
    within = [r for r in done if r.params_pct <= reference[1]]
    best = max(within, key=lambda r: (objective.sign * r.metric, -r.params_pct, -r.number)) if within else None
    points = [(r.metric, r.params_pct) for r in done]
    stamps = [r.complete or r.start for r in rows if r.complete or r.start]
    return StudySummary(
        study_id=info.study_id, name=info.name, model=spec.model, task=spec.task, space=spec.space,
        metric=objective.metric, direction=objective.direction, budget_pct=spec.budget.max_params_pct,
        states=states, trials=len(rows), best_metric=best.metric if best else None,
        best_trial=best.number if best else None,
        hypervolume=hypervolume(points, reference, objective.maximize),
        pareto_size=len(pareto_indices(points, objective.maximize)),
        last_update=max(stamps).isoformat(timespec="seconds") if stamps else None,
        refinements=list(refinements),
    )
