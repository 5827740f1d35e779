"""Space-filling feasible start-up designs over a discrete search space.

A scrambled Sobol sequence (Owen 1998) over the unit cube of index space is mapped to configurations
(each choice an equal-width cell), infeasible points are rejected (topped up with repaired random
draws when the feasible share is small), and a greedy maximin subset (Johnson, Moore & Ylvisaker
1990) is kept: each next point is the candidate farthest, in feature space, from those already
chosen. Features include the log-scaled parameter share, so the design spreads over the cost axis
of the Pareto front as well as over the configuration itself.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from autopeft.optim._encoding import SpaceEncoding
from autopeft.optim._feasibility import Feasibility


def sobol_indices(encoding: SpaceEncoding, n: int, seed: int) -> np.ndarray:
    """``n x d`` index vectors from a scrambled Sobol sequence (deterministic for a seed)."""
    engine = torch.quasirandom.SobolEngine(dimension=encoding.d, scramble=True, seed=seed)
    return encoding.from_unit(engine.draw(n, dtype=torch.float64).numpy())


def greedy_maximin(X: np.ndarray, n: int, first: int = 0) -> list[int]:
    """Indices of ``n`` rows of ``X`` (``m x D``) chosen greedily to maximise the minimum distance."""
    if len(X) == 0:
        return []
    chosen = [first]
    dist = np.linalg.norm(X - X[first], axis=1)
    while len(chosen) < min(n, len(X)):
        nxt = int(np.argmax(dist))
        if dist[nxt] <= 0:
            break
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(X - X[nxt], axis=1))
    return chosen


def feasible_design(encoding: SpaceEncoding, feasibility: Feasibility, n: int, seed: int,
                    features: Callable[[np.ndarray], np.ndarray], pool: int = 1024) -> np.ndarray:
    """``m x d`` (m <= n) distinct feasible configurations spread over the space (see module docstring)."""
    rng = np.random.default_rng(seed)
    Z = sobol_indices(encoding, pool, seed)
    Z = Z[feasibility.feasible(Z)]
    keys, rows = set(), []
    for z, k in zip(Z, feasibility.plan_keys(Z), strict=True):
        if k not in keys:
            keys.add(k)
            rows.append(z)
    want = max(4 * n, 64)
    if len(rows) < want:
        extra = feasibility.random_feasible(rng, want - len(rows), exclude=keys)
        rows.extend(extra)
    if not rows:
        return np.zeros((0, encoding.d), dtype=np.int64)
    Z = np.array(rows, dtype=np.int64)
    return Z[greedy_maximin(features(Z), n)]
