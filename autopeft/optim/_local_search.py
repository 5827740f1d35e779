"""Acquisition optimisation over a discrete space by batched best-improvement hill climbing.

AutoPEFT (Zhou et al., TACL 2024) optimises its acquisition over the binary/integer space directly,
by local search over one-exchange neighbours rather than by rounding a continuous optimum (rounding
is known to mislead the acquisition: Daulton et al., "Bayesian Optimization over Discrete and Mixed
Spaces via Probabilistic Reparameterization", NeurIPS 2022). Here every start climbs at once: in each round, all
admissible neighbours of all current points are scored in one batched acquisition call, each start
moves to its best neighbour if that improves on it, and the search stops when no start moves or the
evaluation budget is spent. Starts that are not admissible themselves (e.g. Pareto-optimal points
that were already evaluated) have score -inf, so they always move to their best admissible neighbour.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Score = Callable[[np.ndarray], np.ndarray]  # n x d index vectors → n scores
Neighbours = Callable[[np.ndarray], np.ndarray]  # d → k x d
Admissible = Callable[[np.ndarray], np.ndarray]  # n x d → n booleans
Keys = Callable[[np.ndarray], list[bytes]]  # n x d → n keys (equal for identical configurations)


@dataclass(frozen=True)
class SearchResult:
    """Best admissible configuration found (``d`` index vector, or None), its score, and the work done."""

    z: np.ndarray | None
    score: float
    evaluations: int
    rounds: int


def local_search(score: Score, starts: np.ndarray, neighbours: Neighbours, admissible: Admissible, keys: Keys,
                 *, max_evals: int = 1500, max_rounds: int = 50) -> SearchResult:
    """Maximise ``score`` over admissible configurations reachable from ``starts`` (``s x d``)."""
    best_z, best = None, -np.inf
    cache: dict[bytes, float] = {}
    evals = 0

    def consider(Z: np.ndarray) -> np.ndarray:
        nonlocal best_z, best, evals
        values = np.asarray(score(Z), dtype=np.float64)
        evals += len(Z)
        for z, k, v in zip(Z, keys(Z), values, strict=True):
            cache[k] = v
            if v > best:
                best_z, best = z.copy(), float(v)
        return values

    starts = np.atleast_2d(np.asarray(starts, dtype=np.int64))
    current = starts.copy()
    current_score = np.full(len(starts), -np.inf)
    ok = admissible(starts) if len(starts) else np.zeros(0, dtype=bool)
    if ok.any():
        current_score[ok] = consider(starts[ok])
    active = np.ones(len(starts), dtype=bool)
    rounds = 0
    while active.any() and evals < max_evals and rounds < max_rounds:
        rounds += 1
        batch, owner = [], []
        pending: set[bytes] = set()
        for i in np.flatnonzero(active):
            N = neighbours(current[i])
            if len(N):
                N = N[admissible(N)]
            for z, k in zip(N, keys(N), strict=True):
                if k not in cache and k not in pending:
                    pending.add(k)
                    batch.append(z)
                    owner.append(i)
        if not batch:
            # Neighbours already scored: move to the best cached one if it improves, else stop.
            break
        budget = max_evals - evals
        B, owner_arr = np.array(batch[:budget]), np.array(owner[:budget])
        values = consider(B)
        moved = np.zeros(len(starts), dtype=bool)
        for i in np.unique(owner_arr):
            mine = np.flatnonzero(owner_arr == i)
            j = mine[np.argmax(values[mine])]
            if values[j] > current_score[i]:
                current[i], current_score[i] = B[j], values[j]
                moved[i] = True
        active &= moved
    return SearchResult(z=best_z, score=best, evaluations=evals, rounds=rounds)
