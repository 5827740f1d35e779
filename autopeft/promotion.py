"""Multi-objective asynchronous successive halving: which configuration goes on to the next rung.

Pure functions, no study or worker here (the runner applies them), and `RungResults`, the rung
results the runner has seen, kept in memory between decisions. A *rung* is a training length in
optimizer steps; `rung_steps` lays them out from the spec's full search fidelity downwards by the
reduction factor `eta`. Every configuration trains first at the lowest rung; when a rung result
arrives, the configuration is promoted to the next rung iff it ranks in the top ``ceil(n / eta)`` of
the ``n`` results recorded at that rung so far, itself included (the asynchronous "stopping" rule of
ASHA, Li et al. 2020, arXiv 1810.05934, as in Ray Tune's ``AsyncHyperBandScheduler``: a decision is
made as soon as a result arrives, so no worker waits for a rung to fill).

Ranking is multi-objective, as in MOASHA (Schmucker et al. 2021, "Multi-objective Asynchronous
Successive Halving", arXiv 2106.12639; Syne Tune's ``MOASHA``): results are sorted by non-dominated
front of (rung metric, params % ↓) — the metric maximised, or minimised with ``maximize=False`` —
and, within a front, by NSGA-II crowding distance (Deb et al. 2002), the front's two ends first;
remaining ties go to the better metric, then fewer params. The params % is exact and known before
training, so a cheap configuration with a modest metric can stay on the front and be promoted: only
the metric is a low-fidelity estimate.
"""

from __future__ import annotations

import math
from collections.abc import Container, Sequence
from dataclasses import dataclass
from typing import Any

from autopeft.pareto import Point, oriented, pareto_indices
from autopeft.store.attrs import trial_attr


def rung_steps(max_steps: int, eta: int, min_steps: int | None = None) -> list[int]:
    """Steps of each rung, lowest first: ``round(max_steps / eta**k)`` for k = K..0.

    K is the largest k with ``max_steps / eta**k >= min_steps``; `min_steps` None means
    ``max(1, max_steps / eta**2)`` (three rungs when max_steps >= eta**2). E.g. (90, 3, 10) -> [10, 30, 90]; (100, 3, 10) -> [11, 33, 100].
    """
    if eta < 2:
        raise ValueError(f"eta: expected an integer >= 2, got {eta}")
    floor = max(1.0, max_steps / eta**2) if min_steps is None else min_steps
    if not 1 <= floor <= max_steps:
        raise ValueError(f"min_steps: expected a number in [1, max_steps={max_steps}], got {floor}")
    top = 0
    while max_steps / eta ** (top + 1) >= floor - 1e-9:
        top += 1
    steps = [max(1, round(max_steps / eta**k)) for k in range(top, -1, -1)]
    return sorted(set(steps))


def crowding_distances(front: Sequence[Point]) -> list[float]:
    """NSGA-II crowding distance of each point of one front (2 objectives); the ends of each axis with any
    spread get infinity, interior points the sum of their neighbours' normalised gaps."""
    n = len(front)
    distance = [0.0] * n
    for axis in (0, 1):
        order = sorted(range(n), key=lambda i: front[i][axis])
        low, high = front[order[0]][axis], front[order[-1]][axis]
        if high == low:  # no spread along this axis (e.g. duplicates): it tells no point apart
            continue
        distance[order[0]] = distance[order[-1]] = math.inf
        for j in range(1, n - 1):
            i = order[j]
            if distance[i] != math.inf:
                distance[i] += (front[order[j + 1]][axis] - front[order[j - 1]][axis]) / (high - low)
    return distance


def rank_order(points: Sequence[Point], maximize: bool = True) -> list[int]:
    """Indices of `points` (metric, params %), best first: front by front, crowding distance descending
    within a front, then best metric, params ascending, index ascending."""
    points = oriented(points, maximize)
    remaining = list(range(len(points)))
    order: list[int] = []
    while remaining:
        front = [remaining[i] for i in pareto_indices([points[j] for j in remaining])]
        crowd = dict(zip(front, crowding_distances([points[i] for i in front]), strict=True))
        order += sorted(front, key=lambda i: (-crowd[i], -points[i][0], points[i][1], i))
        taken = set(front)
        remaining = [i for i in remaining if i not in taken]
    return order


