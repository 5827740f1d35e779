"""A minimised metric (eval_loss, perplexity) is ranked the other way round everywhere.

Each ranking function given the negated metric and ``maximize=False`` must give exactly what it gives
for the metric maximised: the same front, the same hypervolume, the same promotion decisions, the
same refinement verdicts and, for the samplers, the same proposals trial by trial.
"""

from __future__ import annotations

import random
import warnings

import optuna
import pytest
from optuna.trial import TrialState

from autopeft.objective import Objective, stored_objective
from autopeft.optim import make_sampler
from autopeft.optim.synthetic import SyntheticPeft
from autopeft.pareto import hypervolume, hypervolume_history, pareto_indices
from autopeft.promotion import decide, rank_order
from autopeft.refine_compare import RefinedValue, aggregate, compare
from autopeft.search_spaces import load_space, structure_of
from autopeft.workers.metrics import metric_direction, uniform_prediction_value
from tests.models import TINY_CONFIGS

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _points(seed: int, n: int = 40) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    return [(round(rng.random(), 2), round(rng.random() * 5, 1)) for _ in range(n)]


def _negated(points):
    return [(-m, p) for m, p in points]


@pytest.mark.parametrize("seed", range(4))
def test_front_and_hypervolume_of_a_minimised_metric_mirror_the_maximised_one(seed):
    points = _points(seed)
    loss = _negated(points)  # a "loss": lower is better
    assert pareto_indices(loss, maximize=False) == pareto_indices(points)
    assert hypervolume(loss, (-0.2, 4.0), maximize=False) == pytest.approx(hypervolume(points, (0.2, 4.0)))
    assert hypervolume_history(loss, (-0.2, 4.0), maximize=False) == pytest.approx(
        hypervolume_history(points, (0.2, 4.0)))
    # and the minimised front really is the lower-left one
    front = [loss[i] for i in pareto_indices(loss, maximize=False)]
    assert all(not any(m2 <= m and p2 <= p and (m2, p2) != (m, p) for m2, p2 in loss) for m, p in front)


def test_hypervolume_of_a_minimised_metric_counts_only_points_below_the_ceiling():
    # losses 2.0 at 1 % and 1.0 at 3 %, ceiling 3.0, budget 4 %: (3 - 1)·(3 - 1)... as a staircase:
    # [1, 3) % at height 3 - 2 = 1, [3, 4) % at height 3 - 1 = 2 → 2 + 2 = 4
    assert hypervolume([(2.0, 1.0), (1.0, 3.0), (3.5, 0.5)], (3.0, 4.0), maximize=False) == pytest.approx(4.0)
    assert hypervolume([(3.5, 0.5)], (3.0, 4.0), maximize=False) == 0.0


def test_promotion_ranks_a_minimised_metric_lowest_first():
    points = _points(7, 12)
    assert rank_order(_negated(points), maximize=False) == rank_order(points)
    recorded = [(2.0, 1.0), (3.0, 1.0), (4.0, 1.0)]
    assert decide((1.0, 1.0), recorded, eta=2, maximize=False).rank == 1
    assert decide((1.0, 1.0), recorded, eta=2).rank == 4  # maximised, the lowest value is the worst


def _refined(values: dict[int, float]) -> dict[int, RefinedValue]:
    return aggregate((t, 0, v) for t, v in values.items())


def test_refinement_swaps_and_drops_follow_the_metric_direction():
    front = [(1, 0.70, 0.1), (2, 0.80, 0.5), (3, 0.90, 1.0)]
    refined = {1: 0.85, 2: 0.80, 3: 0.95}
    up = compare(front, _refined(refined))
    down = compare([(t, -m, p) for t, m, p in front], _refined({t: -v for t, v in refined.items()}), maximize=False)
    assert (down.swaps, down.dropped) == (up.swaps, up.dropped)
    assert up.swaps == [(1, 2)] and up.dropped == [2]


def test_objective_knows_its_direction_and_reads_old_studies():
    loss = Objective("eval_loss", "minimize", 10.0)
    assert loss.best([3.0, 1.5, 2.0]) == 1.5 and loss.better(1.0, 2.0) and loss.arrow == "↓"
    assert Objective("accuracy").best([0.5, 0.9]) == 0.9
    assert stored_objective(None, {"objectives": {"metric": "auto", "metric_floor": 0.4}}, "MAXIMIZE") == \
        Objective("auto", "maximize", 0.4)
    assert stored_objective(loss.to_dict(), None, "MAXIMIZE") == loss
    with pytest.raises(ValueError, match="expected maximize or minimize"):
        Objective("x", "down")
    assert metric_direction("eval_loss") == metric_direction("dev_perplexity") == "minimize"
    assert metric_direction("dev_accuracy") == "maximize"
    assert uniform_prediction_value("eval_loss", 1000) == pytest.approx(6.9078, abs=1e-4)


@pytest.fixture(scope="module")
def space():
    return load_space("autopeft", structure_of(TINY_CONFIGS["bert"]()))


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("name", ["mobo", "autopeft", "tpe", "nsga2", "random"])
def test_samplers_propose_the_same_for_a_minimised_loss_as_for_the_maximised_metric(name, space):
    """The loss is the synthetic metric negated, the reference its negated floor: every proposal must match."""
    problem = SyntheticPeft(space, seed=0)
    trials = {"mobo": 6, "autopeft": 6}.get(name, 10)
    proposals = {}
    for direction, sign in (("maximize", 1.0), ("minimize", -1.0)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sampler = make_sampler(name, space, budget_pct=3.0, metric_reference=sign * 0.5, n_startup_trials=3, seed=1)
            study = optuna.create_study(directions=[direction, "minimize"], sampler=sampler)
            for i in range(trials):
                trial = study.ask()
                plan = space.suggest(trial)
                if i == 2:
                    study.tell(trial, state=TrialState.FAIL)
                    continue
                study.tell(trial, [sign * problem.evaluate(plan.to_dict()), space.count(plan).pct])
        proposals[direction] = [t.params for t in study.trials]
    assert proposals["minimize"] == proposals["maximize"]
