"""Exact parameter counts: analytic count == trainable params of the instantiated model, table-driven."""

from __future__ import annotations

import random

import pytest
import torch
from transformers import AutoModel

from autopeft.backends import apply_plan, trainable_parameters
from autopeft.search_spaces import ModulePlan, Plan, PlanError, count_plan, families, load_space, structure_of
from tests.extras import ADAPTERS, plan_params, space_params
from tests.models import TINY_CONFIGS

# The family table: one or more single-family plans per registered family, with sizes that differ per
# layer where the library allows it. Adding a family = one module in search_spaces/families + a row here.
FAMILY_PLANS = {
    "lora-qv": ModulePlan("lora", (4, 0, 2, 4), targets="qv", alpha=8),
    "lora-attention": ModulePlan("lora", (0, 2, 2, 0), targets="attention", alpha=16),
    "lora-all-linear": ModulePlan("lora", (1, 2, 4, 8), targets="all-linear", alpha=16),
    "lora-dora": ModulePlan("lora", (2, 0, 4, 4), targets="all-linear", options={"use_dora": True}),
    "lora-rslora": ModulePlan("lora", (8, 8, 0, 2), targets="attention", options={"use_rslora": True}),
    "lora-dora-rslora": ModulePlan("lora", (0, 4, 4, 4), targets="qv", options={"use_dora": True, "use_rslora": True}),
    "ia3": ModulePlan("ia3", (1, 0, 1, 1)),
    "serial": ModulePlan("serial", (8, 0, 3, 8)),
    "parallel": ModulePlan("parallel", (0, 16, 16, 1)),
    "prefix": ModulePlan("prefix", (5, 5, 0, 5)),
    "loha-qv": ModulePlan("loha", (2, 4, 0, 4), targets="qv", alpha=8),
    "loha-all-linear": ModulePlan("loha", (1, 1, 8, 16), targets="all-linear"),
    # LoKr: ranks on both sides of peft's full-factor threshold (r >= max(k, n) / 2), with and without decompose_both
    "lokr-attention": ModulePlan("lokr", (1, 2, 8, 16), targets="attention"),
    "lokr-all-linear": ModulePlan("lokr", (0, 4, 2, 1), targets="all-linear", alpha=16),
    "lokr-decompose-both": ModulePlan("lokr", (1, 2, 3, 16), targets="all-linear", options={"decompose_both": True}),
}
UNION_PLANS = {
    "lora+bottlenecks+prefix": (ModulePlan("lora", (4, 4, 0, 0), targets="qv", alpha=8),),
    "ia3+bottlenecks+prefix": (ModulePlan("ia3", (0, 1, 1, 0)),),
}
BOTTLENECKS_AND_PREFIX = (
    ModulePlan("serial", (0, 0, 6, 6)),
    ModulePlan("parallel", (2, 0, 2, 0)),
    ModulePlan("prefix", (0, 3, 3, 3)),
)
SINGLE_PLANS = {name: Plan(num_layers=4, modules=(m,)) for name, m in FAMILY_PLANS.items()}


def instantiated_count(model_name: str, plan: Plan) -> int:
    torch.manual_seed(0)
    model = AutoModel.from_config(TINY_CONFIGS[model_name]())
    return trainable_parameters(apply_plan(model, plan, structure_of(model.config)))


def test_every_registered_family_has_a_row_in_the_family_table():
    assert {m.family for m in FAMILY_PLANS.values()} == set(families.NAMES)


@pytest.mark.parametrize("model_name", sorted(TINY_CONFIGS))
@pytest.mark.parametrize("family", plan_params(SINGLE_PLANS))
def test_single_family_count_matches_instantiated_model(model_name, family):
    plan = SINGLE_PLANS[family]
    structure = structure_of(TINY_CONFIGS[model_name]())
    reason = families.get(plan.modules[0].family).unavailable(structure)
    if reason:  # LoHa / LoKr on GPT-2's Conv1D: refused in one line, before anything is built
        assert "Conv1D" in reason
        with pytest.raises(PlanError, match="Conv1D"):
            count_plan(plan, structure)
        return
    expected = count_plan(plan, structure)
    assert expected.params > 0
    assert instantiated_count(model_name, plan) == expected.params


@ADAPTERS
@pytest.mark.parametrize("model_name", sorted(TINY_CONFIGS))
@pytest.mark.parametrize("union", sorted(UNION_PLANS))
def test_union_of_families_count_matches_instantiated_model(model_name, union):
    plan = Plan(num_layers=4, modules=UNION_PLANS[union] + BOTTLENECKS_AND_PREFIX)
    expected = count_plan(plan, structure_of(TINY_CONFIGS[model_name]()))
    assert instantiated_count(model_name, plan) == expected.params


@pytest.mark.parametrize("model_name", sorted(TINY_CONFIGS))
@pytest.mark.parametrize("space_name", space_params())
def test_random_valid_points_of_every_space_count_exactly(model_name, space_name):
    structure = structure_of(TINY_CONFIGS[model_name]())
    space = load_space(space_name, structure)
    rng = random.Random(f"{model_name}-{space_name}")
    checked = 0
    while checked < 3:
        params = {name: rng.choice(d.choices) if hasattr(d, "choices") else rng.randint(d.low, d.high)
                  for name, d in space.distributions().items()}
        if not space.is_valid(params):
            continue
        plan = space.decode(params)
        assert instantiated_count(model_name, plan) == space.count(plan).params
        checked += 1


def test_base_params_is_the_base_model_size_and_pct_follows():
    config = TINY_CONFIGS["bert"]()
    structure = structure_of(config)
    assert structure.base_params == sum(p.numel() for p in AutoModel.from_config(config).parameters())
    count = count_plan(Plan(num_layers=4, modules=(FAMILY_PLANS["serial"],)), structure)
    assert count.pct == pytest.approx(100 * count.params / structure.base_params)


@pytest.mark.parametrize("model_name", sorted(TINY_CONFIGS))
def test_adapters_families_are_counted_from_the_config_alone(model_name):
    """No AdapterHub needed to count (the core env runs this): bottlenecks, prefix and AdapterHub's IA3 by formula."""
    structure = structure_of(TINY_CONFIGS[model_name]())
    h, inter, kv = structure.hidden_size, structure.intermediate_size, structure.num_kv_heads * structure.head_dim
    plan = Plan(num_layers=4, modules=(ModulePlan("ia3", (0, 1, 1, 0)),) + BOTTLENECKS_AND_PREFIX)
    serial = 2 * (2 * h * 6 + 6 + h)
    parallel = 2 * (2 * h * 2 + 2 + h)
    assert count_plan(plan, structure).params == 2 * (inter + h) + serial + parallel + 3 * 3 * 2 * kv


def test_known_count_for_bert_base_lora_qv():
    """LoRA r=8 on query and value of all 12 BERT-base layers: 12 * 2 * 8 * (768 + 768) = 294,912."""
    from transformers import BertConfig

    plan = Plan(num_layers=12, modules=(ModulePlan("lora", (8,) * 12, targets="qv"),))
    assert count_plan(plan, structure_of(BertConfig())).params == 294_912
