"""`Plan` → library configuration, and applying it to a Hugging Face model.

- peft (LoRA alone, IA3 alone): target modules as a regex over the exact layers and module paths of
  the plan; per-layer LoRA ranks via `rank_pattern` (keys match the module-name suffix).
- adapters (AdapterHub; bottleneck adapters, prefix-tuning and any mix): a `ConfigUnion` with
  `leave_out` per family. The serial adapter sits after the feed-forward block (`output_adapter`),
  the parallel adapter beside the attention block (`mh_adapter`): adapters refuses both at one spot.
  IA3 scales the feed-forward block there (adapters allows one LoRA-type module per location, and
  LoRA holds the attention block).
"""

from __future__ import annotations

import math
import re
from collections import Counter

from torch import nn

from autopeft.optional import require_adapters
from autopeft.search_spaces.counting import ADAPTERS_IA3_PLACEMENT, check_buildable, library_for
from autopeft.search_spaces.model_structure import ModelStructure
from autopeft.search_spaces.plan import ModulePlan, Plan, PlanError

ADAPTER_NAME = "autopeft"


def _layer_regex(structure: ModelStructure, layers, paths) -> str:
    """Regex that peft full-matches against module names: the given block paths in the given layers."""
    block = re.escape(structure.layers_path)
    layer_alt = "|".join(str(i) for i in layers)
    path_alt = "|".join(re.escape(p) for p in paths)
    return rf"(?:.*\.)?{block}\.(?:{layer_alt})\.(?:{path_alt})"


def peft_config(plan: Plan, structure: ModelStructure, task_type: str | None = None):
    """A `LoraConfig` or `IA3Config` that builds exactly `plan`; `PlanError` if peft cannot."""
    from peft import IA3Config, LoraConfig

    check_buildable(plan, "peft")
    (module,) = plan.active
    if module.family == "lora":
        linears = structure.select("lora", module.targets)
        targets = [lin.path for lin in linears]
        ranks = {i: s for i, s in enumerate(module.sizes) if s}
        default_rank = Counter(ranks.values()).most_common(1)[0][0]
        block = re.escape(structure.layers_path)
        return LoraConfig(
            r=default_rank,
            lora_alpha=module.alpha,
            lora_dropout=0.0,
            target_modules=_layer_regex(structure, module.layers, targets),
            rank_pattern={rf"{block}\.{i}\..*": r for i, r in ranks.items() if r != default_rank},
            fan_in_fan_out=any(lin.fan_in_fan_out for lin in linears),
            task_type=task_type,
        )
    linears = structure.select("ia3", module.targets)
    targets = [lin.path for lin in linears]
    feedforward = [lin.path for lin in structure.ia3_feedforward()]
    return IA3Config(
        target_modules=_layer_regex(structure, module.layers, targets),
        feedforward_modules=_layer_regex(structure, module.layers, feedforward),
        fan_in_fan_out=any(lin.fan_in_fan_out for lin in linears),
        task_type=task_type,
    )


def _reduction_factor(hidden: int, width: int) -> float:
    """The factor for which adapters' `int(hidden // factor)` equals `width` exactly."""
    factor = hidden / width
    while int(hidden // factor) < width:
        factor = math.nextafter(factor, 0.0)
    return factor


def _bottleneck_factor(structure: ModelStructure, module: ModulePlan):
    h = structure.hidden_size
    widths = {i: s for i, s in enumerate(module.sizes) if s}
    if len(set(widths.values())) == 1:
        return _reduction_factor(h, next(iter(widths.values())))
    mapping: dict[str, float] = {str(i): _reduction_factor(h, s) for i, s in widths.items()}
    mapping["default"] = mapping[str(next(iter(widths)))]
    return mapping


def adapters_config(plan: Plan, structure: ModelStructure):
    """An AdapterHub config (one family, or a `ConfigUnion`) that builds exactly `plan`.

    Raises `MissingExtra` (one line naming `autopeft[adapters]`) where `adapters` is not installed.
    """
    check_buildable(plan, "adapters")
    if plan.is_empty:
        raise PlanError("plan: no module in any layer; nothing to build")
    adapters = require_adapters(_what(plan))
    configs = []
    for m in plan.active:
        leave_out = [i for i in range(plan.num_layers) if m.sizes[i] == 0]
        size = max(m.sizes)
        if m.family == "serial":
            configs.append(adapters.SeqBnConfig(reduction_factor=_bottleneck_factor(structure, m), leave_out=leave_out))
        elif m.family == "parallel":
            configs.append(adapters.ParBnConfig(mh_adapter=True, output_adapter=False,
                                                reduction_factor=_bottleneck_factor(structure, m), leave_out=leave_out))
        elif m.family == "prefix":
            configs.append(adapters.PrefixTuningConfig(prefix_length=size, flat=True, leave_out=leave_out))
        elif m.family == "lora":
            configs.append(adapters.LoRAConfig(r=size, alpha=int(m.alpha), attn_matrices=["q", "v"], leave_out=leave_out))
        elif m.family == "ia3":
            configs.append(adapters.IA3Config(leave_out=leave_out, **ADAPTERS_IA3_PLACEMENT))
    return configs[0] if len(configs) == 1 else adapters.ConfigUnion(*configs)


def _what(plan: Plan) -> str:
    return f"a {' + '.join(plan.families) or 'empty'} plan"


def apply_plan(model: nn.Module, plan: Plan, structure: ModelStructure) -> nn.Module:
    """Add `plan`'s modules to a Hugging Face model and freeze everything else.

    Returns the model to train (a `PeftModel` for peft plans, the same model for adapters plans).
    Only adapter weights are trainable afterwards; callers unfreeze a task head themselves.
    """
    if library_for(plan) == "peft":
        from peft import get_peft_model

        return get_peft_model(model, peft_config(plan, structure))
    config = adapters_config(plan, structure)
    adapters = require_adapters(_what(plan))
    adapters.init(model)
    model.add_adapter(ADAPTER_NAME, config=config)
    model.train_adapter(ADAPTER_NAME)
    return model


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
