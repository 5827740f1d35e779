"""The model structure of decoder LLMs and encoder-decoder models: for every tiny family of
`tests.models.TINY_LM_CONFIGS`, every peft family and every target group, the computed count equals the
trainable parameters of the real peft model (LM classes, no classification head)."""

from __future__ import annotations

import pytest
import torch

from autopeft.backends import apply_plan, trainable_parameters
from autopeft.search_spaces import ModulePlan, Plan, count_plan, families, structure_of
from autopeft.search_spaces.errors import PlanError
from tests.models import TINY_LM_CONFIGS

# (family, target group, options): every peft family, every target group, LoRA with DoRA and rsLoRA too
CASES = [("lora", t, {}) for t in families.get("lora").target_groups]
CASES += [("lora", "all-linear", {"use_dora": True}), ("lora", "qv", {"use_dora": True, "use_rslora": True})]
CASES += [(f, t, {}) for f in ("loha", "lokr") for t in families.get(f).target_groups]
CASES += [("lokr", "attention", {"decompose_both": True}), ("ia3", None, {})]


def _model(name: str):
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    factory, seq2seq = TINY_LM_CONFIGS[name]
    torch.manual_seed(0)
    return (AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM).from_config(factory())


def _sizes(family: str, layers: int) -> tuple[int, ...]:
    if family == "ia3":
        return tuple(1 if i != 1 else 0 for i in range(layers))
    return tuple((0, 2, 4, 8)[i % 4] or 4 for i in range(layers))[:layers]


@pytest.mark.parametrize("name", sorted(TINY_LM_CONFIGS))
def test_count_equals_the_peft_model_for_every_family_and_target_group(name):
    structure = structure_of(TINY_LM_CONFIGS[name][0]())
    checked = 0
    for family, targets, options in CASES:
        fam = families.get(family)
        if fam.unavailable(structure):
            continue
        sizes = (0, *_sizes(family, structure.num_layers)[1:])  # layer 0 left out: the plan's mask matters
        try:
            plan = Plan(structure.num_layers, (ModulePlan(family, sizes, targets=targets, options=options),))
            expected = count_plan(plan, structure).params
        except PlanError:  # a group without nn.Linear layers for LoHa/LoKr (GPT-2's Conv1D)
            continue
        model = apply_plan(_model(name), plan, structure)
        assert trainable_parameters(model) == expected > 0, (name, family, targets, options)
        checked += 1
    assert checked >= 7  # at least every LoRA case and IA3 (GPT-2: LoHa/LoKr need nn.Linear layers)


@pytest.mark.parametrize("name", sorted(TINY_LM_CONFIGS))
def test_every_target_group_selects_layers_and_attention_and_mlp_split_the_block(name):
    structure = structure_of(TINY_LM_CONFIGS[name][0]())
    lora = families.get("lora")
    for layer in range(structure.num_layers):
        block = structure.block(layer)
        attention = {lin.path for lin in lora.targets_of(block, "attention")}
        mlp = {lin.path for lin in lora.targets_of(block, "mlp")}
        assert attention and mlp and not attention & mlp
        assert attention | mlp == {lin.path for lin in lora.targets_of(block, "all-linear")}
        assert {lin.path for lin in lora.targets_of(block, "qv")} <= attention


EXPECTED = {  # name: (stacks (path, first layer, blocks), attention linears of the last block, mlp linears of it)
    "t5": ((("encoder.block", 0, 2), ("decoder.block", 2, 3)), 8, 2),
    "flan-t5": ((("encoder.block", 0, 2), ("decoder.block", 2, 2)), 8, 3),
    "bart": ((("encoder.layers", 0, 2), ("decoder.layers", 2, 2)), 8, 2),
    "llama": ((("layers", 0, 4),), 4, 3),
    "phi3": ((("layers", 0, 3),), 2, 2),
    "gpt2": ((("h", 0, 4),), 2, 2),
    "gpt-neox": ((("layers", 0, 3),), 2, 2),
    "opt": ((("decoder.layers", 0, 3),), 4, 2),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_encoder_layers_come_first_then_decoder_layers(name):
    structure = structure_of(TINY_LM_CONFIGS[name][0]())
    stacks, attention, mlp = EXPECTED[name]
    assert tuple((s.path, s.first, s.num_layers) for s in structure.stacks) == stacks
    assert structure.num_layers == sum(n for _, _, n in stacks)
    last = structure.block(structure.num_layers - 1)
    assert len(last.attention_linears()) == attention and len(last.mlp_linears()) == mlp
    if structure.is_encoder_decoder:
        n = stacks[0][2]
        assert structure.stack_name(n - 1) == "encoder" and structure.stack_name(n) == "decoder"
        assert structure.locate(n) == (structure.stacks[1], 0)


def test_t5_cross_attention_is_in_the_attention_group_of_decoder_layers_only():
    structure = structure_of(TINY_LM_CONFIGS["t5"][0]())
    plan = Plan(5, (ModulePlan("lora", (4, 0, 4, 0, 0), targets="attention"),))
    model = apply_plan(_model("t5"), plan, structure)
    adapted = {n.split(".lora_A")[0] for n, p in model.named_parameters() if p.requires_grad and "lora_A" in n}
    assert any("decoder.block.0.layer.1.EncDecAttention.q" in n for n in adapted)
    assert not any("decoder.block.1." in n or "encoder.block.1." in n for n in adapted)
    assert sum("encoder.block.0." in n for n in adapted) == 4 and sum("decoder.block.0." in n for n in adapted) == 8
    assert trainable_parameters(model) == count_plan(plan, structure).params == 12 * 4 * (32 + 32)


ADAPTERS_PLANS = [  # (modules as (family, sizes from layer 1 on)), layer 0 varies per plan
    (("serial", 4, 4),), (("serial", 2, 4),), (("parallel", 0, 4),), (("prefix", 0, 4),),
    (("parallel", 4, 4), ("lora", 0, 2)), (("serial", 4, 4), ("ia3", 1, 1)),
]


@pytest.mark.adapters
@pytest.mark.parametrize("name", ["t5", "bart"])
def test_adapterhub_families_count_encoder_and_decoder_blocks_exactly(name):
    from transformers import AutoModel

    config = TINY_LM_CONFIGS[name][0]()
    structure = structure_of(config)
    layers = structure.num_layers
    for rows in ADAPTERS_PLANS:
        plan = Plan(layers, tuple(ModulePlan(f, (first,) + (rest,) * (layers - 1)) for f, first, rest in rows))
        model = apply_plan(AutoModel.from_config(config), plan, structure)
        # decoder blocks hold cross-attention: prefix-tuning and AdapterHub's LoRA count it too
        assert trainable_parameters(model) == count_plan(plan, structure).params, (name, plan.summary())
