"""The fidelity-aware surrogate of `mobo`: rung results of successive halving as low-fidelity observations.

Checks that rung results (PRUNED, RUNNING and COMPLETE trials' ``rungs`` user attr) are read with the
right fidelity, that they enter the model next to the full-fidelity results, that candidates are
scored at the top fidelity only, that the model learns the bias and the extra noise of short runs,
and that `mobo` runs a successive-halving study (PRUNED trials with rungs) within its contract.
In-memory studies, a tiny BERT config, the synthetic learning curves of `autopeft.workers.synthetic`.
"""

from __future__ import annotations

import warnings

import numpy as np
import optuna
import pytest
import torch
from optuna.trial import TrialState

from autopeft.optim import MoboSampler, make_sampler
from autopeft.optim import _mobo as mobo_module
from autopeft.optim._fidelity import at_fidelity, fit_fidelity_gp
from autopeft.optim._history import fidelity_feature, read_history
from autopeft.optim._surrogate import fit_gp
from autopeft.search_spaces import load_space, structure_of
from autopeft.workers.synthetic import synthetic_curve
from tests.models import TINY_CONFIGS

optuna.logging.set_verbosity(optuna.logging.WARNING)
pytestmark = pytest.mark.usefixtures("one_torch_thread")

BUDGET = 3.0
LADDER = (9, 27, 81)


@pytest.fixture(scope="module")
def space():
    return load_space("autopeft", structure_of(TINY_CONFIGS["bert"]()))


def _sampler(space, **kwargs) -> MoboSampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make_sampler("mobo", space, budget_pct=BUDGET, metric_reference=0.5, n_startup_trials=3, seed=0,
                            **{"multi_fidelity": True, **kwargs})


def _study(sampler, direction="maximize"):
    return optuna.create_study(directions=[direction, "minimize"], sampler=sampler)


def _halving_trial(study, space, top_rung: int, *, finish: str = "auto", noise: float = 0.02):
    """Ask one trial and climb the ladder to `top_rung` as the runner does: a `rungs` entry per rung; it ends
    COMPLETE at the top rung, PRUNED below it (``finish="running"`` leaves it RUNNING)."""
    trial = study.ask()
    plan = space.suggest(trial)
    pct = space.count(plan).pct
    rungs = [{"rung": k, "steps": LADDER[k], "metric": synthetic_curve(plan.to_dict(), LADDER[k], LADDER[-1], noise),
              "train_seconds": 0.0} for k in range(top_rung + 1)]
    trial.set_user_attr("rungs", rungs)
    trial.set_user_attr("params_pct", pct)
    if finish == "running":
        return trial, rungs
    if top_rung == len(LADDER) - 1:
        study.tell(trial, [rungs[-1]["metric"], pct])
    else:
        study.tell(trial, state=TrialState.PRUNED)
    return trial, rungs


def test_fidelity_feature_is_log_steps_over_log_top():
    assert fidelity_feature(np.array([9, 27, 81]), 81) == pytest.approx([0.5, 0.75, 1.0])
    assert fidelity_feature(np.array([0, 1, 500]), 81) == pytest.approx([0.0, 0.0, 1.0])  # clipped
    assert fidelity_feature(np.array([3.0]), 1) == pytest.approx([1.0])


def test_history_reads_every_rung_result_below_the_top(space):
    sampler = _sampler(space)
    study = _study(sampler)
    _, complete = _halving_trial(study, space, 2)  # COMPLETE: rungs 9, 27 are low, 81 is its value
    _, pruned = _halving_trial(study, space, 0)  # PRUNED at 9 steps
    _, running = _halving_trial(study, space, 1, finish="running")  # promoted, now training at 81
    history = read_history(study, sampler.encoding, sampler.feasibility)
    assert history.top_steps == 81  # from the COMPLETE trial's last rung
    assert history.n_done == 1 and history.y[0] == pytest.approx(complete[-1]["metric"])
    expected = [complete[0], complete[1], pruned[0], running[0], running[1]]
    assert history.y_low == pytest.approx([e["metric"] for e in expected])
    assert history.f_low == pytest.approx([0.5, 0.75, 0.5, 0.5, 0.75])
    assert len(history.Z_pending) == 1 and len(history.Z_failed) == 1  # the PRUNED one: seen, never re-proposed
    assert len(history.observed_configs()) == 3


def test_history_top_steps_from_the_spec_or_left_out(space):
    sampler = _sampler(space)
    study = _study(sampler, "minimize")  # a loss: maximisation form is -metric
    _, pruned = _halving_trial(study, space, 0)
    assert read_history(study, sampler.encoding, sampler.feasibility).n_low == 0  # no top known: left out
    study.set_user_attr("spec", {"fidelity": {"max_steps": 81}})
    history = read_history(study, sampler.encoding, sampler.feasibility, sign=-1.0)
    assert history.top_steps == 81 and history.y_low == pytest.approx([-pruned[0]["metric"]])
    explicit = read_history(study, sampler.encoding, sampler.feasibility, sign=-1.0, top_steps=729)
    assert explicit.f_low == pytest.approx([np.log(9) / np.log(729)])


