"""The frozen bottom (embeddings and blocks below the lowest adapted block) runs without autograd."""

from __future__ import annotations

import pytest
import torch
from transformers import BertForSequenceClassification

from autopeft.backends import apply_plan
from autopeft.search_spaces import ModulePlan, Plan, structure_of
from autopeft.workers.frozen import FrozenBottom, find_blocks, lowest_adapted_layer
from tests.extras import plan_params
from tests.models import TINY_CONFIGS

PLANS = {
    "lora": Plan(4, (ModulePlan("lora", (0, 0, 8, 8), targets="qv"),)),
    "prefix": Plan(4, (ModulePlan("prefix", (0, 4, 4, 0)),)),
    "serial+ia3": Plan(4, (ModulePlan("serial", (0, 0, 0, 8)), ModulePlan("ia3", (0, 1, 0, 0)))),
}


def build(plan: Plan, seed: int = 0):
    torch.manual_seed(seed)
    model = BertForSequenceClassification(TINY_CONFIGS["bert"]())
    structure = structure_of(model.config)
    model = apply_plan(model, plan, structure)
    for name, param in model.named_parameters():
        if "classifier" in name:
            param.requires_grad_(True)
    return model.train(), structure


def batch(seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"input_ids": torch.randint(5, 120, (3, 9), generator=g), "attention_mask": torch.ones(3, 9, dtype=torch.long),
            "labels": torch.tensor([0, 1, 1])}


def test_lowest_adapted_layer_is_the_lowest_layer_of_any_family():
    assert lowest_adapted_layer(PLANS["lora"]) == 2
    assert lowest_adapted_layer(PLANS["prefix"]) == 1
    assert lowest_adapted_layer(PLANS["serial+ia3"]) == 1
    assert lowest_adapted_layer(Plan(4, (ModulePlan("lora", (0, 0, 0, 0)),))) is None


@pytest.mark.parametrize("name", plan_params(PLANS))
def test_blocks_below_run_without_grad_and_gradients_are_unchanged(name):
    plan = PLANS[name]
    lowest = lowest_adapted_layer(plan)
    grads = []
    for hooked in (False, True):
        model, structure = build(plan)
        blocks = find_blocks(model, structure)
        seen: dict[int, tuple[bool, bool]] = {}
        for i, block in enumerate(blocks):
            block.register_forward_hook(lambda m, a, out, i=i, seen=seen: seen.__setitem__(i, (torch.is_grad_enabled(),
                                                                                    out[0].requires_grad)))
        bottom = FrozenBottom(model, structure, lowest) if hooked else None
        torch.manual_seed(7)  # same dropout masks in both runs
        with torch.enable_grad():
            loss = model(**batch()).loss
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad})
        if hooked:
            assert bottom.active
            assert all(seen[i] == (False, False) for i in range(lowest)), seen
            assert all(seen[i] == (True, True) for i in range(lowest, 4)), seen
        assert torch.is_grad_enabled()
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 2
    for n in grads[0]:
        torch.testing.assert_close(grads[0][n], grads[1][n], msg=n)


def test_evaluation_under_inference_mode_is_untouched():
    model, structure = build(PLANS["lora"])
    bottom = FrozenBottom(model, structure, 2)
    model.eval()
    with torch.inference_mode():
        logits = model(**{k: v for k, v in batch().items() if k != "labels"}).logits
    assert logits.shape == (3, 2) and torch.is_grad_enabled()
    bottom.remove()
    assert not bottom.active


def test_a_failed_forward_leaves_grad_mode_on():
    model, structure = build(PLANS["lora"])
    FrozenBottom(model, structure, 2)
    find_blocks(model, structure)[1].register_forward_hook(lambda *a: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"), torch.enable_grad():
        model(**batch())
    assert torch.is_grad_enabled()


def test_nothing_is_hooked_when_a_trainable_weight_sits_below_or_at_block_zero():
    model, structure = build(PLANS["lora"])
    model.get_input_embeddings().weight.requires_grad_(True)
    assert not FrozenBottom(model, structure, 2).active
    model, structure = build(Plan(4, (ModulePlan("lora", (8, 0, 0, 8), targets="qv"),)))
    assert not FrozenBottom(model, structure, 0).active
