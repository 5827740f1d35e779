"""One training step on a built model changes only adapter (and head) weights, for every family."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from autopeft.backends import apply_plan
from autopeft.search_spaces import ModulePlan, Plan, families, structure_of
from tests.extras import plan_params
from tests.models import TINY_CONFIGS

PLANS = {
    "lora": (ModulePlan("lora", (0, 4, 4, 2), targets="all-linear"),),
    "lora-dora-rslora": (ModulePlan("lora", (2, 2, 0, 4), targets="attention", options={"use_dora": True, "use_rslora": True}),),
    "loha": (ModulePlan("loha", (0, 2, 4, 4), targets="all-linear"),),
    "lokr": (ModulePlan("lokr", (4, 0, 2, 16), targets="all-linear", options={"decompose_both": True}),),
    "ia3": (ModulePlan("ia3", (1, 1, 0, 0)),),
    "serial": (ModulePlan("serial", (4, 4, 4, 4)),),
    "parallel": (ModulePlan("parallel", (0, 0, 8, 8)),),
    "prefix": (ModulePlan("prefix", (3, 3, 3, 0)),),
    "union": (ModulePlan("serial", (0, 4, 0, 4)), ModulePlan("parallel", (4, 0, 4, 0)), ModulePlan("prefix", (2, 2, 0, 0))),
}


@pytest.mark.parametrize("model_name", ["bert", "roberta", "gpt2"])
@pytest.mark.parametrize("plan_name", plan_params({name: Plan(4, modules) for name, modules in PLANS.items()}))
def test_one_step_changes_only_adapter_and_head_weights(model_name, plan_name):
    torch.manual_seed(0)
    config = TINY_CONFIGS[model_name]()
    if families.get(PLANS[plan_name][0].family).unavailable(structure_of(config)):
        pytest.skip(f"{PLANS[plan_name][0].family} cannot be built on {model_name} (tests/test_counting.py checks the error)")
    config.num_labels = 2
    if model_name == "gpt2":
        config.pad_token_id = 0
    model = AutoModelForSequenceClassification.from_config(config)
    head_names = {n for n, _ in model.named_parameters() if n.startswith(("classifier", "score"))}
    model = apply_plan(model, Plan(4, PLANS[plan_name]), structure_of(config))
    for name, param in model.named_parameters():
        if any(name.endswith(h) for h in head_names):
            param.requires_grad_(True)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    adapter_names = trainable - {n for n in trainable if any(n.endswith(h) for h in head_names)}
    assert adapter_names, "the plan added no trainable weights"

    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    ids = torch.randint(1, 100, (4, 10))
    loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=torch.tensor([0, 1, 0, 1])).loss
    loss.backward()
    optimizer.step()

    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed <= trainable, f"frozen weights changed: {sorted(changed - trainable)[:3]}"
    assert changed & adapter_names, "no adapter weight changed"
