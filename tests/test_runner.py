"""The ask → dispatch → tell loop on real SQLite studies, with the synthetic evaluator."""

from __future__ import annotations

import itertools

import optuna
import pytest
from optuna.trial import TrialState

from autopeft.executors import InlineExecutor
from autopeft.objective import ACCURACY
from autopeft.runner import Runner, SearchError
from autopeft.search_spaces import load_space, structure_of
from autopeft.spec import build_spec
from autopeft.store import create_study, load_study, open_db, stored_spec
from autopeft.workers.synthetic import SyntheticEvaluator, synthetic_metric
from tests.models import TINY_CONFIGS


@pytest.fixture
def setup(tmp_path):
    config_dir = tmp_path / "model"
    TINY_CONFIGS["bert"]().save_pretrained(config_dir)
    url = f"sqlite:///{tmp_path / 'study.db'}"

    def make(trials=6, evaluator=None, name="s", max_retries=2, heartbeat=10.0):
        spec = build_spec({}, {"model": str(config_dir), "space": "lora", "execution.trials": trials,
                               "budget.max_params_pct": 100, "storage.url": url, "execution.max_retries": max_retries,
                               "execution.heartbeat_seconds": heartbeat})
        storage = open_db(url)
        sampler = optuna.samplers.RandomSampler(seed=trials)
        study = load_study(storage, name, sampler) if name in [s.study_name for s in storage.get_all_studies()] \
            else create_study(storage, name, spec, ACCURACY)
        study.sampler = sampler
        space = load_space("lora", structure_of(TINY_CONFIGS["bert"]()))
        return Runner(spec, study, space, InlineExecutor(evaluator or SyntheticEvaluator()))

    return make


def states(study):
    return [t.state for t in study.get_trials(deepcopy=False)]


def test_every_trial_lands_in_the_db_with_plan_params_and_values(setup):
    runner = setup(trials=6)
    progress = runner.run()
    study = runner.study
    assert states(study) == [TrialState.COMPLETE] * 6
    assert progress.completed == 6 and progress.failed == 0
    for t in study.get_trials():
        plan = runner.space.decode(t.params)
        count = runner.space.count(plan)
        assert t.user_attrs["plan"] == plan.to_dict()
        assert (t.user_attrs["params"], t.user_attrs["params_pct"]) == (count.params, count.pct)
        assert t.values == pytest.approx([synthetic_metric(plan.to_dict()), count.pct])
        assert t.user_attrs["result"]["status"] == "ok" and t.user_attrs["result"]["host"]
    assert stored_spec(study).execution.trials == 6


def test_resume_adds_up_and_numbers_stay_unique(setup):
    setup(trials=3).run()
    runner = setup(trials=7)
    runner.run()
    trials = runner.study.get_trials()
    assert [t.number for t in trials] == list(range(7))
    assert all(t.state == TrialState.COMPLETE for t in trials)


def test_stale_running_trials_are_failed_and_their_configuration_retried(setup):
    first = setup(trials=2)
    first.run()
    orphan = first.study.ask()  # a trial whose process died: RUNNING forever
    first.space.suggest(orphan)
    orphan.set_user_attr("driver", "a-process-that-died")
    orphan_params = dict(orphan.params)

    runner = setup(trials=4)
    assert runner.recover() == 1
    runner.run()
    trials = runner.study.get_trials()
    assert trials[orphan.number].state == TrialState.FAIL
    assert trials[orphan.number].user_attrs["failure"]["kind"] == "stale"
    retried = [t for t in trials if t.user_attrs.get("retry_of") == orphan.number]
    assert len(retried) == 1 and retried[0].params == orphan_params and retried[0].state == TrialState.COMPLETE
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 4
    assert TrialState.RUNNING not in states(runner.study)