def _toy_data(seed=0, n=60, dim=8):
    """A top-fidelity function seen at 20 points (noise sd 0.05) and at every point after a short run
    (f = 0.5): scaled by 0.6, shifted by -0.3, noise sd 0.3."""
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, dim + 1, generator=g, dtype=torch.float64)

    def truth(X):
        return X[:, :3].sum(-1)

    y_top = truth(X[:20]) + 0.05 * torch.randn(20, generator=g, dtype=torch.float64)
    y_low = 0.6 * truth(X) - 0.3 + 0.3 * torch.randn(n, generator=g, dtype=torch.float64)
    train_X = torch.cat([at_fidelity(X[:20], 1.0), at_fidelity(X, 0.5)])
    return train_X, torch.cat([y_top, y_low]).unsqueeze(-1), X[:20], y_top.unsqueeze(-1), truth


def test_fidelity_gp_learns_the_bias_and_noise_of_short_runs():
    train_X, train_Y, X_top, y_top, truth = _toy_data()
    torch.manual_seed(0)
    model, state = fit_fidelity_gp(train_X, train_Y)
    noise = model.likelihood.noise_covar
    assert noise.growth.item() > 3.0  # rung noise variance >> top noise variance (true ratio 36: b = 7.2)
    assert model.mean_module.slope.item() < 0  # short runs score lower
    assert set(state) >= {"likelihood.noise_covar.raw_growth", "mean_module.slope", "covar_module.raw_lengthscale"}
    test = torch.rand(300, train_X.shape[-1] - 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    baseline, _ = fit_gp(X_top, y_top)
    with torch.no_grad():
        mf = model.posterior(at_fidelity(test)).mean.squeeze(-1)
        top_only = baseline.posterior(test).mean.squeeze(-1)
    # at the top fidelity it predicts the truth (unbiased) and better than the 20 top points alone
    assert (mf - truth(test)).abs().mean() < 0.1
    r_mf = torch.corrcoef(torch.stack([mf, truth(test)]))[0, 1].item()
    r_top = torch.corrcoef(torch.stack([top_only, truth(test)]))[0, 1].item()
    assert r_mf > r_top and r_mf > 0.95


def _record_model_inputs(monkeypatch):
    """Capture what `mobo` fits its fidelity-aware GP on and every batch the acquisition scores."""
    seen = {"fit": [], "scored": []}
    real_fit, real_evaluate = mobo_module.fit_fidelity_gp, mobo_module.evaluate

    def fit(train_X, train_Y, **kwargs):
        seen["fit"].append((train_X.clone(), train_Y.clone()))
        return real_fit(train_X, train_Y, **kwargs)

    def evaluate(acq, X, *args, **kwargs):
        seen["scored"].append(X.clone())
        return real_evaluate(acq, X, *args, **kwargs)

    monkeypatch.setattr(mobo_module, "fit_fidelity_gp", fit)
    monkeypatch.setattr(mobo_module, "evaluate", evaluate)
    return seen


def _halving_study(space, sampler, n_configs=10):
    """Successive halving by hand: of every three configurations one reaches 27 steps, one in nine 81."""
    study = _study(sampler)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(n_configs):
            _halving_trial(study, space, 2 if i % 9 == 0 else 1 if i % 3 == 0 else 0)
    return study


def test_rung_results_enter_the_model_and_candidates_are_scored_at_the_top(space, monkeypatch):
    seen = _record_model_inputs(monkeypatch)
    sampler = _sampler(space)
    study = _halving_study(space, sampler, n_configs=6)  # trials 0 (81 steps), 3 (27), the others 9
    trial = study.ask()
    space.suggest(trial)
    train_X, train_Y = seen["fit"][-1]
    history = read_history(study, sampler.encoding, sampler.feasibility, exclude_number=trial.number)
    assert history.n_done == 1 and history.n_low == 8  # trial 0: 81 (+ its 9, 27); trial 3: 9, 27; four 9s
    D = sampler.encoding.num_features
    assert train_X.shape == (9, D + 2) and train_Y.shape == (9, 1)
    assert sorted(train_X[:, -2].tolist()) == pytest.approx([0.5] * 6 + [0.75] * 2 + [1.0])
    assert train_X[0, -2] == 1.0 and train_Y[0, 0] == pytest.approx(history.y[0])
    # every configuration the acquisition scored was scored at fidelity 1, with its exact pct last
    assert seen["scored"] and all(X.shape[-1] == D + 2 and bool((X[:, -2] == 1.0).all()) for X in seen["scored"])
    assert sampler.last_timings["low_fidelity"] == 8 and sampler.last_timings["observations"] == 6


def test_without_rung_results_the_model_is_the_plain_gp(space, monkeypatch):
    seen = _record_model_inputs(monkeypatch)
    sampler = _sampler(space)
    study = _study(sampler)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(5):
            trial = study.ask()
            plan = space.suggest(trial)
            study.tell(trial, [synthetic_curve(plan.to_dict(), 81, 81), space.count(plan).pct])
    assert not seen["fit"] and seen["scored"] and seen["scored"][0].shape[-1] == sampler.encoding.num_features + 1
    off = MoboSampler(space, budget_pct=BUDGET, metric_reference=0.5, n_startup_trials=3, seed=0)
    assert off.multi_fidelity is False  # the default (docs/benchmarks.md: it did not pay on the benchmark)
    _halving_study(space, off, n_configs=6)
    assert not seen["fit"]  # rung results are ignored


def test_mobo_runs_a_successive_halving_study_within_its_contract(space):
    sampler = _sampler(space)
    study = _halving_study(space, sampler, n_configs=14)
    trials = study.get_trials(deepcopy=False)
    assert sum(t.state == TrialState.PRUNED for t in trials) == 12 and sum(t.state == TrialState.COMPLETE for t in trials) == 2
    keys = [sampler.feasibility.plan_keys(sampler.encoding.index(t.params)[None, :])[0] for t in trials]
    assert len(set(keys)) == len(keys)  # no stopped (PRUNED) configuration proposed again
    for t in trials:
        assert space.is_valid(t.params) and space.count(space.decode(t.params)).pct <= BUDGET
    assert sampler.last_timings["low_fidelity"] >= 10  # the BO steps used the rung results
    # seeded: the same study replays identically
    again = _halving_study(space, _sampler(space), n_configs=14)
    assert [t.params for t in again.get_trials(deepcopy=False)] == [t.params for t in trials]


def test_prune_baseline_keeps_the_possible_front_only():
    from autopeft.optim._acquisition import PctScale, prune_baseline

    scale = PctScale(low=0.01, high=1.0)
    pct_feature = torch.linspace(0, 1, 60, dtype=torch.float64)
    # metric rises with pct for the first 30 points (all on the front); the last 30 are far worse copies
    X = torch.stack([torch.zeros(60, dtype=torch.float64), pct_feature], dim=-1)
    y = torch.cat([torch.linspace(0, 1, 30), torch.full((30,), -5.0)]).to(torch.float64).unsqueeze(-1)
    X[30:, 0] = 1.0  # a separate region, so the GP tells the two groups apart
    torch.manual_seed(0)
    model, _ = fit_gp(X, y)
    torch.manual_seed(0)
    kept = prune_baseline(model, X, scale, max_points=20)
    assert 15 <= len(kept) <= 20 and bool((kept[:, 0] == 0.0).all())  # capped, and only the front group survives
    assert torch.equal(prune_baseline(model, X, scale, max_points=60), X)  # small baselines stay whole


def test_predict_top_ranks_configurations_by_the_fidelity_aware_model(space):
    sampler = _sampler(space, multi_fidelity=False)  # ranking by the model does not need it in proposals
    study = _study(sampler)
    assert sampler.predict_top(study, [], top_steps=81) is None  # nothing observed yet
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trials = [_halving_trial(study, space, 2 if i % 9 == 0 else 1 if i % 3 == 0 else 0)[0] for i in range(12)]
    configs = [t.params for t in trials]
    means = sampler.predict_top(study, configs, top_steps=81)
    assert len(means) == 12 and all(np.isfinite(means))
    assert 0.4 < min(means) and max(means) < 1.0  # in the metric's units (the curves run from 0.5 to 0.92)
    # a result not recorded yet is used: a high 27-step metric raises that configuration's prediction
    low, high = (sampler.predict_top(study, configs[1:2], top_steps=81, extra=[(configs[1], 27, m)])[0]
                 for m in (0.55, 0.9))
    assert high > low
    # a minimised metric comes back in its own units too (the model works in maximisation form)
    loss = _study(_sampler(space), direction="minimize")
    for t in study.get_trials():
        loss.add_trial(optuna.trial.create_trial(
            params=t.params, distributions=t.distributions, user_attrs={
                **t.user_attrs, "rungs": [{**r, "metric": 1 - r["metric"]} for r in t.user_attrs["rungs"]]},
            state=t.state, values=None if t.values is None else [1 - t.values[0], t.values[1]]))
    flipped = loss.sampler.predict_top(loss, configs, top_steps=81)
    assert np.corrcoef(flipped, means)[0, 1] < -0.9 and 0.0 < min(flipped) and max(flipped) < 0.6
