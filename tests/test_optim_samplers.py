"""Contract suite run over every sampler name (as Optuna's `optuna/testing/pytest_samplers.py`).

Each sampler, built by `make_sampler` on a tiny BERT config, must: propose only valid, in-budget
configurations; never repeat an evaluated (complete or failed) or pending configuration; give two
different configurations to two asks while the first trial is RUNNING; cope with failed trials in
the study; and replay identically with a seed. In-memory studies, the synthetic objective.
"""

from __future__ import annotations

import warnings

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from autopeft.optim import SAMPLER_NAMES, FeasibleSampler, make_sampler
from autopeft.optim._encoding import SpaceEncoding
from autopeft.optim._feasibility import Feasibility
from autopeft.optim.synthetic import SyntheticPeft
from autopeft.search_spaces import load_space, structure_of
from tests.models import TINY_CONFIGS

optuna.logging.set_verbosity(optuna.logging.WARNING)

BUDGET = 3.0  # % of the tiny model: a third of the autopeft space's random draws fit
STARTUP = 3
# Trials per study: the model-based samplers get past their start-up; cheap ones run longer.
TRIALS = {"mobo": 6, "autopeft": 6, "botorch": 4, "gp": 5, "tpe": 12, "nsga2": 14, "random": 12}
# Optuna's GP and optuna-integration's BoTorch refit on every draw (BoTorch: 5-40 s per proposal on
# 2 cores), so their pending-point and seed checks stay in the start-up phase, where the feasibility
# wrapper does the work; `-m slow` runs them past it.
EXPENSIVE = ("gp", "botorch")


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # models fit/train faster on one thread here


@pytest.fixture(scope="module")
def space():
    return load_space("autopeft", structure_of(TINY_CONFIGS["bert"]()))


@pytest.fixture(scope="module")
def problem(space):
    return SyntheticPeft(space, seed=0)


def _study(name, space, seed=0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sampler = make_sampler(name, space, budget_pct=BUDGET, metric_reference=0.5, n_startup_trials=STARTUP, seed=seed)
    return optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)


def _step(study, space, problem, fail=False):
    trial = study.ask()
    plan = space.suggest(trial)
    if fail:
        study.tell(trial, state=TrialState.FAIL)
    else:
        study.tell(trial, [problem.evaluate(plan.to_dict()), space.count(plan).pct])
    return trial, plan


def _plan_key(space, params):
    enc = SpaceEncoding(space)
    return Feasibility(space, enc, BUDGET).plan_keys(enc.index(params))[0]


def _run(name, space, problem, n, seed=0, fail_every=0):
    study = _study(name, space, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(n):
            _step(study, space, problem, fail=bool(fail_every) and i % fail_every == 1)
    return study


@pytest.fixture(scope="module")
def studies(space, problem):
    """One study per sampler (every second trial failed for a while), shared by the contract checks."""
    return {name: _run(name, space, problem, TRIALS[name], fail_every=3) for name in SAMPLER_NAMES}


@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_proposals_are_valid_and_within_budget(name, studies, space):
    trials = studies[name].get_trials(deepcopy=False)
    assert len(trials) == TRIALS[name]
    for t in trials:
        assert space.is_valid(t.params), (name, t.params)
        assert space.count(space.decode(t.params)).pct <= BUDGET, (name, t.params)


@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_never_repeats_an_evaluated_configuration(name, studies, space):
    keys = [_plan_key(space, t.params) for t in studies[name].get_trials(deepcopy=False)]
    assert len(keys) == len(set(keys)), f"{name} proposed a configuration twice"


@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_works_with_failed_trials(name, studies):
    states = [t.state for t in studies[name].get_trials(deepcopy=False)]
    assert TrialState.FAIL in states and states.count(TrialState.COMPLETE) >= STARTUP


def _asks_differ(name, space, problem, told):
    study = _run(name, space, problem, told)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = study.ask()
        space.suggest(first)  # RUNNING, not told
        second = study.ask()
        space.suggest(second)
    assert _plan_key(space, first.params) != _plan_key(space, second.params)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in EXPENSIVE else n
                                  for n in SAMPLER_NAMES])
def test_pending_points_give_different_configurations(name, space, problem):
    _asks_differ(name, space, problem, told=STARTUP + 1)


@pytest.mark.parametrize("name", EXPENSIVE)
def test_pending_points_in_startup_of_expensive_baselines(name, space, problem):
    _asks_differ(name, space, problem, told=STARTUP - 2)


