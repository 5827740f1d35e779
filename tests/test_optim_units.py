"""Unit tests of the optimiser's pure parts: encoding, exact counts, design, acquisition, local search,
the synthetic problem and the benchmark summary — shapes and values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from botorch.models import SingleTaskGP
from transformers import BertConfig

from autopeft.optim._acquisition import PctScale, evaluate, log_nehvi, metric_and_neg_pct
from autopeft.optim._base import pareto_mask
from autopeft.optim._design import feasible_design, greedy_maximin, sobol_indices
from autopeft.optim._encoding import SpaceEncoding
from autopeft.optim._feasibility import Feasibility
from autopeft.optim._local_search import local_search
from autopeft.optim.bench import Run, summarise, table_rows
from autopeft.optim.synthetic import SyntheticPeft, capacity, layer_weights
from autopeft.search_spaces import Plan, builtin_spaces, load_space, structure_of
from autopeft.search_spaces.plan import ModulePlan
from tests.models import TINY_CONFIGS


@pytest.fixture(scope="module")
def bert_base():
    return structure_of(BertConfig())


@pytest.fixture(scope="module", params=builtin_spaces())
def bound(request, bert_base):
    space = load_space(request.param, bert_base)
    enc = SpaceEncoding(space)
    return space, enc, Feasibility(space, enc, 1.0)


# --- encoding ---------------------------------------------------------------------------------------
def test_encoding_round_trip_and_feature_shapes(bound):
    space, enc, _ = bound
    Z = enc.random(np.random.default_rng(0), 50)
    assert Z.shape == (50, enc.d) and enc.d == len(space.distributions())
    for z in Z[:10]:
        assert np.array_equal(enc.index(enc.params(z)), z)
    X = enc.features(Z)
    assert X.shape == (50, enc.num_features)
    assert X.min() >= 0.0 and X.max() <= 1.0


def test_encoding_values_on_the_lora_space(bert_base):
    enc = SpaceEncoding(load_space("lora", bert_base))
    params = {name: 0 for name in enc.names}
    params.update({f"lora.size.{i}": 0 for i in range(12)}, **{"lora.size.0": 16, "lora.size.1": 4},
                  **{"lora.targets": "attention", "lora.alpha": 16.0})
    x = enc.features(enc.index(params))[0]
    # 12 ordinal sizes (choices 0,2,4,8,16 → index / 4), targets one-hot (3 columns), alpha ordinal
    assert x[0] == 1.0 and x[1] == 0.5 and x[2] == 0.0
    assert list(x[12:15]) == [0.0, 1.0, 0.0]
    assert x[15] == 0.5
    assert enc.num_features == 16


def test_neighbours_are_one_exchange(bert_base):
    enc = SpaceEncoding(load_space("autopeft", bert_base))
    z = enc.index({**{n: 0 for n in enc.names}, "serial.size": 6, "parallel.size": 0, "prefix.size": 768,
                   **{f"mask.{i}": 1 for i in range(6)}})
    N = enc.neighbours(z)
    # 12 flags flip; serial moves both ways, parallel only up, prefix only down
    assert N.shape == (12 + 2 + 1 + 1, enc.d)
    assert ((N != z).sum(axis=1) == 1).all()
    assert (np.abs(N - z).sum(axis=1) == 1).all()


def test_onehot_neighbours_take_every_other_value(bert_base):
    enc = SpaceEncoding(load_space("lora", bert_base))
    z = np.zeros(enc.d, dtype=np.int64)
    changed_targets = [w for w in enc.neighbours(z) if w[enc.position["lora.targets"]] != 0]
    assert sorted(w[enc.position["lora.targets"]] for w in changed_targets) == [1, 2]


# --- exact counts and feasibility -------------------------------------------------------------------------
# A user space where a choice of families shares a mask with others (LoRA or IA3, never both with each other).
CHOICE_SPACE = ("name: c\nmodules:\n  - {family: [lora, ia3], name: la, sizes: [0, 1], mask: shared}\n"
                "  - {family: serial, sizes: [0, 4, 8], mask: shared}\n  - {family: prefix, sizes: [0, 2], mask: own}\n")


@pytest.mark.parametrize("config", ["bert", "llama", "gpt2"])
@pytest.mark.parametrize("space_name", [*builtin_spaces(), "choice-file"])
def test_vectorised_counts_equal_the_space_counts(tmp_path, config, space_name):
    if space_name == "choice-file":
        (tmp_path / "c.yaml").write_text(CHOICE_SPACE)
        space_name = str(tmp_path / "c.yaml")
    space = load_space(space_name, structure_of(TINY_CONFIGS[config]()))
    enc = SpaceEncoding(space)
    feas = Feasibility(space, enc, 5.0)
    Z = enc.random(np.random.default_rng(1), 120)
    params, valid, feasible = feas.params(Z), feas.valid(Z), feas.feasible(Z)
    for z, p, v, f in zip(Z, params, valid, feasible, strict=True):
        trial_params = enc.params(z)
        assert space.is_valid(trial_params) == v
        if v:
            count = space.count(space.decode(trial_params))
            assert count.params == p
            assert f == (count.pct <= 5.0)
            assert feas.check(trial_params) == f


def test_plan_keys_ignore_parameters_that_do_not_matter(bert_base):
    space = load_space("mixed", bert_base)
    enc = SpaceEncoding(space)
    feas = Feasibility(space, enc, 1.0)
    base = {n: 0 for n in enc.names} | {"lora.size": 8, "lora.mask.3": 1}
    other_mask = base | {"serial.mask.5": 1}  # serial has size 0: its mask does not matter
    bigger = base | {"lora.size": 16}
    k = feas.plan_keys(np.stack([enc.index(base), enc.index(other_mask), enc.index(bigger)]))
    assert k[0] == k[1] != k[2]


def test_plan_keys_ignore_options_the_chosen_family_lacks(bert_base):
    space = load_space("lora-variants", bert_base)
    enc = SpaceEncoding(space)
    feas = Feasibility(space, enc, 5.0)
    base = {n: d.choices[0] for n, d in space.distributions().items()} | {"lowrank.size.11": 8, "lowrank.family": "loha"}
    dora = base | {"lowrank.use_dora": True}  # LoHa has no DoRA: the same plan
    lora, lora_dora = base | {"lowrank.family": "lora"}, dora | {"lowrank.family": "lora"}
    k = feas.plan_keys(np.stack([enc.index(p) for p in (base, dora, lora, lora_dora)]))
    assert k[0] == k[1] and len({k[0], k[2], k[3]}) == 3
    assert space.decode(dora) == space.decode(base) and space.decode(lora_dora) != space.decode(lora)


def test_random_feasible_and_repair(bound):
    _, enc, feas = bound
    rng = np.random.default_rng(0)
    Z = feas.random_feasible(rng, 30)
    assert Z.shape == (30, enc.d) and feas.feasible(Z).all() and len(set(feas.plan_keys(Z))) == 30
    # every size and flag at its maximum, other choices at their first (LoRA, not the tiny LoKr): far over 1%
    big = np.where([d.role in ("flag", "size", "targets", "alpha") for d in enc.dims], enc.sizes - 1, 0)
    assert not feas.feasible(big)[0]
    fixed = feas.repair(big, rng)
    assert fixed is not None and feas.feasible(fixed)[0]


def test_budget_needs_a_bound(bert_base):
    space = load_space("lora", bert_base)
    with pytest.raises(ValueError, match="expected a budget"):
        Feasibility(space, SpaceEncoding(space), None, None)
    feas = Feasibility(space, SpaceEncoding(space), 10.0, max_params=100_000)
    assert feas.effective_budget_pct == pytest.approx(100 * 100_000 / bert_base.base_params)


# --- design -------------------------------------------------------------------------------------------
def test_sobol_and_design_are_feasible_distinct_and_seeded(bound):
    _, enc, feas = bound
    S = sobol_indices(enc, 64, seed=3)
    assert S.shape == (64, enc.d) and (S >= 0).all() and (S < enc.sizes).all()
    D1 = feasible_design(enc, feas, 8, seed=3, features=enc.features)
    D2 = feasible_design(enc, feas, 8, seed=3, features=enc.features)
    assert D1.shape == (8, enc.d) and np.array_equal(D1, D2)
    assert feas.feasible(D1).all() and len(set(feas.plan_keys(D1))) == 8


def test_greedy_maximin_picks_the_far_points():
    X = np.array([[0.0], [0.1], [1.0], [0.5], [0.45]])
    assert greedy_maximin(X, 3) == [0, 2, 3]


# --- acquisition ----------------------------------------------------------------------------------------
def test_pct_scale_round_trip():
    scale = PctScale(low=0.001, high=1.0)
    pct = np.array([0.001, 0.01, 0.1, 1.0])
    f = scale.to_feature(pct)
    assert np.allclose(f, [0, 1 / 3, 2 / 3, 1])
    assert torch.allclose(scale.to_pct(torch.tensor(f)), torch.tensor(pct, dtype=torch.float64))
    with pytest.raises(ValueError, match="expected 0 < low <= high"):
        PctScale(low=0.0, high=1.0)


def test_metric_and_neg_pct_shapes_and_values():
    scale = PctScale(low=0.01, high=1.0)
    obj = metric_and_neg_pct(scale)
    X = torch.tensor([[[0.3, 0.0]], [[0.7, 1.0]]], dtype=torch.float64)  # batch 2 x q 1 x D 2
    samples = torch.full((4, 2, 1, 1), 0.8, dtype=torch.float64)  # sample 4 x batch 2 x q 1 x 1
    out = obj(samples, X=X)
    assert out.shape == (4, 2, 1, 2)
    assert torch.allclose(out[..., 0], torch.tensor(0.8, dtype=torch.float64))
    assert torch.allclose(out[0, :, 0, 1], torch.tensor([-0.01, -1.0], dtype=torch.float64))
    mcmc = obj(torch.zeros(4, 2, 3, 1, 1, dtype=torch.float64), X=X)  # fully Bayesian: 3 MCMC samples
    assert mcmc.shape == (4, 2, 3, 1, 2)


def _toy_acquisition(X_pending=None):
    torch.manual_seed(0)
    # one input feature + the pct feature; metric rises with the first feature
    X = torch.tensor([[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]], dtype=torch.float64)
    Y = torch.tensor([[0.6], [0.7], [0.8]], dtype=torch.float64)
    model = SingleTaskGP(X, Y).eval()
    scale = PctScale(low=0.01, high=1.0)
    return X, log_nehvi(model, X, (0.5, -1.0), scale, X_pending=X_pending, mc_samples=32, seed=0)


def test_log_nehvi_prefers_cheaper_configurations():
    X, acq = _toy_acquisition()
    cand = torch.tensor([[0.9, 0.05], [0.9, 0.95]], dtype=torch.float64)  # same metric input, cheap vs dear
    values = evaluate(acq, cand)
    assert values.shape == (2,)
    assert values[0] > values[1]


def test_pending_points_lower_the_acquisition_next_to_them():
    cand = torch.tensor([[0.95, 0.2]], dtype=torch.float64)
    _, free = _toy_acquisition()
    _, busy = _toy_acquisition(X_pending=cand.clone())
    assert evaluate(busy, cand)[0] < evaluate(free, cand)[0]


def test_evaluate_chunks_consistently():
    _, acq = _toy_acquisition()
    cand = torch.rand(7, 2, dtype=torch.float64)
    assert torch.allclose(evaluate(acq, cand, chunk=3), evaluate(acq, cand, chunk=100))


# --- local search ------------------------------------------------------------------------------------
def test_local_search_climbs_to_the_admissible_optimum(bert_base):
    enc = SpaceEncoding(load_space("autopeft", bert_base))
    target = enc.random(np.random.default_rng(5), 1)[0]

    def score(Z):
        return -np.abs(Z - target).sum(axis=1).astype(float)

    def keys(Z):
        return [enc.key(z) for z in np.atleast_2d(Z)]

    start = np.zeros((1, enc.d), dtype=np.int64)
    result = local_search(score, start, enc.neighbours, lambda Z: np.ones(len(Z), bool), keys, max_evals=5000)
    assert np.array_equal(result.z, target) and result.score == 0.0
    # forbidding the optimum: the best admissible point is one step away
    blocked = local_search(score, start, enc.neighbours, lambda Z: np.abs(Z - target).sum(axis=1) > 0, keys,
                           max_evals=5000)
    assert blocked.score == -1.0


def test_local_search_respects_the_evaluation_budget(bert_base):
    enc = SpaceEncoding(load_space("mixed", bert_base))
    starts = enc.random(np.random.default_rng(0), 4)
    result = local_search(lambda Z: np.random.default_rng(0).random(len(Z)), starts, enc.neighbours,
                          lambda Z: np.ones(len(Z), bool), lambda Z: [enc.key(z) for z in Z], max_evals=100)
    assert result.evaluations <= 100 and result.z is not None


def test_pareto_mask():
    metric = np.array([0.8, 0.7, 0.9, 0.6])
    pct = np.array([0.5, 0.2, 0.9, 0.3])
    assert list(pareto_mask(metric, pct)) == [True, True, True, False]


# --- synthetic problem ---------------------------------------------------------------------------------
def test_synthetic_peft_is_peft_like(bert_base):
    space = load_space("autopeft", bert_base)
    problem = SyntheticPeft(space, seed=0, noise_sd=0.0)

    def plan(size, layers):
        sizes = tuple(size if i in layers else 0 for i in range(12))
        return Plan(12, (ModulePlan("serial", sizes), ModulePlan("parallel", (0,) * 12), ModulePlan("prefix", (0,) * 12)))

    low, high = problem.evaluate(plan(12, range(0, 3))), problem.evaluate(plan(12, range(9, 12)))
    assert high > low  # upper layers matter more
    gains = [problem.evaluate(plan(s, range(12))) for s in (3, 12, 48)]
    assert gains[0] < gains[1] < gains[2] and gains[2] - gains[1] < gains[1] - gains[0]  # diminishing returns
    assert all(0.0 <= g <= 1.0 for g in gains)
    assert layer_weights(12)[0] == pytest.approx(0.25) and layer_weights(12)[-1] == pytest.approx(1.0)
    assert capacity("lora", 0, 768) == 0.0 and capacity("lora", 8, 768, "qv") > capacity("lora", 2, 768, "qv")


def test_synthetic_noise_is_a_function_of_plan_and_seed(bert_base):
    space = load_space("lora", bert_base)
    plan = space.decode({n: d.choices[-1] if hasattr(d, "choices") else 1 for n, d in space.distributions().items()})
    a, b = SyntheticPeft(space, seed=0), SyntheticPeft(space, seed=1)
    assert a.evaluate(plan) == a.evaluate(plan.to_dict())
    assert a.evaluate(plan) != b.evaluate(plan)
    assert abs(a.evaluate(plan) - b.evaluate(plan)) < 0.05


# --- benchmark summary -------------------------------------------------------------------------------------
def test_summary_values():
    ref = (0.5, 1.0)
    good = Run("a", 0, [(0.6, 0.5), (0.8, 0.1), None], [0.1, 0.2, 0.3], failed=1)
    bad = Run("b", 0, [(0.55, 0.9), (0.6, 0.5), (0.7, 0.5)], [0.01, 0.01, 0.01])
    # normalised: area / ((1 - 0.5) * 1.0)
    assert good.hypervolumes(ref) == pytest.approx([0.1, 0.54, 0.54])
    assert bad.hypervolumes(ref)[-1] == pytest.approx(0.2)  # (0.7, 0.5) dominates the rest
    result = summarise([good, bad], problem="p", space="s", budget_pct=1.0, metric_floor=0.5, trials=3,
                       n_startup_trials=1, checkpoints=(2, 3))
    a, b = result.summaries
    assert a.hv_mean == {2: pytest.approx(0.54), 3: pytest.approx(0.54)}
    assert a.trials_to_95 == [2] and b.trials_to_95 == [None] and b.trials_to_95_mean == 4
    assert a.median_suggest_s == pytest.approx(0.25) and a.failed == 1
    rows = table_rows(result)
    assert rows[0]["sampler"] == "a" and rows[1]["reached_95"] == "0/1"
    assert math.isclose(rows[0]["hv@3_mean"], 0.54)


def test_summary_of_runs_continued_past_the_horizon():
    """Checkpoints, the best and suggest times use the first `trials`; trials to 95% the whole run."""
    fast = Run("a", 0, [(0.6, 0.5), (0.8, 0.1)], [0.1, 0.2], suggest_cpu_seconds=[0.05, 0.07])
    # reaches 95% of a's best (0.54) only at its 4th trial, after the 2-trial horizon
    slow = Run("b", 0, [(0.55, 0.9), (0.6, 0.5), (0.7, 0.5), (0.9, 0.1)], [0.01, 0.02, 0.5, 0.5])
    result = summarise([fast, slow], problem="p", space="s", budget_pct=1.0, metric_floor=0.5, trials=2,
                       n_startup_trials=0, checkpoints=(2,))
    a, b = result.summaries
    assert a.trials_to_95 == [2] and b.trials_to_95 == [4] and b.reached_95 == 1
    assert b.hv_mean == {2: pytest.approx(0.1)}  # hypervolume at the horizon, not at the end
    assert b.median_suggest_s == pytest.approx(0.015)  # the continued trials' times are left out
    assert a.median_suggest_cpu_s == pytest.approx(0.06) and b.median_suggest_cpu_s is None
    assert result.curves["b"] == [pytest.approx([0.01, 0.1])]


def test_sampler_run_continues_until_the_target(bert_base):
    from autopeft.optim.bench import LoadedProblem, SamplerRun

    space = load_space("lora", bert_base)
    problem = LoadedProblem("synthetic", space, 0.5, SyntheticPeft(space, seed=0).evaluate)
    sampler_run = SamplerRun(problem, "random", 0, budget_pct=1.0)
    for _ in range(3):
        sampler_run.step()
    reference = (0.5, 1.0)
    now = sampler_run.run.hypervolumes(reference)[-1]
    assert sampler_run.continue_until(now, 10) and len(sampler_run.run.points) == 3  # already there
    assert not sampler_run.continue_until(1.0, 6) and len(sampler_run.run.points) == 6  # unreachable: capped
    target = sampler_run.run.hypervolumes(reference)[-1] + 1e-6
    reached = sampler_run.continue_until(target, 200)
    hv = sampler_run.run.hypervolumes(reference)
    assert reached and hv[-1] >= target and hv[-2] < target  # stopped at the first trial that reached it
    assert len(sampler_run.run.suggest_cpu_seconds) == len(sampler_run.run.points)
