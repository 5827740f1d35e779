"""Shared bookkeeping of autopeft's own samplers: space, budget, encoding, history, hand-out checks.

Subclasses implement `_propose(study, trial, history, rng) -> index vector`; this base class turns
the study into a `History`, guarantees the hard constraints on what is handed out (valid, within
budget, never a configuration already evaluated, failed or pending; checked once more through
`SearchSpace` itself), and falls back to a random feasible configuration if a proposal breaks them.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import optuna
import torch
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial

from autopeft.optim._acquisition import PctScale
from autopeft.optim._encoding import SpaceEncoding
from autopeft.optim._feasibility import Feasibility
from autopeft.optim._history import History, read_history
from autopeft.search_spaces.space import SearchSpace

logger = logging.getLogger(__name__)



def metric_sign(study: optuna.Study) -> float:
    """+1 when the study maximises its metric, -1 when it minimises it; `ValueError` for a study that is not
    two-objective with params % minimised."""
    directions = list(study.directions)
    if len(directions) != 2 or directions[1] != StudyDirection.MINIMIZE:
        raise ValueError("expected a study with directions [metric (maximize or minimize), minimize params %], got "
                         f"{[d.name.lower() for d in directions]}")
    return 1.0 if directions[0] == StudyDirection.MAXIMIZE else -1.0


@contextlib.contextmanager
def single_torch_thread() -> Iterator[None]:
    """Run the surrogate's small linear algebra (n x n, n in the hundreds at most) on one torch thread.

    On a shared 2-core machine, torch's default of one thread per core collapses when other
    processes (trainers, Ray workers) use the cores too: a proposal took 12-30 s with 2 threads and
    2-4 s with 1 under the same load (measured); unloaded, the two are within noise. The previous
    setting is restored, so in-process training keeps its threads.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class SpaceExhaustedWarning(UserWarning):
    """Every feasible configuration has been evaluated; a repeat is proposed."""


def pareto_mask(metric: np.ndarray, pct: np.ndarray) -> np.ndarray:
    """``n`` booleans: not dominated (higher metric, lower pct) by another point. O(n^2), n is small."""
    n = len(metric)
    mask = np.ones(n, dtype=bool)
    for i in range(n):
        better = (metric >= metric[i]) & (pct <= pct[i]) & ((metric > metric[i]) | (pct < pct[i]))
        mask[i] = not better.any()
    return mask