@dataclass(frozen=True)
class Decision:
    """Whether a rung result goes on: `rank` (1 = best) among `of` results at the rung, `keep` = ceil(of / eta)."""

    promote: bool
    rank: int
    of: int
    keep: int
    reason: str | None = None  # why a configuration that ranked high enough was not promoted
    predicted: float | None = None  # ranked by the surrogate: its prediction of the top-rung metric

    def to_dict(self) -> dict[str, int | bool | str | float]:
        data: dict[str, int | bool | str | float] = {"promote": self.promote, "rank": self.rank, "of": self.of,
                                                     "keep": self.keep}
        if self.predicted is not None:
            data["predicted"] = self.predicted
        return data if self.reason is None else {**data, "reason": self.reason}


def decide(candidate: Point, recorded: Sequence[Point], eta: int, maximize: bool = True) -> Decision:
    """Promote `candidate` iff it ranks in the top ceil(n / eta) of `recorded` + itself (n results).

    `recorded` holds the other results at the same rung (metric, params %), in any order; the
    candidate loses ties against equal earlier results (it is ranked last among equals).
    """
    points = [*recorded, candidate]
    order = rank_order(points, maximize)
    rank = order.index(len(points) - 1) + 1
    keep = math.ceil(len(points) / eta)
    return Decision(promote=rank <= keep, rank=rank, of=len(points), keep=keep)


class RungResults:
    """Every rung result of a study known to this process: (rung metric, params %) by rung and trial number.

    `update` reads trials incrementally: each trial once it is finished (its `rungs` no longer change), and
    again at each update only while it is unfinished (another process's trial climbing the ladder), plus
    the trials that are new since the last update. `add` records this process's own results as they come.
    """

    def __init__(self) -> None:
        self._points: dict[int, dict[int, list[Point]]] = {}  # rung -> trial number -> its results there
        self._open: set[int] = set()  # trials unfinished (or kept by the caller) when last seen: read again
        self._seen = 0  # every trial numbered below this was seen once
        self.reads = 0  # trials whose attributes were read, over every update (for tests)

    def add(self, number: int, rung: int, point: Point) -> None:
        """Record trial `number`'s result at `rung`."""
        self._points.setdefault(rung, {}).setdefault(number, []).append(point)

    def numbers(self, rung: int, exclude: int | None = None) -> list[int]:
        """The trials with a result at `rung`, by number, leaving out trial `exclude`."""
        return [n for n in sorted(self._points.get(rung, {})) if n != exclude]

    def at(self, rung: int, exclude: int | None = None) -> list[Point]:
        """The results at `rung`, by trial number, leaving out trial `exclude`'s."""
        results = self._points.get(rung, {})
        return [p for n in sorted(results) if n != exclude for p in results[n]]

    def update(self, trials: Sequence[Any], keep: Container[int] = ()) -> None:
        """Read the trials not seen yet or unfinished when last seen (`trials`: a study's `FrozenTrial`s by
        number, as `Study.get_trials` returns them). Trials in `keep` are not read: the caller `add`s their
        results itself (this process's running trials); they are read once after they leave `keep`."""
        end = trials[-1].number + 1 if trials else 0
        contiguous = end == len(trials)  # Optuna numbers a study's trials 0, 1, ...: the dict is only a guard
        by_number: Any = trials if contiguous else {t.number: t for t in trials}
        for number in [*sorted(self._open), *range(self._seen, end)]:
            if number in keep:
                self._open.add(number)
                continue
            trial = by_number[number] if contiguous else by_number.get(number)
            if trial is None:
                continue
            self._read(trial)
            if trial.state.is_finished():
                self._open.discard(number)
            else:
                self._open.add(number)
        self._seen = max(self._seen, end)

    def _read(self, trial: Any) -> None:
        self.reads += 1
        for results in self._points.values():
            results.pop(trial.number, None)
        for entry in trial_attr(trial.user_attrs, "rungs", ()):
            self.add(trial.number, entry["rung"], (entry["metric"], trial.user_attrs["params_pct"]))
