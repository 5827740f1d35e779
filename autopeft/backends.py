"""`Plan` → library configuration, and applying it to a Hugging Face model.

Thin over the family registry (``search_spaces/families``): each family builds its own module.

- peft (one peft family alone: LoRA, IA3, LoHa, LoKr): target modules as a regex over the exact
  layers and module paths of the plan; per-layer ranks via `rank_pattern` (keys match the
  module-name suffix).
- adapters (AdapterHub; bottleneck adapters, prefix-tuning and any mix): one family's config, or a
  `ConfigUnion` of them, each with `leave_out` for the layers it is not in.
"""

from __future__ import annotations

from torch import nn

from autopeft.optional import require_adapters
from autopeft.search_spaces import families
from autopeft.search_spaces.counting import check_buildable, library_for
from autopeft.search_spaces.model_structure import ModelStructure
from autopeft.search_spaces.plan import Plan

ADAPTER_NAME = "autopeft"


def peft_config(plan: Plan, structure: ModelStructure, task_type: str | None = None):
    """The peft config that builds exactly `plan`; `PlanError` if peft cannot."""
    check_buildable(plan, "peft")
    (family,) = dict.fromkeys(plan.families)
    return families.get(family).peft_config_for(plan.modules_of(family), structure, task_type)


def adapters_config(plan: Plan, structure: ModelStructure):
    """An AdapterHub config (one family, or a `ConfigUnion`) that builds exactly `plan`.

    Raises `MissingExtra` (one line naming `autopeft[adapters]`) where `adapters` is not installed.
    """
    check_buildable(plan, "adapters")
    adapters = require_adapters(_what(plan))
    configs = [families.get(m.family).adapters_config(m, structure) for m in plan.active]
    if len(configs) == 1:
        return configs[0]
    return adapters.ConfigUnion(*configs)


def _what(plan: Plan) -> str:
    return f"a {' + '.join(m.family for m in plan.active) or 'empty'} plan"


def apply_plan(model: nn.Module, plan: Plan, structure: ModelStructure, task_type: str | None = None) -> nn.Module:
    """Add `plan`'s modules to a Hugging Face model and freeze everything else.

    Returns the model to train (a `PeftModel` for peft plans, the same model for adapters plans).
    Only adapter weights are trainable afterwards; callers unfreeze a task head themselves.
    `task_type` is peft's (``CAUSAL_LM``, ``SEQ_2_SEQ_LM``; None for a plain `PeftModel`).
    """
    if library_for(plan) == "peft":
        from peft import get_peft_model

        return get_peft_model(model, peft_config(plan, structure, task_type=task_type))
    config = adapters_config(plan, structure)
    adapters = require_adapters(_what(plan))
    adapters.init(model)
    model.add_adapter(ADAPTER_NAME, config=config)
    model.train_adapter(ADAPTER_NAME)
    return model


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
