"""Exported files load in the library they are for and rebuild the same trainable-parameter count."""

from __future__ import annotations

import pytest
from transformers import AutoModel

from autopeft.backends import trainable_parameters
from autopeft.export import export_plan
from autopeft.search_spaces import ModulePlan, Plan, PlanError, count_plan, families, structure_of
from tests.extras import ADAPTERS
from tests.models import TINY_CONFIGS
from tests.test_counting import FAMILY_PLANS

# Every row of the family table that peft builds (LoRA with DoRA/rsLoRA, IA3, LoHa, LoKr), plus one.
PEFT_PLANS = {
    "lora-per-layer-ranks": Plan(4, (ModulePlan("lora", (2, 0, 4, 8), targets="attention", alpha=16),)),
    **{name: Plan(4, (m,)) for name, m in FAMILY_PLANS.items() if families.get(m.family).libraries[0] == "peft"},
}
ADAPTERS_PLANS = {
    "serial-per-layer": Plan(4, (ModulePlan("serial", (8, 4, 0, 2)),)),
    "union": Plan(4, (ModulePlan("parallel", (4, 4, 0, 0)), ModulePlan("prefix", (0, 2, 2, 0)),
                      ModulePlan("lora", (0, 0, 4, 4), alpha=8))),
}


@pytest.mark.parametrize("model_name", sorted(TINY_CONFIGS))
@pytest.mark.parametrize("plan_name", sorted(PEFT_PLANS))
def test_peft_export_loads_in_peft_with_the_same_count(tmp_path, model_name, plan_name):
    from peft import PeftConfig, get_peft_model

    plan, config = PEFT_PLANS[plan_name], TINY_CONFIGS[model_name]()
    structure = structure_of(config)
    if families.get(plan.modules[0].family).unavailable(structure):  # LoHa / LoKr on GPT-2's Conv1D
        with pytest.raises(PlanError, match="Conv1D"):
            export_plan(plan, structure, "peft", tmp_path)
        return
    path = export_plan(plan, structure, "peft", tmp_path, model="tiny-model")
    assert path.name == "adapter_config.json"
    loaded = PeftConfig.from_pretrained(str(tmp_path))
    assert loaded.base_model_name_or_path == "tiny-model"
    model = get_peft_model(AutoModel.from_config(config), loaded)
    assert trainable_parameters(model) == count_plan(plan, structure).params


@ADAPTERS
@pytest.mark.parametrize("model_name", ["bert", "llama"])
@pytest.mark.parametrize("plan_name", sorted(ADAPTERS_PLANS))
def test_adapters_export_loads_in_adapters_with_the_same_count(tmp_path, model_name, plan_name):
    import adapters

    plan, config = ADAPTERS_PLANS[plan_name], TINY_CONFIGS[model_name]()
    structure = structure_of(config)
    path = export_plan(plan, structure, "adapters", tmp_path)
    loaded = adapters.AdapterConfig.load(str(path))
    model = AutoModel.from_config(config)
    adapters.init(model)
    model.add_adapter("exported", config=loaded)
    model.train_adapter("exported")
    assert trainable_parameters(model) == count_plan(plan, structure).params


@pytest.mark.parametrize("plan", [*PEFT_PLANS.values(), *ADAPTERS_PLANS.values()])
def test_yaml_export_round_trips(tmp_path, plan):
    path = export_plan(plan, structure_of(TINY_CONFIGS["bert"]()), "yaml", tmp_path)
    assert Plan.from_text(path.read_text()) == plan


def test_peft_refuses_a_mixed_plan_and_names_the_format_that_can(tmp_path):
    with pytest.raises(PlanError, match="adapters"):
        export_plan(ADAPTERS_PLANS["union"], structure_of(TINY_CONFIGS["bert"]()), "peft", tmp_path)
    assert not (tmp_path / "adapter_config.json").exists()


def test_adapters_refuses_per_layer_lora_ranks_and_names_peft(tmp_path):
    with pytest.raises(PlanError, match="peft"):
        export_plan(PEFT_PLANS["lora-per-layer-ranks"], structure_of(TINY_CONFIGS["bert"]()), "adapters", tmp_path)
