"""Studies in the study DB (Optuna RDB storage): create and load them, their spec and objective, trials.

A study is 2-objective: values = (task metric, trainable params % ↓); the metric is maximised or
minimised as its `Objective` says (Optuna's study directions, and the user attr `objective` =
{metric, direction, reference}; see `autopeft.objective`). The study's user attrs hold the full spec
(`spec`), so a study can be resumed from the DB alone. Each trial's user attrs:
`plan` (autopeft-plan/v1 dict), `plan_summary`, `params`, `params_pct` (set when proposed);
`result` (the worker's `TrialResult` as a dict: `metrics`, `metric`, `status`, `seed`, `train_seconds`,
`eval_seconds`, `peak_memory_mb`, `host`, `device`, ...) and its long parts `fidelity`, `split`, `curve`
as attributes of their own, once evaluated (read it whole with `autopeft.store.attrs.trial_result`; every
attribute stays within the 1,024 characters optuna-dashboard shows, see `autopeft.store.attrs`);
`failure` = {kind, message} for failed trials; `retry_of` / `attempt` for retried configurations.
A study refined by `autopeft refine` lists its linked studies in the user attr `refinements`
(conventions in `autopeft.refine_compare`).
With successive halving (`promotion.enabled`): `rungs`, one entry per finished rung = {rung, steps,
metric, train_seconds} plus, below the top rung, the decision {promote, rank, of, keep[, reason]};
`steps` (optimizer steps over every rung, failed runs included); trials stopped below the top rung
are PRUNED and have no values.
"""

from __future__ import annotations

import warnings
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from autopeft.objective import Objective, stored_objective
from autopeft.pareto import pareto_indices
from autopeft.spec import SearchSpec
from autopeft.store.attrs import OBJECTIVE_ATTR, REFINEMENT_OF, SPEC_ATTR, readable, storable
from autopeft.store.errors import StudyError
from autopeft.store.trials import state_counts
from autopeft.store.urls import redact_url


def study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    return [s.study_name for s in storage.get_all_studies()]


def create_study(storage, name: str, spec: SearchSpec | None, objective: Objective) -> optuna.Study:
    """Create study `name` storing `spec` (None: none, e.g. a linked study) and `objective`;
    directions (the objective's, params % min)."""
    study = optuna.create_study(storage=storage, study_name=name, directions=[objective.direction, "minimize"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["metric", "params_pct"])
    study.set_user_attr(OBJECTIVE_ATTR, objective.to_dict())
    if spec is not None:
        save_spec(study, spec)
    return study


def objective_of(study: optuna.Study) -> Objective:
    """The study's first objective; studies made before objectives were stored maximise, with the spec's floor."""
    attrs = study.user_attrs
    return stored_objective(attrs.get(OBJECTIVE_ATTR), readable(attrs.get(SPEC_ATTR)), study.directions[0].name)


def spec_record(spec: SearchSpec) -> dict[str, Any]:
    """The spec as stored in the study and shown by the dashboard API: JSON, the storage password redacted
    (resuming needs no URL from the DB: the user passes --storage)."""
    data = spec.model_dump(mode="json")
    data["storage"]["url"] = redact_url(data["storage"]["url"])
    return data


def save_spec(study: optuna.Study, spec: SearchSpec) -> None:
    study.set_user_attr(SPEC_ATTR, storable(spec_record(spec)))  # text when long (autopeft.store.attrs)


def load_study(storage, name: str, sampler: optuna.samplers.BaseSampler | None = None) -> optuna.Study:
    """Load an existing study; `StudyError` listing the known ones when there is none by that name."""
    known = study_names(storage)
    if name not in known:
        raise no_such_study(name, known)
    return optuna.load_study(study_name=name, storage=storage, sampler=sampler)


def stored_spec(study: optuna.Study) -> SearchSpec:
    data = readable(study.user_attrs.get(SPEC_ATTR))
    if data is None:
        raise not_a_search(study.study_name, study.user_attrs.get(REFINEMENT_OF))
    return SearchSpec.model_validate(data)


def no_such_study(name: str, known: list[str]) -> StudyError:
    """The error for a study name the storage does not hold; lists the ones it does."""
    return StudyError(f"no study named {name!r} in this storage (studies: {', '.join(known) or 'none'})")


def not_a_search(name: str, refinement_of: str | None) -> StudyError:
    """The error for a study that stores no spec: a linked study of `autopeft refine`, or not autopeft's."""
    if refinement_of is not None:
        return StudyError(f"study {name!r} holds the `autopeft refine` runs of study {refinement_of!r}, not a "
                          f"search; pass {refinement_of!r}")
    return StudyError(f"study {name!r} was not made by autopeft (it stores no spec)")

def completed(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def points(trials: list[FrozenTrial]) -> list[tuple[float, float]]:
    return [(float(t.values[0]), float(t.values[1])) for t in trials]


def pareto_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Pareto-optimal completed trials, cheapest first."""
    done = completed(study)
    return [done[i] for i in pareto_indices(points(done), objective_of(study).maximize)]


def count_trials(study: optuna.Study, state: TrialState) -> int:
    """Trials of `study` in `state`, by every process (one COUNT query, `autopeft.store.trials.state_counts`)."""
    return state_counts(study).get(state, 0)


def trial_by_number(study: optuna.Study, number: int) -> FrozenTrial:
    """Trial `number` of `study`, read alone; `KeyError` when the study has none by that number."""
    # `study.trials[number]` reads every trial of the study; the storage reads one
    storage = study._storage
    return storage.get_trial(storage.get_trial_id_from_study_id_trial_number(study._study_id, number))
