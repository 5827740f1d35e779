"""Pareto front and hypervolume against brute force on random points."""

from __future__ import annotations

import random

import pytest

from autopeft.pareto import hypervolume, hypervolume_history, pareto_indices


def brute_front(points):
    def dominated(i):
        m, p = points[i]
        return any((m2 >= m and p2 <= p) and (m2 > m or p2 < p) for m2, p2 in points)

    return {i for i in range(len(points)) if not dominated(i)}


def brute_hypervolume(points, reference, grid=400):
    """Area by counting grid cells dominated by some point (midpoint rule)."""
    floor, budget = reference
    top = max([m for m, _ in points] + [floor])
    if top <= floor:
        return 0.0
    dm, dp = (top - floor) / grid, budget / grid
    area = 0.0
    for a in range(grid):
        m = floor + (a + 0.5) * dm
        for b in range(grid):
            p = (b + 0.5) * dp
            if any(pm >= m and pp <= p for pm, pp in points):
                area += dm * dp
    return area


@pytest.mark.parametrize("seed", range(5))
def test_front_matches_brute_force(seed):
    rng = random.Random(seed)
    points = [(round(rng.random(), 2), round(rng.random() * 5, 1)) for _ in range(60)]
    assert set(pareto_indices(points)) == brute_front(points)
    front = pareto_indices(points)
    assert [points[i][1] for i in front] == sorted(points[i][1] for i in front)


@pytest.mark.parametrize("seed", range(3))
def test_hypervolume_matches_grid_estimate(seed):
    rng = random.Random(seed)
    points = [(rng.random(), rng.random() * 5) for _ in range(15)]
    reference = (0.2, 4.0)
    assert hypervolume(points, reference) == pytest.approx(brute_hypervolume(points, reference), rel=0.03)


def test_hypervolume_values_and_history():
    points = [(0.5, 1.0), (0.7, 2.0), (0.6, 3.0), (0.8, 0.5), (0.9, 4.0), (0.95, 6.0)]
    # (0.8, 0.5) covers [0.5, 4) at height 0.8, (0.9, 4.0) covers [4, 5) at 0.9; (0.95, 6) is over budget.
    assert hypervolume(points, (0.0, 5.0)) == pytest.approx(3.5 * 0.8 + 1.0 * 0.9)
    history = hypervolume_history(points, (0.0, 5.0))
    assert history == pytest.approx([hypervolume(points[: k + 1], (0.0, 5.0)) for k in range(len(points))])
    assert history == sorted(history)
    assert hypervolume([(0.1, 1.0)], (0.2, 5.0)) == 0.0
