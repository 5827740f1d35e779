"""Successive-halving promotion in the runner: real SQLite studies, the synthetic learning curve."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.trial import TrialState

from autopeft.executors import InlineExecutor
from autopeft.objective import ACCURACY
from autopeft.promotion import decide
from autopeft.runner import Runner
from autopeft.search_spaces import load_space, structure_of
from autopeft.spec import SpecError, build_spec
from autopeft.store import create_study, load_study, open_db
from autopeft.store.attrs import trial_attr
from autopeft.store.liveness import heartbeat
from autopeft.workers.synthetic import SyntheticEvaluator, SyntheticResult, synthetic_curve, synthetic_metric
from tests.models import TINY_CONFIGS

LADDER = [3, 9, 27]


class Recording(SyntheticEvaluator):
    """The synthetic evaluator, remembering the fidelity overrides of every call."""

    def __init__(self, **kw):
        super().__init__(full_steps=27, **kw)
        self.calls: list[dict | None] = []
        self.plans: list[dict] = []

    def __call__(self, plan, fidelity=None):
        self.calls.append(fidelity)
        self.plans.append(plan)
        return super().__call__(plan, fidelity) if fidelity is not None else super().__call__(plan)


@pytest.fixture
def setup(tmp_path):
    config_dir = tmp_path / "model"
    TINY_CONFIGS["bert"]().save_pretrained(config_dir)
    url = f"sqlite:///{tmp_path / 'study.db'}"

    def make(trials=4, promotion=True, evaluator=None, seed=0, sampler=None, rank_by="metric"):
        spec = build_spec({}, {"model": str(config_dir), "space": "lora", "execution.trials": trials,
                               "budget.max_params_pct": 100, "storage.url": url, "fidelity.max_steps": 27,
                               "promotion.enabled": promotion, "promotion.min_steps": 3, "promotion.rank_by": rank_by})
        storage = open_db(url)
        sampler = sampler or optuna.samplers.RandomSampler(seed=seed)
        study = load_study(storage, "s", sampler) if "s" in [s.study_name for s in storage.get_all_studies()] \
            else create_study(storage, "s", spec, ACCURACY)
        study.sampler = sampler
        space = load_space("lora", structure_of(TINY_CONFIGS["bert"]()))
        return Runner(spec, study, space, InlineExecutor(evaluator or Recording()))

    return make


def test_configurations_climb_the_rungs_and_only_top_rung_results_are_complete(setup):
    evaluator = Recording()
    runner = setup(trials=2, evaluator=evaluator)
    assert runner.ladder == LADDER
    progress = runner.run()
    trials = runner.study.get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert len(complete) == 2 and len(pruned) == len(trials) - 2 > 0
    assert progress.completed == 2 and progress.pruned == len(pruned) and progress.failed == 0

    # the first configuration is the first result at every rung: always promoted to the top
    assert trials[0].state == TrialState.COMPLETE
    for t in complete:
        assert [r["rung"] for r in t.user_attrs["rungs"]] == [0, 1, 2]
        assert [r["steps"] for r in t.user_attrs["rungs"]] == LADDER and t.user_attrs["steps"] == sum(LADDER)
        assert t.values[0] == pytest.approx(synthetic_curve(t.user_attrs["plan"], 27, 27))
        assert t.values[0] == t.user_attrs["rungs"][-1]["metric"]
        assert [r["promote"] for r in t.user_attrs["rungs"][:2]] == [True, True] and "promote" not in t.user_attrs["rungs"][2]
    for t in pruned:
        assert t.values is None
        *lower, last = t.user_attrs["rungs"]
        assert last["rung"] < 2 and [r["rung"] for r in t.user_attrs["rungs"]] == list(range(last["rung"] + 1))
        assert t.user_attrs["steps"] == sum(LADDER[: last["rung"] + 1])
        assert all(r["promote"] for r in lower)
        assert not last["promote"] and last["rank"] > last["keep"] == math.ceil(last["of"] / 3)

    # inline: rung-0 results arrive in trial order, so trial k is ranked among k + 1 results ...
    assert [t.user_attrs["rungs"][0]["of"] for t in trials] == list(range(1, len(trials) + 1))
    # ... against exactly the rung-0 results of the trials before it
    for k, t in enumerate(trials):
        earlier = [(u.user_attrs["rungs"][0]["metric"], u.user_attrs["params_pct"]) for u in trials[:k]]
        expected = decide((t.user_attrs["rungs"][0]["metric"], t.user_attrs["params_pct"]), earlier, eta=3)
        assert {k: t.user_attrs["rungs"][0][k] for k in ("promote", "rank", "of", "keep")} == expected.to_dict()

    # every evaluation asked for its rung's steps, and the steps recorded add up to the work done
    assert sorted(c["max_steps"] for c in evaluator.calls) == sorted(r["steps"] for t in trials for r in t.user_attrs["rungs"])
    assert sum(t.user_attrs["steps"] for t in trials) == sum(c["max_steps"] for c in evaluator.calls)
    assert TrialState.RUNNING not in [t.state for t in trials]


def test_a_resumed_search_ranks_against_the_rung_results_already_in_the_study(setup):
    setup(trials=1).run()
    before = setup(trials=1).study.get_trials()
    runner = setup(trials=2, seed=1)
    runner.run()
    trials = runner.study.get_trials()
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2
    first_new = trials[len(before)]
    assert first_new.user_attrs["rungs"][0]["of"] == len(before) + 1
    assert TrialState.RUNNING not in [t.state for t in trials]


def _checked_against_a_full_read(runner) -> list[tuple[int, int, int]]:
    """Wrap `runner._decide`: at every decision, the rung results held in memory must equal those the runner
    used to gather by reading every trial of the study; returns (trial, rung, those results) per decision."""
    original, decisions = runner._decide, []

    def checked(running, metric):
        rung, number = running.rung, running.trial.number
        full = [(e["metric"], t.user_attrs["params_pct"]) for t in runner.study.get_trials(deepcopy=False)
                if t.number != number for e in trial_attr(t.user_attrs, "rungs", ()) if e["rung"] == rung]
        decision = original(running, metric)
        assert runner.rung_results.at(rung, exclude=number) == full
        assert decision.of == len(full) + 1
        decisions.append((number, rung, full))
        return decision

    runner._decide = checked
    return decisions


def test_rung_decisions_read_each_trial_once_not_the_whole_study_per_decision(setup):
    setup(trials=1).run()  # a study that already holds rung results: the next search is seeded from it
    runner = setup(trials=4, seed=1)
    decisions = _checked_against_a_full_read(runner)
    runner.run()
    trials = runner.study.get_trials()
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 4
    assert len(decisions) > 20 and {rung for _, rung, _ in decisions} == {0, 1}
    # every trial's rung results were read from the study at most once (the old way: every trial per decision)
    assert runner.rung_results.reads <= len(trials) < len(decisions) * len(trials) / 10


def test_rung_results_of_another_search_process_are_picked_up_while_its_trial_climbs(setup):
    other_trial = {}

    class WithAnotherProcess(Recording):
        def __call__(self, plan, fidelity=None):
            if len(self.calls) == 2:  # another process on the study records a rung-0 result, still running
                other = optuna.load_study(study_name="s", storage=open_db(url))
                heartbeat(other, "other")  # a live process: its trial is not failed as stale
                trial = other_trial["trial"] = other.ask()
                for key, value in (("driver", "other"), ("params_pct", 0.001),
                                   ("rungs", [{"rung": 0, "steps": 3, "metric": 0.95}])):
                    trial.set_user_attr(key, value)
                other_trial["study"] = other
            if len(self.calls) == 8:  # ... then its rung-1 result, and it stops
                other_trial["trial"].set_user_attr("rungs", [{"rung": 0, "steps": 3, "metric": 0.95},
                                                             {"rung": 1, "steps": 9, "metric": 0.96}])
                other_trial["study"].tell(other_trial["trial"], state=TrialState.PRUNED)
            return super().__call__(plan, fidelity)

    runner = setup(trials=3, evaluator=WithAnotherProcess())
    url = runner.spec.storage.url
    decisions = _checked_against_a_full_read(runner)
    runner.run()
    foreign = other_trial["trial"].number
    its = {0: (0.95, 0.001), 1: (0.96, 0.001)}  # its results, counted in later decisions at their rung
    assert all(any(its[r] in full for _, rung, full in decisions if rung == r) for r in (0, 1))
    trials = runner.study.get_trials()
    assert trials[foreign].state == TrialState.PRUNED and "driver" in trials[foreign].user_attrs
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 3


def test_a_configuration_proposed_again_after_it_was_stopped_is_failed_without_training(setup):
    first = setup(trials=2)
    first.run()
    trials = first.study.get_trials()
    stopped = next(t for t in trials if t.state == TrialState.PRUNED)
    first.study.enqueue_trial(stopped.params)  # as a sampler that ignores PRUNED trials would propose it
    evaluator = Recording()
    runner = setup(trials=3, evaluator=evaluator)
    runner.run()
    again = runner.study.get_trials()[len(trials)]
    assert again.params == stopped.params and again.state == TrialState.FAIL
    assert again.user_attrs["failure"] == {"kind": "duplicate",
                                           "message": f"configuration already stopped early in trial {stopped.number}"}
    assert stopped.user_attrs["plan"] not in evaluator.plans  # not trained a second time


def test_a_failure_at_a_higher_rung_fails_the_trial_and_keeps_its_rung_results(setup):
    class FailAtTop(Recording):
        def __call__(self, plan, fidelity=None):
            if fidelity and fidelity["max_steps"] == 27 and len(self.calls) == 2:
                self.calls.append(fidelity)
                return SyntheticResult(metric=None, status="failed", failure={"kind": "oom", "message": "synthetic oom"},
                                       extra={"steps": 5})
            return super().__call__(plan, fidelity)

    runner = setup(trials=1, evaluator=FailAtTop())
    runner.run()
    first = runner.study.get_trials()[0]
    assert first.state == TrialState.FAIL and first.user_attrs["failure"]["kind"] == "oom"
    assert [r["rung"] for r in first.user_attrs["rungs"]] == [0, 1] and first.user_attrs["steps"] == 3 + 9 + 5


def test_without_promotion_a_search_runs_each_trial_once_at_the_spec_fidelity(setup):
    evaluator = Recording()
    runner = setup(trials=3, promotion=False, evaluator=evaluator)
    assert runner.ladder is None
    runner.run()
    trials = runner.study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert evaluator.calls == [None, None, None]
    assert all("rungs" not in t.user_attrs and "steps" not in t.user_attrs for t in trials)
    assert [t.values[0] for t in trials] == pytest.approx([synthetic_metric(t.user_attrs["plan"]) for t in trials])


@pytest.mark.parametrize(("overrides", "message"), [
    ({"promotion.enabled": True}, "promotion.enabled: needs fidelity.max_steps (the steps of the top rung); set it"),
    ({"promotion.enabled": True, "fidelity.max_steps": 10, "promotion.min_steps": 11},
     "promotion.min_steps: expected at most fidelity.max_steps (10), got 11"),
    ({"promotion.eta": 1}, "promotion.eta: expected an integer >= 2, got 1"),
    ({"promotion.rungs": 3}, "promotion.rungs: unknown field; expected one of: enabled, eta, min_steps, rank_by"),
    ({"promotion.enabled": True, "fidelity.max_steps": 27, "promotion.rank_by": "model", "optimizer.sampler": "tpe"},
     "promotion.rank_by: model needs optimizer.sampler mobo (its surrogate ranks the rung results), got tpe; "
     "use rank_by: metric or sampler mobo"),
])
def test_promotion_spec_errors_name_the_field(overrides, message):
    with pytest.raises(SpecError) as err:
        build_spec({"model": "m"}, overrides)
    assert str(err.value) == message


class Oracle(optuna.samplers.RandomSampler):
    """A random sampler that "predicts" each configuration's top-rung metric exactly (the synthetic curve at
    27 steps), from the third rung-0 result on; records what it was asked."""

    def __init__(self, space):
        super().__init__(seed=0)
        self.space, self.asked = space, []

    def predict_top(self, study, configs, *, top_steps, extra=()):
        self.asked.append((len(configs), top_steps, [(steps, metric) for _, steps, metric in extra]))
        if len(configs) < 3:
            return None
        return [synthetic_curve(self.space.decode(params).to_dict(), 27, 27) for params in configs]


def test_with_rank_by_model_rung_results_are_ranked_by_the_samplers_top_rung_prediction(setup):
    space = load_space("lora", structure_of(TINY_CONFIGS["bert"]()))
    oracle = Oracle(space)
    runner = setup(trials=2, sampler=oracle, rank_by="model")
    runner.run()
    trials = runner.study.get_trials()
    top = {t.number: synthetic_curve(t.user_attrs["plan"], 27, 27) for t in trials}
    first = [t.user_attrs["rungs"][0] for t in trials]
    # the first two decisions had no prediction (rung metrics ranked); from the third on, the predictions did
    assert ["predicted" in entry for entry in first] == [False, False] + [True] * (len(trials) - 2)
    for k, t in enumerate(trials[2:], start=2):
        earlier = [(top[u.number], u.user_attrs["params_pct"]) for u in trials[:k]]
        expected = decide((top[t.number], t.user_attrs["params_pct"]), earlier, eta=3)
        assert first[k]["predicted"] == pytest.approx(top[t.number])
        assert {key: first[k][key] for key in ("promote", "rank", "of", "keep")} == \
            {key: value for key, value in expected.to_dict().items() if key != "predicted"}
    # each decision gave the sampler the result being decided (steps, metric) and the top rung's steps
    rung0 = [entry for entry in oracle.asked if entry[2][0][0] == 3]
    assert [metric for *_, [(_, metric)] in rung0] == [entry["metric"] for entry in first]
    assert {top_steps for _, top_steps, _ in oracle.asked} == {27}
