"""Pareto front and hypervolume of (metric, params % ↓) points: pure functions, O(n log n).

A point is `(metric, params_pct)`. The metric is maximised, or minimised with ``maximize=False``
(see `autopeft.objective`); params % is always minimised. The reference point
`(metric reference, budget_pct)` is fixed per study: a metric floor when maximised, a ceiling when
minimised; only points strictly better than it in both objectives add hypervolume. Hypervolume is
the area (metric units x percentage points) dominated by the front inside the reference box.
"""

from __future__ import annotations

from collections.abc import Sequence

Point = tuple[float, float]


def oriented(points: Sequence[Point], maximize: bool) -> list[Point]:
    """`points` in maximisation form: the metric negated when it is minimised."""
    return list(points) if maximize else [(-m, p) for m, p in points]


def pareto_indices(points: Sequence[Point], maximize: bool = True) -> list[int]:
    """Indices of the non-dominated points (best metric, lowest params %), sorted by params %.

    Sort by params % ascending (best metric first on ties), then keep each point whose metric beats
    every cheaper point's: O(n log n). Exact duplicates are all kept.
    """
    points = oriented(points, maximize)
    order = sorted(range(len(points)), key=lambda i: (points[i][1], -points[i][0]))
    front: list[int] = []
    best = float("-inf")
    last: Point | None = None
    for i in order:
        metric, pct = points[i]
        if metric > best:
            front.append(i)
            best, last = metric, points[i]
        elif points[i] == last:
            front.append(i)
    return front


def hypervolume(points: Sequence[Point], reference: Point, maximize: bool = True) -> float:
    """Area dominated by `points` and bounded by `reference = (metric reference, budget_pct)`."""
    points, (reference,) = oriented(points, maximize), oriented([reference], maximize)
    floor, budget = reference
    inside = [p for p in points if p[0] > floor and p[1] < budget]
    return _staircase_area(sorted({inside[i] for i in pareto_indices(inside)}, key=lambda p: p[1]), reference)


def _staircase_area(front: list[Point], reference: Point) -> float:
    """Area under a maximisation-form front sorted by params % ascending (so metric ascending too)."""
    floor, budget = reference
    area = 0.0
    for k, (metric, pct) in enumerate(front):
        next_pct = front[k + 1][1] if k + 1 < len(front) else budget
        area += (next_pct - pct) * (metric - floor)
    return area


def hypervolume_history(points: Sequence[Point], reference: Point, maximize: bool = True) -> list[float]:
    """Hypervolume after each point, in order (for curves against trial number or time): O(n x front)."""
    points, (reference,) = oriented(points, maximize), oriented([reference], maximize)
    floor, budget = reference
    front: list[Point] = []
    history: list[float] = []
    area = 0.0
    for metric, pct in points:
        inside = metric > floor and pct < budget
        if inside and not any(m >= metric and p <= pct for m, p in front):
            front = sorted([q for q in front if not (metric >= q[0] and pct <= q[1])] + [(metric, pct)],
                           key=lambda p: p[1])
            area = _staircase_area(front, reference)
        history.append(area)
    return history
