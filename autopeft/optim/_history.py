"""What a sampler needs from a study's trials, as index vectors: observations, failures, pending points.

- *observed*: COMPLETE trials with a finite metric (``values[0]``) → ``Z_done`` (``n x d``), ``y`` (``n``),
  in maximisation form (``y = sign * metric``, sign -1 for a minimised metric);
- *failed*: FAIL trials, COMPLETE ones whose metric is not finite, and PRUNED ones (stopped at a low
  rung by successive-halving promotion: their metric is not a full-fidelity one) → excluded from the
  surrogate, but never proposed again (the runner relies on this: an OOM or NaN configuration is not
  retried by the optimiser, and a stopped one is not trained again);
- *pending*: RUNNING trials whose parameters are all set, and WAITING trials (enqueued retries,
  their configuration in ``fixed_params``) → passed to the acquisition as pending points;
- *low-fidelity*: every rung result below the top rung (successive halving records them in the
  trial's user attr ``rungs`` = [{rung, steps, metric, ...}], on PRUNED, RUNNING, COMPLETE and FAIL
  trials alike) → ``Z_low`` (``m x d``), ``y_low`` (``m``, maximisation form) and ``f_low`` (``m``, the
  fidelity feature `fidelity_feature(steps, top_steps)` in [0, 1)). The top rung's steps are
  ``top_steps`` when given, else the steps of a COMPLETE trial's last rung, else the study spec's
  ``fidelity.max_steps``; with none of them, rung results are left out. Full-fidelity observations
  (COMPLETE values) have fidelity 1.

`seen` holds the plan keys of all three: a sampler proposes none of them. Trials whose parameters do
not belong to this space (another space, or a trial still being sampled) are ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from autopeft.optim._encoding import SpaceEncoding
from autopeft.optim._feasibility import Feasibility


@dataclass
class History:
    Z_done: np.ndarray
    y: np.ndarray
    Z_failed: np.ndarray
    Z_pending: np.ndarray
    seen: set[bytes] = field(default_factory=set)
    Z_low: np.ndarray | None = None
    y_low: np.ndarray = field(default_factory=lambda: np.zeros(0))
    f_low: np.ndarray = field(default_factory=lambda: np.zeros(0))
    top_steps: int | None = None

    def __post_init__(self) -> None:
        if self.Z_low is None:
            self.Z_low = np.zeros((0, self.Z_done.shape[1]), dtype=np.int64)

    @property
    def n_done(self) -> int:
        """Full-fidelity observations (COMPLETE trials with a finite metric)."""
        return len(self.y)

    @property
    def n_low(self) -> int:
        """Rung results below the top rung."""
        return len(self.y_low)

    @property
    def n_observations(self) -> int:
        return self.n_done + self.n_low

    def drop_low_fidelity(self) -> None:
        """Forget the rung results (for a model that takes full-fidelity observations only)."""
        self.Z_low, self.y_low, self.f_low = self.Z_low[:0], self.y_low[:0], self.f_low[:0]

    def observed_configs(self) -> np.ndarray:
        """``k x d`` distinct configurations with an observation at any fidelity (full-fidelity ones first)."""
        Z = np.concatenate([self.Z_done, self.Z_low]) if self.n_low else self.Z_done
        if not len(Z):
            return Z
        _, first = np.unique(Z, axis=0, return_index=True)
        return Z[np.sort(first)]


def fidelity_feature(steps: np.ndarray | float, top_steps: int) -> np.ndarray:
    """Training steps → fidelity in [0, 1]: ``log(steps) / log(top_steps)`` (1 at the top rung), clipped."""
    steps = np.maximum(np.asarray(steps, dtype=np.float64), 1.0)
    if top_steps <= 1:
        return np.ones_like(steps)
    return np.clip(np.log(steps) / math.log(top_steps), 0.0, 1.0)


def read_history(study: optuna.Study, encoding: SpaceEncoding, feasibility: Feasibility,
                 exclude_number: int | None = None, sign: float = 1.0, top_steps: int | None = None) -> History:
    """Sort the study's trials into observed, failed, pending and low-fidelity observations (module docstring)."""
    done, y, failed, pending = [], [], [], []
    rungs: list[tuple[np.ndarray, float, float]] = []  # (z, sign * metric, steps) of every rung result
    top_seen: int | None = None
    for t in study.get_trials(deepcopy=False):
        if t.number == exclude_number:
            continue
        z = _index_of(t, encoding)
        if z is None:
            continue
        entries = _rung_entries(t.user_attrs.get("rungs"))
        rungs.extend((z, sign * metric, steps) for metric, steps in entries)
        if t.state == TrialState.COMPLETE and entries:
            top_seen = max(top_seen or 0, int(entries[-1][1]))
        if t.state == TrialState.COMPLETE:
            metric = t.values[0] if t.values else float("nan")
            if metric is not None and math.isfinite(metric):
                done.append(z)
                y.append(sign * float(metric))
            else:
                failed.append(z)
        elif t.state in (TrialState.FAIL, TrialState.PRUNED):
            failed.append(z)
        elif t.state in (TrialState.RUNNING, TrialState.WAITING):
            pending.append(z)
    d = encoding.d

    def arr(rows: list[np.ndarray]) -> np.ndarray:
        return np.array(rows, dtype=np.int64).reshape(-1, d)

    top = top_steps or top_seen or (_spec_top_steps(study) if rungs else None)
    low = [(z, v, s) for z, v, s in rungs if top is not None and s < top]
    h = History(Z_done=arr(done), y=np.array(y, dtype=np.float64), Z_failed=arr(failed), Z_pending=arr(pending),
                Z_low=arr([z for z, _, _ in low]), y_low=np.array([v for _, v, _ in low], dtype=np.float64),
                f_low=fidelity_feature(np.array([s for _, _, s in low], dtype=np.float64), top) if low else np.zeros(0),
                top_steps=top)
    for Z in (h.Z_done, h.Z_failed, h.Z_pending):
        h.seen.update(feasibility.plan_keys(Z) if len(Z) else [])
    return h


def _index_of(trial: FrozenTrial, encoding: SpaceEncoding) -> np.ndarray | None:
    params = trial.params
    if trial.state == TrialState.WAITING or len(params) < encoding.d:
        params = {**trial.system_attrs.get("fixed_params", {}), **params}
    return encoding.try_index(params)


def _rung_entries(value: Any) -> list[tuple[float, float]]:
    """(metric, steps) of each well-formed rung entry with a finite metric and positive steps, in order."""
    out = []
    for entry in value if isinstance(value, list) else ():
        if not isinstance(entry, dict):
            continue
        metric, steps = entry.get("metric"), entry.get("steps")
        if (isinstance(metric, (int, float)) and math.isfinite(metric) and isinstance(steps, (int, float))
                and steps > 0):
            out.append((float(metric), float(steps)))
    return out


def _spec_top_steps(study: optuna.Study) -> int | None:
    """``fidelity.max_steps`` of the spec an autopeft study carries (user attr ``spec``), if any."""
    fidelity = (study.user_attrs.get("spec") or {}).get("fidelity") or {}
    steps = fidelity.get("max_steps") if isinstance(fidelity, dict) else None
    return int(steps) if isinstance(steps, (int, float)) and steps > 0 else None
