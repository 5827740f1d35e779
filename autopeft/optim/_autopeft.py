"""`AutoPeftSampler`: the AutoPEFT paper's recipe (Zhou, Wan, Vulić & Korhonen, TACL 2024, §3.3).

- start-up: uniformly random configurations (the paper: 100 random, then 100 BO points);
- a SAAS GP (Eriksson & Jankowiak, UAI 2021) on *both* objectives — the metric and the params share
  are each modelled, as in the paper (autopeft's `MoboSampler` computes the latter instead);
- qNEHVI (Daulton et al., NeurIPS 2021) with the fixed reference point ``(metric reference, budget_pct)``;
- batches of q = 4 built greedily: each member maximises qNEHVI with the running trials and the
  members chosen so far as pending points; the batch is handed out over the next four asks and the
  models are refitted only when it is used up;
- the acquisition is maximised by local search over one-exchange neighbours.

Unlike the paper, and like every autopeft sampler, candidates are restricted to valid configurations
within the hard budget, and configurations already evaluated are never proposed again.
"""

from __future__ import annotations

import numpy as np
import optuna
import torch
from optuna.trial import FrozenTrial

from autopeft.optim._acquisition import evaluate, nehvi_two_models
from autopeft.optim._base import AutopeftSamplerBase
from autopeft.optim._history import History
from autopeft.optim._local_search import local_search
from autopeft.optim._surrogate import fit_saas
from autopeft.search_spaces.space import SearchSpace


class AutoPeftSampler(AutopeftSamplerBase):
    """The paper's recipe (see module docstring); ``q`` configurations per model fit."""

    def __init__(self, space: SearchSpace, *, budget_pct: float | None, max_params: int | None = None,
                 metric_reference: float = 0.0, n_startup_trials: int = 8, seed: int | None = None, q: int = 4,
                 mc_samples: int = 64, max_evals: int = 600, pool_size: int = 128, n_starts: int = 4):
        super().__init__(space, budget_pct=budget_pct, max_params=max_params, metric_reference=metric_reference,
                         n_startup_trials=max(2, n_startup_trials), seed=seed)
        if q < 1:
            raise ValueError(f"q: expected a positive integer, got {q}")
        self.q = q
        self.mc_samples = mc_samples
        self.max_evals = max_evals
        self.pool_size = pool_size
        self.n_starts = n_starts
        self._batch: list[np.ndarray] = []

    def _propose(self, study: optuna.Study, trial: FrozenTrial, history: History,
                 rng: np.random.Generator) -> np.ndarray | None:
        if history.n_done < self.n_startup_trials or np.ptp(history.y) == 0.0:
            pick = self.feasibility.random_feasible(rng, 1, exclude=history.seen)
            return pick[0] if len(pick) else None
        while self._batch:
            z = self._batch.pop(0)
            if self.admissible(z, history.seen)[0]:
                return z
        self._batch = self._build_batch(history, rng, seed=int(rng.integers(2**31)))
        return self._batch.pop(0) if self._batch else None

    def _build_batch(self, history: History, rng: np.random.Generator, seed: int) -> list[np.ndarray]:
        dtype = torch.float64
        X = torch.tensor(self.encoding.features(history.Z_done), dtype=dtype)
        neg_pct = -self.feasibility.pct(history.Z_done)
        Y = torch.tensor(np.stack([history.y, neg_pct], axis=1), dtype=dtype)
        batch: list[np.ndarray] = []
        seen = set(history.seen)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = fit_saas(X, Y, seed=seed)
            for _ in range(self.q):
                pending = list(history.Z_pending) + batch
                X_pending = torch.tensor(self.encoding.features(np.array(pending)), dtype=dtype) if pending else None
                acq = nehvi_two_models(model, X, self.reference_point, X_pending=X_pending,
                                       mc_samples=self.mc_samples, seed=seed)

                def score(Z: np.ndarray, acq=acq) -> np.ndarray:
                    return evaluate(acq, torch.tensor(self.encoding.features(Z), dtype=dtype)).numpy()

                pool = self.feasibility.random_feasible(rng, self.pool_size, exclude=seen)
                starts = self.pareto_configs(history)
                if len(pool):
                    top = pool[np.argsort(-score(pool))[: self.n_starts]]
                    starts = np.concatenate([starts, top]) if len(starts) else top
                result = local_search(score, starts, self.encoding.neighbours, lambda Z: self.admissible(Z, seen),
                                      self.feasibility.plan_keys, max_evals=self.max_evals)
                z = result.z if result.z is not None else (pool[0] if len(pool) else None)
                if z is None:
                    break
                batch.append(z)
                seen.update(self.feasibility.plan_keys(z))
        return batch