def orphan_of(runner, driver, beat=True, **attrs):
    """A RUNNING trial of search process `driver` (which beats once then if `beat`), with user `attrs`."""
    from autopeft.store.liveness import heartbeat

    trial = runner.study.ask()
    runner.space.suggest(trial)
    for key, value in {"driver": driver, **attrs}.items():
        trial.set_user_attr(key, value)
    if beat:
        heartbeat(runner.study, driver)
    return trial


def test_running_trials_counted_towards_the_target_are_waited_for_then_failed_once_stale_and_retried(setup):
    """Another process's trial still inside its grace period (3 x 1 s) counts towards the target: the runner
    does not stop at completed + running = target, it waits, then fails and retries the trial."""
    setup(trials=1).run()
    runner = setup(trials=3, heartbeat=1.0)
    orphan = orphan_of(runner, "died-a-moment-ago")
    lines = []
    runner.on_progress = lambda p: lines.append(p.last_event)
    assert runner.recover() == 0  # its heartbeat is fresh
    progress = runner.run()
    trials = runner.study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE,
                                         TrialState.COMPLETE]
    assert trials[3].user_attrs["retry_of"] == orphan.number and trials[3].params == orphan.params
    assert f"trial {orphan.number}: its search process stopped; failed and queued again" in lines
    assert (progress.completed, progress.failed, progress.running) == (3, 1, 0)


def test_a_stale_trial_whose_configuration_used_up_its_retries_is_said_in_one_line_and_replaced(setup):
    setup(trials=1).run()
    runner = setup(trials=2, max_retries=1)
    orphan = orphan_of(runner, "a-process-that-died", beat=False, attempt=1)
    assert runner.recover() == 1
    assert runner.progress.last_event == (f"trial {orphan.number}: its search process stopped; not queued again, "
                                          "its configuration used up its 1 retries (execution.max_retries)")
    runner.run()
    trials = runner.study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    assert "retry_of" not in trials[2].user_attrs and trials[2].params != orphan.params


def test_a_trial_just_asked_by_another_process_is_not_stale(setup):
    """Between `ask` and recording its process, a trial names no driver: it is stale only once it is
    older than the grace period (3 missed heartbeats), so a second process starting then leaves it alone."""
    from autopeft.store.liveness import fail_stale_trials

    runner = setup(trials=2)
    just_asked = runner.study.ask()
    runner.space.suggest(just_asked)
    assert runner.recover() == 0
    assert fail_stale_trials(runner.study, "gone", grace_seconds=60.0) == []
    assert runner.study.trials[just_asked.number].state == TrialState.RUNNING
    assert [t.number for t in fail_stale_trials(runner.study, "gone", grace_seconds=0.0)] == [just_asked.number]
    assert runner.study.trials[just_asked.number].state == TrialState.FAIL


def test_failed_trials_are_recorded_with_reason_and_search_reaches_the_target(setup):
    calls = {"n": 0}

    def every_third(plan):
        calls["n"] += 1
        return "nan_loss" if calls["n"] % 3 == 0 else None

    runner = setup(trials=5, evaluator=SyntheticEvaluator(fail_when=every_third))
    progress = runner.run()
    failed = [t for t in runner.study.get_trials() if t.state == TrialState.FAIL]
    assert progress.completed == 5 and len(failed) == 2
    assert all(t.user_attrs["failure"] == {"kind": "nan_loss", "message": "synthetic nan_loss"} for t in failed)


def test_a_search_where_everything_fails_stops_with_one_clear_error(setup):
    runner = setup(trials=5, evaluator=SyntheticEvaluator(fail_when=lambda plan: "data_error"))
    with pytest.raises(SearchError, match="in a row failed; last: synthetic data_error"):
        runner.run()
    assert TrialState.RUNNING not in states(runner.study)


