"""Refinements of a study, as pure data: the linked-study convention, aggregation over seeds, comparison.

`autopeft refine STUDY` (see `autopeft.refine_run`) re-runs the Pareto-optimal trials of STUDY at a
higher fidelity with several seeds. Every (source trial, seed) run is one trial of a *linked* Optuna
study in the same storage, named ``STUDY--refined`` by default — no second store. Its user attrs:

- `refinement_of`: the source study's name;
- `fidelity`: the `FidelitySpec` dict the runs used (its `seed` is the first seed);
- `seeds`: every seed asked for so far (``fidelity.seed``, ``fidelity.seed + 1``, ...);
- `metric`: the key of the refined value in the worker result's `metrics` (e.g. ``dev_accuracy``);
- `split`: ``dev`` (the task's dev set), or ``heldout`` for a task that has no dev set.

The source study's user attr `refinements` lists its linked studies, oldest first. A linked trial has
values ``[metric, params_pct]`` and user attrs `source_trial`, `seed`, `plan`, `plan_summary`,
`params`, `params_pct`, `result` (the worker's `TrialResult` dict, as the runner stores it) and
`failure` for a failed run. A linked study stores no `spec`: it is not a search, so `autopeft
studies` and the dashboard show it with its source instead of as a study of its own.

The comparison (`compare`) is a pure function of the search front and the refined values; reading a
linked study from the DB is `autopeft.store.linked`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from autopeft.pareto import pareto_indices


# --- aggregation over seeds ----------------------------------------------------------------------
@dataclass(frozen=True)
class RefinedValue:
    """The refined metric of one source trial: per-seed values, their mean and sample sd (None for n < 2)."""

    source_trial: int
    seeds: tuple[int, ...]
    values: tuple[float, ...]
    mean: float
    sd: float | None

    @property
    def n(self) -> int:
        return len(self.values)

    def to_dict(self) -> dict[str, Any]:
        return {"source_trial": self.source_trial, "seeds": list(self.seeds), "values": list(self.values),
                "mean": self.mean, "sd": self.sd, "n": self.n}


def aggregate(runs: Iterable[tuple[int, int, float]]) -> dict[int, RefinedValue]:
    """`{source trial: RefinedValue}` from completed runs `(source_trial, seed, value)`.

    One value per (source trial, seed): the first run wins (two processes refining at once could
    record a pair twice). Non-finite values are skipped. Values are ordered by seed.
    """
    by_pair: dict[tuple[int, int], float] = {}
    for source, seed, value in runs:
        if value is not None and math.isfinite(value):
            by_pair.setdefault((int(source), int(seed)), float(value))
    grouped: dict[int, list[tuple[int, float]]] = {}
    for (source, seed), value in sorted(by_pair.items()):
        grouped.setdefault(source, []).append((seed, value))
    out = {}
    for source, pairs in grouped.items():
        values = [v for _, v in pairs]
        out[source] = RefinedValue(source_trial=source, seeds=tuple(s for s, _ in pairs), values=tuple(values),
                                   mean=statistics.fmean(values), sd=statistics.stdev(values) if len(values) > 1 else None)
    return out


# --- comparison ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ComparedPoint:
    """One search-front trial: its search value and, when refined, the refined mean ± sd over `n` seeds.

    `refined_front` is True/False when refined (on the front of the refined points or not), None otherwise.
    """

    trial: int
    params_pct: float
    search_metric: float
    refined_mean: float | None = None
    refined_sd: float | None = None
    refined_n: int = 0
    refined_front: bool | None = None

    @property
    def delta(self) -> float | None:
        """Refined mean minus search value (None when not refined)."""
        return None if self.refined_mean is None else self.refined_mean - self.search_metric

    def to_dict(self) -> dict[str, Any]:
        return {"trial": self.trial, "params_pct": self.params_pct, "search_metric": self.search_metric,
                "refined_mean": self.refined_mean, "refined_sd": self.refined_sd, "refined_n": self.refined_n,
                "refined_delta": self.delta, "refined_front": self.refined_front}


@dataclass(frozen=True)
class Comparison:
    """The search front next to its refined values.

    - `points`: search-front trials, cheapest first (the search front's order);
    - `swaps`: pairs `(a, b)` of refined trials whose order by metric flips: the search ranked `b`
      above `a`, the refined means rank `a` above `b` ("above" = better in the metric's direction);
    - `dropped`: search-front trials that are not Pareto-optimal among the refined points (another
      refined trial has at most their params and an equal or better refined mean);
    - `refined`: how many search-front trials have refined values.
    """

    points: list[ComparedPoint]
    swaps: list[tuple[int, int]] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)

    @property
    def refined(self) -> int:
        return sum(p.refined_n > 0 for p in self.points)

    @property
    def reorders(self) -> bool:
        """True when the refined values reorder the search front (a swap, or a point falls off the front)."""
        return bool(self.swaps or self.dropped)

    def note(self, limit: int = 4) -> str:
        """One line for people: whether (and how) the refined front reorders the search front."""
        if not self.refined:
            return "no trial of the search front is refined yet; run `autopeft refine`"
        if not self.reorders:
            return "the refined values keep the search front's order"
        parts = []
        if self.swaps:
            shown = ", ".join(f"#{a} above #{b}" for a, b in self.swaps[:limit])
            more = f" and {len(self.swaps) - limit} more" if len(self.swaps) > limit else ""
            parts.append(f"{len(self.swaps)} pair(s) swap order by metric ({shown}{more})")
        if self.dropped:
            parts.append("no longer Pareto-optimal: " + ", ".join(f"#{n}" for n in self.dropped))
        return "the refined front reorders the search front: " + "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"points": [p.to_dict() for p in self.points], "swaps": [list(s) for s in self.swaps],
                "dropped": list(self.dropped), "refined": self.refined, "reorders": self.reorders, "note": self.note()}


def compare(front: Sequence[tuple[int, float, float]], refined: Mapping[int, RefinedValue],
            maximize: bool = True) -> Comparison:
    """Compare a search front `[(trial, metric, params_pct)]` with refined values by source trial.

    Only refined trials take part in `swaps` and `dropped`. A swap needs strict orders on both sides
    (ties are not swaps); a refined tie with a cheaper trial drops the costlier one from the front.
    `maximize` is False for a minimised metric (lower is better on both sides).
    """
    sign = 1.0 if maximize else -1.0
    ordered = sorted(front, key=lambda f: (f[2], -sign * f[1], f[0]))
    done = [f for f in ordered if f[0] in refined]
    on_front = {done[i][0] for i in pareto_indices([(refined[t].mean, pct) for t, _, pct in done], maximize)}
    points = []
    for trial, metric, pct in ordered:
        value = refined.get(trial)
        points.append(ComparedPoint(trial=trial, params_pct=pct, search_metric=metric) if value is None else
                      ComparedPoint(trial=trial, params_pct=pct, search_metric=metric, refined_mean=value.mean,
                                    refined_sd=value.sd, refined_n=value.n, refined_front=trial in on_front))
    swaps = []
    for i, (a, metric_a, _) in enumerate(done):
        for b, metric_b, _ in done[i + 1:]:
            for x, mx, y, my in ((a, metric_a, b, metric_b), (b, metric_b, a, metric_a)):
                if sign * mx < sign * my and sign * refined[x].mean > sign * refined[y].mean:
                    swaps.append((x, y))
    dropped = [t for t, _, _ in done if t not in on_front]
    return Comparison(points=points, swaps=swaps, dropped=dropped)


# --- reading a linked study ----------------------------------------------------------------------
@dataclass(frozen=True)
class Refinement:
    """A linked study as read from the storage: its attrs and the aggregated values per source trial."""

    name: str
    source: str
    fidelity: dict[str, Any]
    seeds: list[int]
    metric: str
    split: str
    values: dict[int, RefinedValue]
    complete: int  # completed runs
    failed: int  # failed runs
    maximize: bool = True  # the metric's direction (the linked study's first direction)

    def describe(self) -> str:
        """e.g. ``dev_accuracy on the dev set, 5 seeds, train_size all, max_steps none, epochs 1.0``."""
        f = self.fidelity
        where = "the dev set" if self.split == "dev" else "the held-out split (the task has no dev set)"
        return (f"{self.metric} on {where}, {len(self.seeds)} seed(s), train_size {f.get('train_size') or 'all'}, "
                f"max_steps {f.get('max_steps') or 'none'}, epochs {f.get('epochs')}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "fidelity": self.fidelity, "seeds": self.seeds,
                "metric": self.metric, "split": self.split, "complete": self.complete, "failed": self.failed,
                "description": self.describe()}
