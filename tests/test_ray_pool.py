"""Runner on a real local Ray: parallel actors, and a worker killed with SIGKILL mid-trial."""

from __future__ import annotations

import os
import signal
import threading
import time
from functools import partial

import optuna
import pytest
from optuna.trial import TrialState

from autopeft.objective import ACCURACY
from autopeft.runner import Runner
from autopeft.search_spaces import load_space, structure_of
from autopeft.spec import build_spec
from autopeft.store import create_study, open_db
from autopeft.workers.ray_pool import RayPool
from autopeft.workers.synthetic import SyntheticEvaluator
from tests.models import TINY_CONFIGS


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()


def make_runner(tmp_path, pool, trials):
    spec = build_spec({}, {"model": "unused", "space": "lora", "execution.trials": trials, "budget.max_params_pct": 100,
                           "execution.workers": pool.capacity})
    study = create_study(open_db(f"sqlite:///{tmp_path / 'ray.db'}"), "ray", spec, ACCURACY)
    study.sampler = optuna.samplers.RandomSampler(seed=1)
    return Runner(spec, study, load_space("lora", structure_of(TINY_CONFIGS["bert"]())), pool)


def test_two_long_lived_actors_share_the_trials(ray_local, tmp_path):
    pool = RayPool(partial(SyntheticEvaluator, 0.3), workers=2, cpus_per_trial=1)
    try:
        actor_pids = {w["pid"] for w in pool.where()}
        runner = make_runner(tmp_path, pool, trials=6)
        start = time.perf_counter()
        runner.run()
        elapsed = time.perf_counter() - start
    finally:
        pool.close()
    trials = runner.study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 6
    used = {t.user_attrs["result"]["pid"] for t in trials}
    assert used == actor_pids  # the same two processes served every trial
    assert elapsed < 6 * 0.3 + 1.5  # two at a time, not one after the other plus overhead


def test_a_worker_killed_mid_trial_is_replaced_and_its_trial_retried(ray_local, tmp_path):
    pool = RayPool(partial(SyntheticEvaluator, 1.5), workers=2, cpus_per_trial=1)
    victim = pool.where()[0]["pid"]
    killer = threading.Timer(0.8, os.kill, (victim, signal.SIGKILL))
    try:
        runner = make_runner(tmp_path, pool, trials=4)
        killer.start()
        runner.run()
    finally:
        killer.cancel()
        pool.close()
    trials = runner.study.get_trials()
    lost = [t for t in trials if t.state == TrialState.FAIL]
    assert len(lost) == 1 and lost[0].user_attrs["failure"]["kind"] == "worker_lost"
    retry = [t for t in trials if t.user_attrs.get("retry_of") == lost[0].number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE and retry[0].params == lost[0].params
    assert retry[0].user_attrs["result"]["pid"] != victim
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 4


def test_successive_halving_on_ray_sends_each_rung_its_steps(ray_local, tmp_path):
    pool = RayPool(partial(SyntheticEvaluator, 0.0, None, 27), workers=2, cpus_per_trial=1)
    try:
        spec = build_spec({}, {"model": "unused", "space": "lora", "execution.trials": 1, "budget.max_params_pct": 100,
                               "execution.workers": 2, "fidelity.max_steps": 27, "promotion.enabled": True})
        study = create_study(open_db(f"sqlite:///{tmp_path / 'ray.db'}"), "ray", spec, ACCURACY)
        study.sampler = optuna.samplers.RandomSampler(seed=1)
        runner = Runner(spec, study, load_space("lora", structure_of(TINY_CONFIGS["bert"]())), pool)
        runner.run()
    finally:
        pool.close()
    trials = runner.study.get_trials()
    assert sum(t.state == TrialState.COMPLETE for t in trials) >= 1 and len(trials) >= 2  # both actors worked
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    for t in trials:  # the steps each actor reports are the rung's
        assert [r["steps"] for r in t.user_attrs["rungs"]] == [3, 9, 27][: len(t.user_attrs["rungs"])]
        assert t.user_attrs["result"]["steps"] == t.user_attrs["rungs"][-1]["steps"]