def test_ctrl_c_records_the_running_trial_as_failed(setup):
    calls = {"n": 0}

    def interrupt_on_third(plan):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return SyntheticEvaluator()(plan)

    runner = setup(trials=6, evaluator=interrupt_on_third)
    with pytest.raises(KeyboardInterrupt):
        runner.run()
    trials = runner.study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAIL]
    assert trials[2].user_attrs["failure"]["kind"] == "interrupted"
    # resuming evaluates the interrupted configuration first, once, and reaches the target
    resumed = setup(trials=6)
    resumed.recover()
    resumed.recover()  # a second recovery does not enqueue it twice
    resumed.run()
    trials = resumed.study.get_trials()
    assert trials[3].params == trials[2].params and trials[3].user_attrs["retry_of"] == 2
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 6 and len(trials) == 7


class Workers:
    """`capacity` workers running the synthetic evaluator; the oldest job finishes at each poll. Records how many
    of the study's trials were RUNNING at each poll, and every number submitted."""

    def __init__(self, capacity, study_of, interrupt_at_poll=None):
        self.capacity, self.study_of, self.interrupt_at_poll = capacity, study_of, interrupt_at_poll
        self.evaluate, self.queue, self.submitted, self.running_at_poll = SyntheticEvaluator(), [], [], []

    def submit(self, number, plan, fidelity=None):
        assert len(self.queue) < self.capacity, "submitted beyond capacity"
        self.queue.append((number, plan))
        self.submitted.append(number)

    def poll(self, timeout):
        from autopeft.store.trials import state_counts

        self.running_at_poll.append(state_counts(self.study_of())[TrialState.RUNNING])
        if len(self.running_at_poll) == self.interrupt_at_poll:
            raise KeyboardInterrupt
        number, plan = self.queue.pop(0)
        return [(number, self.evaluate(plan))]

    def cancel_all(self):
        numbers = [n for n, _ in self.queue]
        self.queue.clear()
        return numbers

    def close(self):
        pass


def test_with_several_workers_the_next_trial_is_asked_ahead_and_the_target_is_met_exactly(setup):
    runner = setup(trials=9)
    runner.executor = workers = Workers(3, lambda: runner.study)
    runner.dispatch.executor = workers
    progress = runner.run()
    # while the 3 workers were busy, a 4th trial was asked and waiting (but never past the target)
    assert max(workers.running_at_poll) == 4 and workers.running_at_poll[-1] == 1
    assert sorted(workers.submitted) == list(range(9))  # each trial once, none lost
    assert states(runner.study) == [TrialState.COMPLETE] * 9 and progress.completed == 9
    for t in runner.study.get_trials():
        assert t.values[1] == t.user_attrs["params_pct"] and t.user_attrs["driver"] == runner.driver


def test_a_trial_asked_ahead_is_failed_as_interrupted_on_ctrl_c(setup):
    runner = setup(trials=9)
    runner.executor = workers = Workers(3, lambda: runner.study, interrupt_at_poll=3)
    runner.dispatch.executor = workers
    with pytest.raises(KeyboardInterrupt):
        runner.run()
    trials = runner.study.get_trials()
    assert TrialState.RUNNING not in {t.state for t in trials}
    interrupted = [t.number for t in trials if t.state == TrialState.FAIL]
    assert len(interrupted) == 4 and all(trials[n].user_attrs["failure"]["kind"] == "interrupted" for n in interrupted)
    assert [n for n in interrupted if n not in workers.submitted] == [max(interrupted)]  # the one asked ahead


class Watching(optuna.samplers.RandomSampler):
    """Records, as each trial's parameters are about to be drawn, the study's RUNNING trials as (number, names
    its search process, has parameters); raises KeyboardInterrupt at the `interrupt_at`-th trial."""

    def __init__(self, seed, interrupt_at=None):
        super().__init__(seed=seed)
        self.seen, self.interrupt_at = [], interrupt_at

    def before_trial(self, study, trial):
        if len(self.seen) + 1 == self.interrupt_at:
            raise KeyboardInterrupt
        self.seen.append([(t.number, "driver" in t.user_attrs, bool(t.params))
                          for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))])