class AutopeftSamplerBase(BaseSampler):
    """Bookkeeping common to `MoboSampler` and `AutoPeftSampler` (see module docstring)."""

    #: training steps of the top rung, for samplers that read rung results (None: read from the study)
    top_steps: int | None = None

    def __init__(self, space: SearchSpace, *, budget_pct: float | None, max_params: int | None = None,
                 metric_reference: float = 0.0, n_startup_trials: int = 8, seed: int | None = None):
        if n_startup_trials < 1:
            raise ValueError(f"n_startup_trials: expected a positive integer, got {n_startup_trials}")
        self.space = space
        self.encoding = SpaceEncoding(space)
        self.feasibility = Feasibility(space, self.encoding, budget_pct, max_params)
        self.metric_reference = float(metric_reference)
        self._sign = 1.0  # the study's metric direction, read from the study at every proposal
        self.n_startup_trials = int(n_startup_trials)
        self._seed = int(np.random.SeedSequence().entropy % 2**31) if seed is None else int(seed)
        self._random = RandomSampler(seed=self._seed)
        self._distributions = space.distributions()
        (plan, smallest), _ = space.param_range()
        if smallest.params == 0:
            raise ValueError(f"space {space.name!r}: expected a smallest configuration with trainable parameters, got "
                             f"0 for {plan.summary()} on {space.structure.model_type}; pick another target group or space")
        self.scale = PctScale(low=smallest.pct, high=max(self.budget_pct, smallest.pct))

    # --- public facts ------------------------------------------------------------------------------
    @property
    def budget_pct(self) -> float:
        """The effective budget as % of the model (the tighter of the % and absolute bounds)."""
        return self.feasibility.effective_budget_pct

    @property
    def reference_point(self) -> tuple[float, float]:
        """``(sign * metric_reference, -budget_pct)`` in maximisation form (a floor, or a negated ceiling)."""
        return (self._sign * self.metric_reference, -self.budget_pct)

    # --- Optuna sampler interface ---------------------------------------------------------------------
    def reseed_rng(self) -> None:
        self._seed = int(np.random.SeedSequence().entropy % 2**31)
        self._random.reseed_rng()

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return dict(self._distributions)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if set(search_space) != set(self._distributions):
            return {}
        fixed = trial.system_attrs.get("fixed_params", {})
        if set(self._distributions) <= set(fixed):
            return {}  # an enqueued configuration (e.g. a retry): nothing to propose
        self._sign = metric_sign(study)
        history = read_history(study, self.encoding, self.feasibility, exclude_number=trial.number, sign=self._sign,
                               top_steps=self.top_steps)
        rng = np.random.default_rng([self._seed, trial.number])
        with single_torch_thread():
            z = self._propose(study, trial, history, rng)
        return self._hand_out(z, history, rng)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        # Only parameters outside the space reach here (e.g. a user objective's extra parameter).
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    # --- to implement -------------------------------------------------------------------------------
    def _propose(self, study: optuna.Study, trial: FrozenTrial, history: History,
                 rng: np.random.Generator) -> np.ndarray | None:
        raise NotImplementedError

    # --- helpers ------------------------------------------------------------------------------------
    def admissible(self, Z: np.ndarray, seen: set[bytes]) -> np.ndarray:
        """``n`` booleans: feasible and not among ``seen`` plan keys."""
        Z = np.atleast_2d(Z)
        if len(Z) == 0:
            return np.zeros(0, dtype=bool)
        ok = self.feasibility.feasible(Z)
        if seen:
            keys = self.feasibility.plan_keys(Z)
            ok &= np.array([k not in seen for k in keys])
        return ok

    def features(self, Z: np.ndarray) -> np.ndarray:
        """``n x (D + 1)`` surrogate inputs: the encoding's features and the log-scaled params share."""
        Z = np.atleast_2d(Z)
        pct_feature = self.scale.to_feature(self.feasibility.pct(Z))[:, None]
        return np.concatenate([self.encoding.features(Z), pct_feature], axis=1)

    def pareto_configs(self, history: History) -> np.ndarray:
        """``k x d`` observed configurations on the (oriented metric ↑, exact pct ↓) front, within the budget."""
        if history.n_done == 0:
            return np.zeros((0, self.encoding.d), dtype=np.int64)
        pct = self.feasibility.pct(history.Z_done)
        inside = pct <= self.budget_pct
        Z, y, pct = history.Z_done[inside], history.y[inside], pct[inside]
        return Z[pareto_mask(y, pct)]

    def _hand_out(self, z: np.ndarray | None, history: History, rng: np.random.Generator) -> dict[str, Any]:
        if z is not None and self.admissible(z, history.seen)[0]:
            params = self.encoding.params(z)
            if self.feasibility.check(params):
                return params
            logger.warning("proposal failed the exact budget check; drawing a random feasible configuration")
        fallback = self.feasibility.random_feasible(rng, 1, exclude=history.seen)
        if len(fallback):
            return self.encoding.params(fallback[0])
        warnings.warn("every feasible configuration found has been evaluated; proposing a repeat",
                      SpaceExhaustedWarning, stacklevel=2)
        repeat = self.feasibility.random_feasible(rng, 1)
        if not len(repeat):
            raise ValueError(
                f"no configuration of space {self.space.name!r} fits the budget ({self.budget_pct:.4g}% of the model)"
            )
        return self.encoding.params(repeat[0])
