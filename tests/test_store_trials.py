"""The driver's batched trial writes (`autopeft.store.trials`) write what Optuna's own API writes, on SQLite and
PostgreSQL: the same parameters from the same seeded samplers (independent, relative, enqueued), the same
attributes, values and states, and the same refusals."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.trial import TrialState

from autopeft.objective import ACCURACY
from autopeft.search_spaces import load_space, structure_of
from autopeft.spec import build_spec
from autopeft.store import create_study, load_study, open_db
from autopeft.store.trials import ask, draw, finish, new_trials, set_attrs, state_counts, trial_of
from tests.models import TINY_CONFIGS

SAMPLERS = {
    "random": lambda: optuna.samplers.RandomSampler(seed=3),
    "tpe-multivariate": lambda: optuna.samplers.TPESampler(seed=3, n_startup_trials=3, multivariate=True),
}


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'trials.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def space():
    return load_space("lora", structure_of(TINY_CONFIGS["bert"]()))


def new_study(url, name, sampler):
    spec = build_spec({}, {"model": "m", "space": "lora", "storage.url": url})
    study = create_study(open_db(url), name, spec, ACCURACY)
    study.sampler = sampler
    return study


def reread(url, name):
    """The study's trials read back by a new connection."""
    storage = open_db(url)
    try:
        return load_study(storage, name).get_trials()
    finally:
        storage.engine.dispose()


def score(params):
    return sum(hash(str(v)) % 97 for v in params.values()) / 97


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_batched_writes_store_what_optunas_api_stores(url, space, sampler):
    by_optuna, batched = new_study(url, "optuna", SAMPLERS[sampler]()), new_study(url, "batched", SAMPLERS[sampler]())
    for _ in range(8):
        trial = by_optuna.ask()
        space.suggest(trial)
        for key, value in {"plan_summary": "x", "params": 1}.items():
            trial.set_user_attr(key, value)
        trial.set_user_attr("result", {"metric": score(trial.params)})
        by_optuna.tell(trial, [score(trial.params), 0.5])

        trial = ask(batched)
        draft = draw(trial, space.distributions())
        assert trial.params == draft.values
        draft.write({"plan_summary": "x", "params": 1})
        assert finish(trial, [score(draft.values), 0.5], attrs={"result": {"metric": score(draft.values)}}) \
            == TrialState.COMPLETE
    expected, got = reread(url, "optuna"), reread(url, "batched")
    assert [t.params for t in got] == [t.params for t in expected]
    assert [t.distributions for t in got] == [t.distributions for t in expected]
    assert [t.user_attrs for t in got] == [t.user_attrs for t in expected]
    assert [(t.number, t.state, t.values) for t in got] == [(t.number, t.state, t.values) for t in expected]
    assert all(t.datetime_complete is not None for t in got)


def test_an_enqueued_configuration_is_popped_and_its_values_kept(url, space):
    study = new_study(url, "s", optuna.samplers.RandomSampler(seed=0))
    first = ask(study)
    draw(first, space.distributions()).write()
    finish(first, state=TrialState.FAIL, attrs={"failure": {"kind": "lost", "message": "worker died"}})
    study.enqueue_trial(first.params, user_attrs={"retry_of": first.number})
    retry = ask(study)
    assert retry.number == 1 and draw(retry, space.distributions()).values == first.params
    assert state_counts(study) == {TrialState.FAIL: 1, TrialState.RUNNING: 1}
    fresh = ask(study)
    assert fresh.number == 2 and state_counts(study)[TrialState.RUNNING] == 2
    stored = reread(url, "s")
    assert stored[0].user_attrs["failure"]["kind"] == "lost" and stored[1].user_attrs["retry_of"] == 0


def test_values_optuna_cannot_store_fail_the_trial_and_say_why(url, space):
    study = new_study(url, "s", optuna.samplers.RandomSampler(seed=0))
    trial = ask(study)
    draw(trial, space.distributions()).write()
    assert finish(trial, [math.nan, 0.5], attrs={"result": {"metric": None}}) == TrialState.FAIL
    (stored,) = reread(url, "s")
    assert stored.state == TrialState.FAIL and stored.values is None
    assert stored.user_attrs["failure"]["kind"] == "invalid-result" and "nan" in stored.user_attrs["failure"]["message"]
    assert stored.user_attrs["result"] == {"metric": None}


def test_a_trial_finished_by_another_process_is_not_written(url, space):
    study = new_study(url, "s", optuna.samplers.RandomSampler(seed=0))
    trial = ask(study)
    draw(trial, space.distributions()).write({"driver": "a"})
    study.tell(trial.number, state=TrialState.FAIL)  # another process failed it as stale
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        set_attrs(trial, {"result": {"metric": 1.0}})
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        finish(trial, [1.0, 0.5], attrs={"result": {"metric": 1.0}})
    (stored,) = reread(url, "s")
    assert stored.state == TrialState.FAIL and stored.values is None and stored.user_attrs == {"driver": "a"}