@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_reproducible_with_a_seed(name, space, problem):
    n = STARTUP if name in EXPENSIVE else STARTUP + 1
    a = [t.params for t in _run(name, space, problem, n, seed=7).get_trials(deepcopy=False)]
    b = [t.params for t in _run(name, space, problem, n, seed=7).get_trials(deepcopy=False)]
    assert a == b


def test_enqueued_retry_is_used_as_is(space, problem):
    """A retried configuration (enqueued by the runner) is taken verbatim, and then counted as seen."""
    study = _run("mobo", space, problem, STARTUP + 1)
    failed = study.trials[1].params
    study.enqueue_trial(failed)
    trial, _ = _step(study, space, problem)
    assert trial.params == failed


def test_failed_configuration_is_not_proposed_again(space, problem):
    """A failed (e.g. OOM) configuration is never proposed again by the optimiser itself."""
    study = _run("mobo", space, problem, STARTUP + 2, fail_every=2)
    failed = {_plan_key(space, t.params) for t in study.trials if t.state == TrialState.FAIL}
    assert failed
    for _ in range(2):
        _, plan = _step(study, space, problem)
    later = [_plan_key(space, t.params) for t in study.trials[-2:]]
    assert not failed & set(later)


@pytest.mark.parametrize("name", ["mobo", "random"])
def test_stopped_configuration_is_seen_but_not_observed(name, space, problem):
    """A configuration stopped early by successive halving (PRUNED) is not proposed again, and its
    low-fidelity metric is not an observation."""
    from autopeft.optim._history import read_history

    study = _run(name, space, problem, STARTUP + 1)
    trial = study.ask()
    space.suggest(trial)
    study.tell(trial, state=TrialState.PRUNED)
    sampler = study.sampler
    history = read_history(study, sampler.encoding, sampler.feasibility)
    z = sampler.encoding.try_index(trial.params)
    assert sampler.feasibility.plan_keys(z[None, :])[0] in history.seen
    assert history.n_done == STARTUP + 1 and len(history.Z_failed) == 1
    stopped = _plan_key(space, trial.params)
    later = [_plan_key(space, _step(study, space, problem)[0].params) for _ in range(2)]
    assert stopped not in later


def test_baselines_are_wrapped_feasible(space):
    for name in ("random", "tpe", "nsga2", "gp", "botorch"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert isinstance(make_sampler(name, space, budget_pct=BUDGET), FeasibleSampler)


def test_unknown_sampler_and_surrogate_are_refused(space):
    with pytest.raises(ValueError, match="expected one of mobo"):
        make_sampler("cmaes", space, budget_pct=BUDGET)
    with pytest.raises(ValueError, match="expected gp or saas"):
        make_sampler("mobo", space, budget_pct=BUDGET, surrogate="rf")


def test_absolute_budget_applies(space, problem):
    (_, smallest), _ = space.param_range()
    cap = smallest.params * 40
    sampler = make_sampler("mobo", space, budget_pct=None, max_params=cap, metric_reference=0.5,
                           n_startup_trials=STARTUP, seed=0)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    for _ in range(STARTUP + 1):
        _step(study, space, problem)
    assert all(space.count(space.decode(t.params)).params <= cap for t in study.trials)


def test_mobo_refuses_a_study_with_other_directions(space):
    """The metric may go either way (tests/test_direction.py); params % must be minimised."""
    sampler = make_sampler("mobo", space, budget_pct=BUDGET, seed=0)
    study = optuna.create_study(directions=["maximize", "maximize"], sampler=sampler)
    with pytest.raises(ValueError, match="expected a study with directions"):
        space.suggest(study.ask())


def test_mobo_uses_the_model_after_startup(space, problem):
    study = _study("mobo", space)
    for _ in range(STARTUP + 1):
        _step(study, space, problem)
    timings = study.sampler.last_timings
    assert set(timings) >= {"fit", "acquisition", "search"} and timings["evaluations"] > 10
    assert np.isfinite(list(timings.values())).all()


def test_mobo_searches_lora_variants_past_startup_without_special_cases():
    """The family choice, DoRA/rsLoRA flags and LoKr's flat counts are ordinary dimensions to the sampler."""
    space = load_space("lora-variants", structure_of(TINY_CONFIGS["llama"]()))
    study = _run("mobo", space, SyntheticPeft(space, seed=0), STARTUP + 3)
    trials = study.get_trials(deepcopy=False)
    keys = [_plan_key(space, t.params) for t in trials]
    assert len(trials) == STARTUP + 3 and len(set(keys)) == len(keys)
    for t in trials:
        assert space.is_valid(t.params) and space.count(space.decode(t.params)).pct <= BUDGET
    assert len({space.decode(t.params).families[0] for t in trials}) >= 2
