"""`make_sampler`: the one way to build a sampler by name for an autopeft study.

Studies have two objectives, directions ``[metric (maximize or minimize), minimize params_pct]``, and every trial's
values are ``(metric, params_pct)``. Every sampler returned proposes only valid configurations within
the budget, and none that the study has already evaluated, failed or is running.

| name | what |
|---|---|
| ``mobo`` (default) | `MoboSampler`: GP on the metric, exact params, qLogNEHVI, discrete local search |
| ``autopeft`` | `AutoPeftSampler`: the AutoPEFT paper's recipe (SAAS GP on both objectives, qNEHVI, q=4) |
| ``botorch`` | optuna-integration `BoTorchSampler` with `qnehvi_candidates_func`, wrapped feasible |
| ``gp`` | Optuna's `GPSampler`, wrapped feasible |
| ``tpe`` | Optuna's multivariate `TPESampler`, wrapped feasible |
| ``nsga2`` | Optuna's `NSGAIISampler` (population = max(10, n_startup_trials)), wrapped feasible |
| ``random`` | Optuna's `RandomSampler`, wrapped feasible |
"""

from __future__ import annotations

import warnings

import optuna
from optuna.samplers import BaseSampler

from autopeft.optim._autopeft import AutoPeftSampler
from autopeft.optim._feasible_sampler import FeasibleSampler
from autopeft.optim._mobo import MoboSampler
from autopeft.search_spaces.space import SearchSpace

SAMPLER_NAMES = ("mobo", "autopeft", "botorch", "gp", "tpe", "nsga2", "random")


def make_sampler(name: str, space: SearchSpace, *, budget_pct: float | None, max_params: int | None = None,
                 metric_reference: float = 0.0, n_startup_trials: int = 8, surrogate: str = "gp",
                 seed: int | None = None, multi_fidelity: bool = False) -> BaseSampler:
    """A sampler for a two-objective autopeft study over ``space`` (see the module table).

    Args:
        name: one of `SAMPLER_NAMES`.
        space: the search space bound to the model (`autopeft.search_spaces.load_space`).
        budget_pct: largest trainable-parameter share, % of the model (None: only ``max_params``).
        max_params: largest trainable-parameter count (None: only ``budget_pct``); both apply if set.
        metric_reference: metric coordinate of the fixed hypervolume reference point (a floor when the study
            maximises its metric, a ceiling when it minimises it).
        n_startup_trials: trials before a model is used (space-filling design for ``mobo``).
        surrogate: metric surrogate of ``mobo``: ``gp`` or ``saas``.
        seed: makes proposals reproducible (None = random).
        multi_fidelity: ``mobo`` only: rung results of successive halving become low-fidelity observations.
    Raises:
        ValueError: an unknown name or surrogate, or no budget at all.
    """
    if name not in SAMPLER_NAMES:
        raise ValueError(f"sampler: expected one of {', '.join(SAMPLER_NAMES)}, got {name!r}")
    if surrogate not in ("gp", "saas"):
        raise ValueError(f"surrogate: expected gp or saas, got {surrogate!r}")
    budget = {"budget_pct": budget_pct, "max_params": max_params}
    if name == "mobo":
        return MoboSampler(space, **budget, metric_reference=metric_reference, n_startup_trials=n_startup_trials,
                           surrogate=surrogate, seed=seed, multi_fidelity=multi_fidelity)  # type: ignore[arg-type]
    if name == "autopeft":
        return AutoPeftSampler(space, **budget, metric_reference=metric_reference, n_startup_trials=n_startup_trials,
                               seed=seed)
    inner, max_draws = _baseline(name, n_startup_trials, seed)
    return FeasibleSampler(inner, space, **budget, max_draws=max_draws, seed=seed)


def _baseline(name: str, n_startup_trials: int, seed: int | None) -> tuple[BaseSampler, int]:
    """The inner Optuna sampler and how many draws the wrapper may ask of it per proposal."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed), 64
        if name == "tpe":
            return optuna.samplers.TPESampler(n_startup_trials=n_startup_trials, multivariate=True, seed=seed), 32
        if name == "nsga2":
            return optuna.samplers.NSGAIISampler(population_size=max(10, n_startup_trials), seed=seed), 32
        if name == "gp":
            return optuna.samplers.GPSampler(n_startup_trials=n_startup_trials, seed=seed), 4
        from optuna_integration import BoTorchSampler
        from optuna_integration.botorch import qnehvi_candidates_func

        return BoTorchSampler(candidates_func=qnehvi_candidates_func, n_startup_trials=n_startup_trials,
                              seed=seed), 3
