"""What a sampler needs from a study's trials, as index vectors: observations, failures, pending points.

- *observed*: COMPLETE trials with a finite metric (``values[0]``) → ``Z_done`` (``n x d``), ``y`` (``n``),
  in maximisation form (``y = sign * metric``, sign -1 for a minimised metric);
- *failed*: FAIL trials, COMPLETE ones whose metric is not finite, and PRUNED ones (stopped at a low
  rung by successive-halving promotion: their metric is not a full-fidelity one) → excluded from the
  surrogate, but never proposed again (the runner relies on this: an OOM or NaN configuration is not
  retried by the optimiser, and a stopped one is not trained again);
- *pending*: RUNNING trials whose parameters are all set, and WAITING trials (enqueued retries,
  their configuration in ``fixed_params``) → passed to the acquisition as pending points.

`seen` holds the plan keys of all three: a sampler proposes none of them. Trials whose parameters do
not belong to this space (another space, or a trial still being sampled) are ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

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

    @property
    def n_done(self) -> int:
        return len(self.y)


def read_history(study: optuna.Study, encoding: SpaceEncoding, feasibility: Feasibility,
                 exclude_number: int | None = None, sign: float = 1.0) -> History:
    """Sort the study's trials into observed, failed and pending index vectors (see module docstring)."""
    done, y, failed, pending = [], [], [], []
    for t in study.get_trials(deepcopy=False):
        if t.number == exclude_number:
            continue
        z = _index_of(t, encoding)
        if z is None:
            continue
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

    h = History(Z_done=arr(done), y=np.array(y, dtype=np.float64), Z_failed=arr(failed), Z_pending=arr(pending))
    for Z in (h.Z_done, h.Z_failed, h.Z_pending):
        h.seen.update(feasibility.plan_keys(Z) if len(Z) else [])
    return h


def _index_of(trial: FrozenTrial, encoding: SpaceEncoding) -> np.ndarray | None:
    params = trial.params
    if trial.state == TrialState.WAITING or len(params) < encoding.d:
        params = {**trial.system_attrs.get("fixed_params", {}), **params}
    return encoding.try_index(params)
