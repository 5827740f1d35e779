"""Linked studies of `autopeft refine`: which studies refine a study, and reading one.

Conventions (the attrs of a linked study and its trials) are in `autopeft.refine_compare`; a linked
study lives in the same storage as its source, named ``SOURCE--refined`` by default.
"""

from __future__ import annotations

from optuna.trial import TrialState

from autopeft.refine_compare import Refinement, aggregate
from autopeft.store.attrs import REFINEMENT_OF

REFINED_SUFFIX = "--refined"


def refined_name(source: str) -> str:
    """Default name of the linked study that refines `source`."""
    return f"{source}{REFINED_SUFFIX}"


def refinement_names(storage, source: str) -> list[str]:
    """Names of the studies in `storage` that refine study `source`, oldest first."""
    from autopeft.store.reader import StudyReader

    return [name for _, name in StudyReader(storage).refinements(source)]


def read_refinement(storage, name: str) -> Refinement:
    """Read linked study `name` through Optuna's storage API (works on a read-only storage); `KeyError` if none."""
    from optuna.study import StudyDirection

    study_id = storage.get_study_id_from_name(name)
    attrs = storage.get_study_user_attrs(study_id)
    maximize = storage.get_study_directions(study_id)[0] == StudyDirection.MAXIMIZE
    trials = storage.get_all_trials(study_id, deepcopy=False)
    runs, complete, failed = [], 0, 0
    for t in trials:
        if t.state == TrialState.COMPLETE and t.values and "source_trial" in t.user_attrs:
            runs.append((t.user_attrs["source_trial"], t.user_attrs.get("seed", 0), t.values[0]))
            complete += 1
        elif t.state == TrialState.FAIL:
            failed += 1
    return Refinement(name=name, source=str(attrs.get(REFINEMENT_OF, "")), fidelity=dict(attrs.get("fidelity") or {}),
                      seeds=[int(s) for s in attrs.get("seeds") or []], metric=str(attrs.get("metric", "")),
                      split=str(attrs.get("split", "dev")), values=aggregate(runs), complete=complete, failed=failed,
                      maximize=maximize)


def latest_refinement(storage, source: str, name: str | None = None) -> Refinement | None:
    """The refinement `name` of `source`, or its newest one; None when it has none. `KeyError` for a bad `name`."""
    if name is not None:
        if name not in {s.study_name for s in storage.get_all_studies()}:
            raise KeyError(f"no study named {name!r}; `autopeft refine {source}` makes {refined_name(source)!r}")
        refinement = read_refinement(storage, name)
        if refinement.source != source:
            raise KeyError(f"study {name!r} is not a refinement of {source!r}")
        return refinement
    names = refinement_names(storage, source)
    return read_refinement(storage, names[-1]) if names else None
