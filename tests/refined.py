"""Build a refinement with known per-seed values directly in a study DB (what `autopeft refine` writes)."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from autopeft.refine_run import _open_linked
from autopeft.spec import FidelitySpec
from autopeft.store.linked import refined_name


def add_refinement(storage, source: str, values: dict[int, list[float]], name: str | None = None,
                   fidelity: FidelitySpec | None = None, failed: int = 0) -> optuna.Study:
    """Linked study of `source` with trial `n`'s seed-k run scoring `values[n][k]` (seeds 0, 1, ...)."""
    study = optuna.load_study(study_name=source, storage=storage)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    seeds = list(range(max(len(v) for v in values.values())))
    linked = _open_linked(storage, name or refined_name(source), study, fidelity or FidelitySpec(train_size=None),
                          seeds, "dev_accuracy", "dev")
    for number, scores in values.items():
        source_trial = trials[number]
        for seed, score in enumerate(scores):
            attrs = {"source_trial": number, "seed": seed, "plan": source_trial.user_attrs.get("plan"),
                     "result": {"status": "ok", "metrics": {"dev_accuracy": score}, "seed": seed}}
            linked.add_trial(optuna.trial.create_trial(values=[score, source_trial.values[1]], user_attrs=attrs))
    for k in range(failed):
        linked.add_trial(optuna.trial.create_trial(
            state=TrialState.FAIL, user_attrs={"source_trial": next(iter(values)), "seed": 100 + k,
                                               "failure": {"kind": "oom", "message": "out of memory"}}))
    return linked
