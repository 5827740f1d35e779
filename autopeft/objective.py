"""The search's first objective: which metric, which way is better, and its hypervolume reference value.

The second objective is always trainable parameters as % of the model, minimised. A metric's
direction travels with it: the study stores it (Optuna's study directions, and the `objective`
user attr written by `autopeft.store.create_study`), and everything that ranks trials — samplers,
the Pareto front, hypervolume, promotion, refinement, tables, the dashboard — reads it from there.
Code that ranks works in *maximisation form*: ``oriented(value) = sign * value``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

DIRECTIONS = ("maximize", "minimize")


@dataclass(frozen=True)
class Objective:
    """`metric` (its name), `direction` (``maximize`` | ``minimize``) and `reference`: the worst acceptable
    value, in the metric's own units — a floor when maximised, a ceiling when minimised. Only values
    better than `reference` add hypervolume."""

    metric: str = "metric"
    direction: str = "maximize"
    reference: float = 0.0

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction: expected maximize or minimize, got {self.direction!r}")
        if not math.isfinite(self.reference):
            raise ValueError(f"reference: expected a finite number, got {self.reference!r}")

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

    @property
    def sign(self) -> float:
        """+1 when higher is better, -1 when lower is better: ``sign * value`` is maximised."""
        return 1.0 if self.maximize else -1.0

    @property
    def arrow(self) -> str:
        """``↑`` or ``↓``, for labels."""
        return "↑" if self.maximize else "↓"

    def better(self, a: float, b: float) -> bool:
        """Whether `a` is strictly better than `b`."""
        return a > b if self.maximize else a < b

    def best(self, values: Iterable[float]) -> float | None:
        """The best of `values`, None when there are none."""
        values = list(values)
        if not values:
            return None
        return max(values) if self.maximize else min(values)

    def reference_point(self, budget_pct: float | None) -> tuple[float, float]:
        """``(reference, budget %)`` in the metric's units: the corner of the hypervolume box (budget 100 when None)."""
        return (self.reference, budget_pct or 100.0)

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "direction": self.direction, "reference": self.reference}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Objective:
        return cls(metric=str(data.get("metric", "metric")), direction=str(data.get("direction", "maximize")),
                   reference=float(data.get("reference", 0.0)))


def stored_objective(objective_attr: dict[str, Any] | None, spec_attr: dict[str, Any] | None,
                     first_direction: str) -> Objective:
    """A study's objective from its stored attrs: the `objective` attr, or, for a study made before it was
    stored, the spec's `objectives.metric` and `metric_floor` with the study's first direction."""
    if objective_attr is not None:
        return Objective.from_dict(objective_attr)
    objectives = (spec_attr or {}).get("objectives") or {}
    return Objective(metric=str(objectives.get("metric", "metric")), direction=first_direction.lower(),
                     reference=float(objectives.get("metric_floor", 0.0)))


#: Accuracy, maximised, reference 0: the objective of a classification study (and of tests that make one).
ACCURACY = Objective("accuracy", "maximize", 0.0)
