"""`FeasibleSampler`: makes any Optuna sampler propose only valid, in-budget, new configurations.

Baselines (random, TPE, NSGA-II, Optuna's GP, optuna-integration's BoTorch) know nothing of the
parameter budget or of which configurations are buildable. Wrapping them keeps their behaviour but
wastes no trial: the wrapper samples the *whole* space in `sample_relative` by asking the inner
sampler for a complete configuration (its own relative sample, then its independent samples for the
rest), and draws again until the configuration is feasible (valid, within the budget) and not one
already evaluated, failed or pending. After ``max_draws`` rejected draws it repairs the last one
(random one-step shrinking until it fits; see `Feasibility.repair`) and, if that fails too, takes a
uniformly random feasible configuration. ``before_trial`` / ``after_trial`` are forwarded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.trial import FrozenTrial, TrialState

from autopeft.optim._encoding import SpaceEncoding
from autopeft.optim._feasibility import Feasibility
from autopeft.optim._history import read_history
from autopeft.search_spaces.space import SearchSpace


class FeasibleSampler(BaseSampler):
    """Wrap ``inner`` so that it only proposes feasible, not yet seen configurations of ``space``.

    Args:
        inner: any Optuna sampler.
        space: the search space; budget_pct / max_params: the hard budget.
        max_draws: draws from ``inner`` per proposal before repairing (keep low for samplers that
            refit a model on every draw).
        seed: seeds the repair and the random fallback.
    """

    def __init__(self, inner: BaseSampler, space: SearchSpace, *, budget_pct: float | None,
                 max_params: int | None = None, max_draws: int = 64, seed: int | None = None):
        if max_draws < 1:
            raise ValueError(f"max_draws: expected a positive integer, got {max_draws}")
        self.inner = inner
        self.space = space
        self.encoding = SpaceEncoding(space)
        self.feasibility = Feasibility(space, self.encoding, budget_pct, max_params)
        self.max_draws = max_draws
        self._seed = int(np.random.SeedSequence().entropy % 2**31) if seed is None else int(seed)
        self._random = RandomSampler(seed=self._seed)
        self._distributions = space.distributions()
        #: per proposal: how many inner draws were needed, and whether it was repaired or replaced
        self.stats: dict[str, int] = {"proposals": 0, "draws": 0, "repaired": 0, "replaced": 0}

    def __str__(self) -> str:
        return f"FeasibleSampler({self.inner})"

    def reseed_rng(self) -> None:
        self._seed = int(np.random.SeedSequence().entropy % 2**31)
        self.inner.reseed_rng()
        self._random.reseed_rng()

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return dict(self._distributions)

    def _draw(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
        inner_space = self.inner.infer_relative_search_space(study, trial)
        relative = self.inner.sample_relative(study, trial, inner_space) if inner_space else {}
        params = {}
        for name, dist in self._distributions.items():
            if name in relative:
                params[name] = relative[name]
            else:
                params[name] = self.inner.sample_independent(study, trial, name, dist)
        return params

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if set(search_space) != set(self._distributions):
            return {}
        fixed = trial.system_attrs.get("fixed_params", {})
        if set(self._distributions) <= set(fixed):
            return {}
        history = read_history(study, self.encoding, self.feasibility, exclude_number=trial.number)
        rng = np.random.default_rng([self._seed, trial.number])
        self.stats["proposals"] += 1
        z = None
        for _ in range(self.max_draws):
            self.stats["draws"] += 1
            z = self.encoding.try_index(self._draw(study, trial))
            if z is not None and self._admissible(z, history.seen):
                return self.encoding.params(z)
        if z is not None:
            fixed_z = self.feasibility.repair(z, rng)
            if fixed_z is not None and self._admissible(fixed_z, history.seen):
                self.stats["repaired"] += 1
                return self.encoding.params(fixed_z)
        self.stats["replaced"] += 1
        pick = self.feasibility.random_feasible(rng, 1, exclude=history.seen)
        if not len(pick):
            pick = self.feasibility.random_feasible(rng, 1)
        if not len(pick):
            raise ValueError(f"no configuration of space {self.space.name!r} fits the budget")
        return self.encoding.params(pick[0])

    def _admissible(self, z: np.ndarray, seen: set[bytes]) -> bool:
        return bool(self.feasibility.feasible(z)[0]) and self.feasibility.plan_keys(z)[0] not in seen

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.inner.before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self.inner.after_trial(study, trial, state, values)