def test_trials_for_the_free_workers_are_created_together_named_at_once_and_drawn_one_by_one(setup):
    runner = setup(trials=6)
    runner.executor = workers = Workers(3, lambda: runner.study)
    runner.dispatch.executor = workers
    runner.study.sampler = sampler = Watching(seed=0)
    progress = runner.run()
    # the first three trials exist, named by this process (so no sweep takes them for a dead one's), before the
    # first is drawn; each is drawn after the one before it has its parameters (samplers see those as pending)
    assert sampler.seen[:3] == [[(0, True, False), (1, True, False), (2, True, False)],
                                [(0, True, True), (1, True, False), (2, True, False)],
                                [(0, True, True), (1, True, True), (2, True, False)]]
    assert sorted(workers.submitted) == list(range(6)) and progress.completed == 6
    assert states(runner.study) == [TrialState.COMPLETE] * 6


def test_trials_created_for_free_workers_are_failed_as_interrupted_on_ctrl_c(setup):
    runner = setup(trials=6)
    runner.executor = workers = Workers(4, lambda: runner.study)
    runner.dispatch.executor = workers
    runner.study.sampler = Watching(seed=0, interrupt_at=2)  # Ctrl-C while the second of four is drawn
    with pytest.raises(KeyboardInterrupt):
        runner.run()
    trials = runner.study.get_trials()
    assert workers.submitted == [0] and [t.number for t in trials] == [0, 1, 2, 3]
    assert {t.state for t in trials} == {TrialState.FAIL}
    assert all(t.user_attrs["failure"]["kind"] == "interrupted" for t in trials)


class AllAtOnce(Workers):
    """Every job in flight finishes at each poll; records how many trials were COMPLETE at each submit."""

    def __init__(self, capacity, study_of):
        super().__init__(capacity, study_of)
        self.complete_at_submit = []

    def submit(self, number, plan, fidelity=None):
        from autopeft.store.trials import state_counts

        super().submit(number, plan, fidelity)
        self.complete_at_submit.append(state_counts(self.study_of()).get(TrialState.COMPLETE, 0))

    def poll(self, timeout):
        finished, self.queue = self.queue, []
        return [(number, self.evaluate(plan)) for number, plan in finished]


def test_the_workers_a_poll_frees_get_new_trials_before_its_results_are_recorded(setup):
    runner = setup(trials=9)
    runner.executor = workers = AllAtOnce(3, lambda: runner.study)
    runner.dispatch.executor = workers
    progress = runner.run()
    # trials 3-5 started while 0-2 were still unrecorded (one asked ahead, two asked then); 6-8 likewise
    assert workers.submitted == list(range(9))
    assert workers.complete_at_submit == [0, 0, 0, 0, 0, 0, 3, 3, 3]
    assert states(runner.study) == [TrialState.COMPLETE] * 9 and progress.completed == 9


class SlowWorkers(Workers):
    """`Workers` whose every other poll times out with nothing finished."""

    def poll(self, timeout):
        if len(self.running_at_poll) % 2 == 0:
            from autopeft.store.trials import state_counts

            self.running_at_poll.append(state_counts(self.study_of())[TrialState.RUNNING])
            return []
        return super().poll(timeout)


def test_one_trial_per_eight_workers_is_asked_ahead_one_per_poll(setup):
    runner = setup(trials=40)
    runner.executor = workers = SlowWorkers(16, lambda: runner.study)
    runner.dispatch.executor = workers
    progress = runner.run()
    assert max(workers.running_at_poll) == 16 + 2  # two asked ahead while the 16 workers were busy
    # one at a time, so that a result coming in meanwhile waits for one ask at most before it is recorded
    assert max(b - a for a, b in itertools.pairwise(workers.running_at_poll)) == 1
    assert sorted(workers.submitted) == list(range(40)) and progress.completed == 40
    assert states(runner.study) == [TrialState.COMPLETE] * 40
