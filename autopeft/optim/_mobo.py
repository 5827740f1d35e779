"""`MoboSampler`: autopeft's default multi-objective Bayesian optimiser, on BoTorch inside Optuna.

Objectives: the task metric (maximised or minimised, as the study says; modelled in maximisation form,
``sign * metric``), and trainable parameters (% of the model), minimised.

1. Start-up (fewer than ``n_startup_trials`` observations): a space-filling feasible design
   (scrambled Sobol, rejection of infeasible points, greedy maximin; `_design`) spread first along
   the log params share, then over the configuration, handed out in order.
2. Then each proposal:
   - a GP surrogate of the metric only (`SingleTaskGP`, or SAAS with ``surrogate="saas"``) on the
     encoded configuration plus its exact log-scaled params share (``n x (D + 1)``);
   - with ``multi_fidelity=True`` and successive halving, every rung result (PRUNED, RUNNING and COMPLETE
     trials' ``rungs``) is an observation too: the GP becomes the fidelity-aware one of `_fidelity` (the
     training steps, log-scaled to 1 at the top rung, as one more input) and candidates are scored at
     the top fidelity;
   - the params share is computed exactly for every candidate, never modelled;
   - qLogNEHVI over the fixed reference point ``(metric reference, budget_pct)``, with the configurations
     of RUNNING/WAITING trials as pending points so that parallel proposals differ;
   - maximised over the discrete space directly: batched local search over one-exchange
     neighbours from the observed Pareto front and the best of a random feasible pool;
   - only feasible (valid, within budget) configurations are scored, and none already evaluated,
     failed or pending.

Everything random is seeded by ``(seed, trial number)``, so a study replays identically.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import optuna
import torch
from optuna.trial import FrozenTrial

from autopeft.optim._acquisition import evaluate, log_nehvi, prune_baseline
from autopeft.optim._base import AutopeftSamplerBase, metric_sign, pareto_mask, single_torch_thread
from autopeft.optim._design import feasible_design
from autopeft.optim._fidelity import at_fidelity, fit_fidelity_gp
from autopeft.optim._history import History, fidelity_feature, read_history
from autopeft.optim._local_search import local_search
from autopeft.optim._surrogate import fit_gp, fit_saas
from autopeft.search_spaces.space import SearchSpace


class MoboSampler(AutopeftSamplerBase):
    """Multi-objective BO with a computed params objective and a hard budget (see module docstring).

    Args:
        space: the search space bound to the model.
        budget_pct: largest params share (% of the model); ``max_params``: largest count. Both apply.
        metric_reference: the metric coordinate of the hypervolume reference point, in the metric's units
            (a floor for a maximised metric, a ceiling for a minimised one).
        n_startup_trials: observations from the space-filling design before the GP is used (>= 2).
        surrogate: ``gp`` (default) or ``saas``.
        seed: seeds the design, the random starts and the MC base samples.
        mc_samples: quasi-MC samples of the metric posterior in qLogNEHVI.
        max_evals: acquisition evaluations per proposal (random pool included).
        pool_size: random feasible candidates scored to pick local-search starts.
        n_starts: local-search starts taken from the pool (in addition to the Pareto front).
        refit_every: GP hyperparameters are re-optimised (warm-started L-BFGS) when the number of
            observations is a multiple of this; in between, the last ones are kept and the GP is only
            conditioned on the new data. One new point barely moves them, and the fit is the costliest
            stage after the acquisition search (0.1-0.5 s of CPU at 60 points on this machine).
        refit_fraction: with ``n`` observations, refits come every ``max(refit_every, n // refit_fraction)``
            (every 8th at 200, every 20th at 500): hyperparameters settle as data grow, while a fit's
            cost grows as ``n^3`` (1.5 s of CPU at 200 points).
        max_baseline: once qLogNEHVI's baseline (the observed configurations) has more than this many
            points, it keeps this many: those most often on the front of a posterior sample
            (`prune_baseline`; the cost of scoring a candidate grows as the baseline squared).
        multi_fidelity: use rung results (successive halving) as low-fidelity observations (`_fidelity`).
            Off by default: on the synthetic learning curves it did not beat ignoring them, at several times
            the cost per proposal (docs/benchmarks.md, "Multi-fidelity mobo"). Without rung results in the
            study the model is the plain GP either way.
        top_steps: training steps of the top rung; None reads them from the study (module `_history`).
    """

    def __init__(self, space: SearchSpace, *, budget_pct: float | None, max_params: int | None = None,
                 metric_reference: float = 0.0, n_startup_trials: int = 8, surrogate: Literal["gp", "saas"] = "gp",
                 seed: int | None = None, mc_samples: int = 32, max_evals: int = 500, pool_size: int = 128,
                 n_starts: int = 6, refit_every: int = 3, refit_fraction: int = 25, max_baseline: int = 48,
                 multi_fidelity: bool = False, top_steps: int | None = None):
        super().__init__(space, budget_pct=budget_pct, max_params=max_params, metric_reference=metric_reference,
                         n_startup_trials=max(2, n_startup_trials), seed=seed)
        if surrogate not in ("gp", "saas"):
            raise ValueError(f"surrogate: expected gp or saas, got {surrogate!r}")
        self.surrogate = surrogate
        self.mc_samples = mc_samples
        self.max_evals = max_evals
        self.pool_size = pool_size
        self.n_starts = n_starts
        self.refit_every = max(1, refit_every)
        self.refit_fraction = max(1, refit_fraction)
        self.max_baseline = max(1, max_baseline)
        self._design: np.ndarray | None = None
        self.multi_fidelity = multi_fidelity
        self.top_steps = top_steps
        self._warm: dict | None = None
        self._warm_mf: dict | None = None
        #: seconds spent in the last proposal's stages (fit, acquisition, search), for benchmarks
        self.last_timings: dict[str, float] = {}

    # --- start-up ---------------------------------------------------------------------------------
    def design(self) -> np.ndarray:
        """The start-up design (``n_startup_trials x d``), computed once per seed."""
        if self._design is None:
            self._design = feasible_design(self.encoding, self.feasibility, self.n_startup_trials, self._seed,
                                           self._design_features)
        return self._design

    def _design_features(self, Z: np.ndarray) -> np.ndarray:
        """Distances for the maximin design: the configuration (scaled by 1/sqrt(D)) and, weighted 3x, the
        log params share, so the design is first spread along the cost axis of the front."""
        enc = self.encoding.features(Z) / np.sqrt(max(self.encoding.num_features, 1))
        return np.concatenate([enc, 3.0 * self.features(Z)[:, -1:]], axis=1)

    def _propose(self, study: optuna.Study, trial: FrozenTrial, history: History,
                 rng: np.random.Generator) -> np.ndarray | None:
        if not self.multi_fidelity or self.surrogate == "saas":
            history.drop_low_fidelity()
        y_all = np.concatenate([history.y, history.y_low])
        if len(history.observed_configs()) < self.n_startup_trials or np.ptp(y_all) == 0.0:
            design = self.design()
            ok = self.admissible(design, history.seen) if len(design) else np.zeros(0, dtype=bool)
            if ok.any():
                return design[np.argmax(ok)]
            pick = self.feasibility.random_feasible(rng, 1, exclude=history.seen)
            return pick[0] if len(pick) else None
        return self._bo_candidate(history, rng, seed=int(rng.integers(2**31)))

    # --- Bayesian optimisation step ----------------------------------------------------------------
    def _inputs(self, Z: np.ndarray, fidelity: bool) -> torch.Tensor:
        """Model inputs of configurations ``Z`` at full fidelity: ``n x (D + 1)``, or ``n x (D + 2)`` with the
        fidelity column (= 1) for the fidelity-aware model."""
        X = torch.tensor(self.features(Z), dtype=torch.float64)
        return at_fidelity(X) if fidelity else X

    def _fit(self, history: History, seed: int) -> tuple[object, torch.Tensor, np.ndarray]:
        """The fitted surrogate, the baseline inputs for qLogNEHVI (``n x D'``, at full fidelity) and the
        local-search starts taken from the observations (``k x d``)."""
        mf = history.n_low > 0
        n = history.n_observations
        refit = n % max(self.refit_every, n // self.refit_fraction) == 0
        if not mf:
            X = self._inputs(history.Z_done, False)
            Y = torch.tensor(history.y, dtype=torch.float64).unsqueeze(-1)
            if self.surrogate == "saas":
                return fit_saas(X, Y, seed=seed), X, self.pareto_configs(history)
            model, self._warm = fit_gp(X, Y, warm=self._warm, maxiter=100 if refit or self._warm is None else 0)
            return model, X, self.pareto_configs(history)
        X_low = torch.tensor(self.features(history.Z_low), dtype=torch.float64)
        fid = torch.tensor(history.f_low, dtype=torch.float64).unsqueeze(-1)
        X = torch.cat([self._inputs(history.Z_done, True),
                       torch.cat([X_low[:, :-1], fid, X_low[:, -1:]], dim=-1)])
        Y = torch.tensor(np.concatenate([history.y, history.y_low]), dtype=torch.float64).unsqueeze(-1)
        model, self._warm_mf = fit_fidelity_gp(X, Y, warm=self._warm_mf,
                                               maxiter=100 if refit or self._warm_mf is None else 0)
        configs = history.observed_configs()
        baseline = self._inputs(configs, True)
        return model, baseline, self._predicted_front(model, configs, baseline)

    # --- promotion by the model (successive halving, `promotion.rank_by: model`) -------------------------
    def predict_top(self, study: optuna.Study, configs: Sequence[Mapping[str, Any]], *, top_steps: int,
                    extra: Sequence[tuple[Mapping[str, Any], float, float]] = ()) -> list[float] | None:
        """The fidelity-aware GP's posterior mean of the top-rung metric (metric units) of each configuration
        (Optuna params), fit on every rung and full-fidelity result in the study and on `extra` results not
        recorded yet, as (params, steps, metric). None while that is too little to rank by: fewer observed
        configurations than the start-up design, no rung result below `top_steps`, or a constant metric.
        """
        self._sign = metric_sign(study)
        history = read_history(study, self.encoding, self.feasibility, sign=self._sign, top_steps=top_steps)
        added = [(z, self._sign * metric, steps) for params, steps, metric in extra
                 if (z := self.encoding.try_index(dict(params))) is not None and steps < top_steps]
        if added:
            history.Z_low = np.concatenate([history.Z_low, np.array([z for z, _, _ in added], dtype=np.int64)])
            history.y_low = np.concatenate([history.y_low, [y for _, y, _ in added]])
            history.f_low = np.concatenate([history.f_low, fidelity_feature(np.array([s for *_, s in added]), top_steps)])
        Z = [self.encoding.try_index(dict(params)) for params in configs]
        y_all = np.concatenate([history.y, history.y_low])
        if (history.n_low == 0 or any(z is None for z in Z) or len(history.observed_configs()) < self.n_startup_trials
                or np.ptp(y_all) == 0.0):
            return None
        with single_torch_thread(), torch.random.fork_rng():
            torch.manual_seed(self._seed)
            model, _, _ = self._fit(history, self._seed)
            with torch.no_grad():
                mean = model.posterior(self._inputs(np.array(Z), True)).mean.squeeze(-1).numpy()
        return [float(self._sign * m) for m in mean]

    def _predicted_front(self, model, configs: np.ndarray, baseline: torch.Tensor) -> np.ndarray:
        """Observed configurations on the front of (posterior mean at full fidelity, exact pct), within budget."""
        with torch.no_grad():
            mean = model.posterior(baseline).mean.squeeze(-1).numpy()
        pct = self.feasibility.pct(configs)
        inside = pct <= self.budget_pct
        return configs[inside][pareto_mask(mean[inside], pct[inside])]

    def _bo_candidate(self, history: History, rng: np.random.Generator, seed: int) -> np.ndarray | None:
        t0 = time.perf_counter()
        mf = history.n_low > 0
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model, X_baseline, starts = self._fit(history, seed)
            n_baseline = len(X_baseline)
            X_baseline = prune_baseline(model, X_baseline, self.scale, max_points=self.max_baseline)
            t1 = time.perf_counter()
            X_pending = self._inputs(history.Z_pending, mf) if len(history.Z_pending) else None
            acq = log_nehvi(model, X_baseline, self.reference_point, self.scale, X_pending=X_pending,
                            mc_samples=self.mc_samples, seed=seed)
            t2 = time.perf_counter()

            def score(Z: np.ndarray) -> np.ndarray:
                return evaluate(acq, self._inputs(Z, mf)).numpy()

            pool = self.feasibility.random_feasible(rng, self.pool_size, exclude=history.seen)
            if len(pool):
                pool_scores = score(pool)
                top = pool[np.argsort(-pool_scores)[: self.n_starts]]
                starts = np.concatenate([starts, top]) if len(starts) else top
            result = local_search(
                score, starts, self.encoding.neighbours, lambda Z: self.admissible(Z, history.seen),
                self.feasibility.plan_keys, max_evals=max(self.max_evals - len(pool), 1),
            )
        z = result.z
        if len(pool) and (z is None or result.score < pool_scores.max()):
            z = pool[int(np.argmax(pool_scores))]
        self.last_timings = {"fit": t1 - t0, "acquisition": t2 - t1, "search": time.perf_counter() - t2,
                             "evaluations": float(result.evaluations + len(pool)), "observations": float(n_baseline),
                             "baseline": float(len(X_baseline)),
                             "low_fidelity": float(history.n_low)}
        return z