def test_attributes_written_again_are_replaced_and_counts_follow_every_state(url, space):
    study = new_study(url, "s", optuna.samplers.RandomSampler(seed=0))
    trial = ask(study)
    draw(trial, space.distributions()).write({"steps": 10})
    set_attrs(trial, {"steps": 30, "rungs": [{"rung": 0}]})
    study.tell(trial, state=TrialState.PRUNED)
    ask(study)
    for _ in range(3):
        done = ask(study)
        draw(done, space.distributions()).write()
        finish(done, [0.5, 0.1])
    study.enqueue_trial({})
    assert reread(url, "s")[0].user_attrs == {"steps": 30, "rungs": [{"rung": 0}]}
    expected = {state: sum(t.state == state for t in reread(url, "s")) for state in TrialState}
    assert state_counts(study) == {state: n for state, n in expected.items() if n}
    assert state_counts(study) == {TrialState.PRUNED: 1, TrialState.RUNNING: 1, TrialState.COMPLETE: 3,
                                   TrialState.WAITING: 1}


def test_a_new_trial_is_the_trial_optuna_would_build_and_every_process_sees_it(url, space):
    study = new_study(url, "s", optuna.samplers.RandomSampler(seed=0))
    trial = ask(study)
    usual = optuna.Trial(study, trial._trial_id)  # Optuna's own view of the same trial, read from the DB
    assert vars(trial).keys() == vars(usual).keys()
    for name in ("study", "_trial_id", "storage", "relative_search_space", "_relative_params", "_fixed_params"):
        assert getattr(trial, name) == getattr(usual, name), name
    mine, theirs = trial._cached_frozen_trial, usual._cached_frozen_trial
    assert (mine.number, mine.state, mine.params, mine.user_attrs, mine.system_attrs, mine.values) == \
           (theirs.number, theirs.state, theirs.params, theirs.user_attrs, theirs.system_attrs, theirs.values)
    assert abs((mine.datetime_start - theirs.datetime_start).total_seconds()) < 1e-3  # local time, as Optuna's
    assert [(t.number, t.state) for t in study.get_trials()] == [(0, TrialState.RUNNING)]  # this process's cache
    draw(trial, space.distributions()).write()
    assert finish(trial, [-math.inf, 0.5]) == TrialState.COMPLETE  # infinities are stored as Optuna stores them
    (stored,) = reread(url, "s")
    assert stored.values == [-math.inf, 0.5] and stored.params == trial.params


def test_trials_asked_at_once_by_several_drivers_get_distinct_numbers(url, space):
    import threading

    new_study(url, "s", optuna.samplers.RandomSampler(seed=0))
    numbers, errors = [], []

    def driver():
        storage = open_db(url)
        try:
            study = load_study(storage, "s")
            study.sampler = optuna.samplers.RandomSampler()
            for batch in (1, 3, 1, 2, 3):  # single asks and batches of new trials, interleaved with the others'
                trials = [ask(study)] if batch == 1 else [trial_of(study, f) for f in new_trials(study, batch)]
                for trial in trials:
                    draw(trial, space.distributions()).write()
                    numbers.append(trial.number)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            storage.engine.dispose()

    threads = [threading.Thread(target=driver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(numbers) == list(range(40))
    assert sorted(t.number for t in reread(url, "s")) == list(range(40))


def test_new_trials_are_numbered_where_the_db_cannot_return_inserted_rows(tmp_path, space):
    # SQLite before 3.35 has no INSERT ... RETURNING: the new trial's number is read back instead
    url = f"sqlite:///{tmp_path / 'old.db'}"
    study = new_study(url, "s", optuna.samplers.RandomSampler(seed=0))
    dialect = study._storage._backend.engine.dialect
    dialect.insert_returning = False
    try:
        trials = [ask(study) for _ in range(3)] + new_trials(study, 3)
    finally:
        dialect.insert_returning = True
    assert [t.number for t in trials] == list(range(6)) and len({t._trial_id for t in trials}) == 6
    assert [(t.number, t.state) for t in reread(url, "s")] == [(n, TrialState.RUNNING) for n in range(6)]


def test_trials_created_together_are_the_trials_optuna_would_create_one_by_one(url, space):
    study = new_study(url, "s", optuna.samplers.RandomSampler(seed=0))
    ask(study)
    created = new_trials(study, 4)
    assert [t.number for t in created] == [1, 2, 3, 4] and new_trials(study, 0) == []
    assert [(t.number, t.state) for t in study.get_trials()] == [(n, TrialState.RUNNING) for n in range(5)]  # cache
    stored = {t._trial_id: t for t in reread(url, "s")}
    for frozen in created:
        usual = stored[frozen._trial_id]
        assert (frozen.number, frozen.state, frozen.params, frozen.user_attrs, frozen.values) == \
               (usual.number, usual.state, usual.params, usual.user_attrs, usual.values)
        assert abs((frozen.datetime_start - usual.datetime_start).total_seconds()) < 1e-3
    trial = trial_of(study, created[2])
    draw(trial, space.distributions()).write()
    assert finish(trial, [0.7, 0.5]) == TrialState.COMPLETE
    assert state_counts(study) == {TrialState.RUNNING: 4, TrialState.COMPLETE: 1}
    assert reread(url, "s")[3].values == [0.7, 0.5]
