"""IA3 (Liu et al. 2022): learned vectors that rescale keys, values and the feed-forward block; no size.

Counting: peft puts one vector per target, of its output size (input size for the feed-forward
targets, which it scales on the input side). In mixed plans AdapterHub builds it on the feed-forward
block (its attention block holds LoRA there): one vector per projection of the block, of its output
size, intermediate + hidden per layer (adapters wraps the up and the down projection, in either
order). Counted from the config alone, so counting never needs the adapters library; tests check the
formula against the instantiated AdapterHub model where that library is installed.
"""

from __future__ import annotations

import math

from autopeft.search_spaces.families import _lowrank
from autopeft.search_spaces.families.base import Family

_FALLBACK_FFN_OUT = ("output.dense", "down_proj", "fc2", "mlp.c_proj", "out_lin", "dense_4h_to_h")
_FALLBACK_IA3 = ("key", "value", "k_proj", "v_proj", "k_lin", "v_lin", "c_attn", "qkv", "qkv_proj", *_FALLBACK_FFN_OUT)
# Where adapters puts IA3: the feed-forward block, since its attention block holds LoRA in mixed plans.
ADAPTERS_PLACEMENT = {"selfattn_lora": False, "intermediate_lora": True, "output_lora": True}


class Ia3(Family):
    name = "ia3"
    description = "IA3: learned rescaling vectors on keys, values and the feed-forward output; on/off per layer"
    size_name = "on"
    max_size = 1
    target_groups = ("kv-ffn",)  # keys, values and the feed-forward output (peft's IA3 default)
    libraries = ("peft", "adapters")
    adapters_kind = "lora"  # adapters' IA3 is a LoRA-type module: one LoRA-type module per model
    synthetic_side = "ffn"
    efficiency = 0.5

    def targets_of(self, structure, targets):
        return structure.named(structure.peft_default("IA3_TARGET") or _FALLBACK_IA3)

    def feedforward(self, structure):
        """IA3 targets that scale their input (feed-forward) rather than their output."""
        names = structure.peft_default("IA3_FEEDFORWARD") or _FALLBACK_FFN_OUT
        ffn = set(structure.named(names))
        return tuple(lin for lin in self.targets_of(structure, None) if lin in ffn)

    def layer_cost(self, structure, module, size, library):
        if size == 0:
            return 0
        if library == "adapters":
            return structure.intermediate_size + structure.hidden_size
        feedforward = set(self.feedforward(structure))
        return sum(lin.in_features if lin in feedforward else lin.out_features for lin in self.targets_of(structure, None))

    def peft_config(self, module, structure, task_type=None):
        from peft import IA3Config

        linears = self.targets_of(structure, module.targets)
        return IA3Config(
            target_modules=_lowrank.peft_targets((module,), structure, lambda m, view: self.targets_of(view, None)),
            feedforward_modules=_lowrank.peft_targets((module,), structure, lambda m, view: self.feedforward(view)),
            fan_in_fan_out=any(lin.fan_in_fan_out for lin in linears),
            task_type=task_type,
        )

    def adapters_config(self, module, structure):
        import adapters

        return adapters.IA3Config(leave_out=[i for i, s in enumerate(module.sizes) if s == 0], **ADAPTERS_PLACEMENT)

    def synthetic_capacity(self, module, size, hidden):
        return self.efficiency * (1.0 - math.exp(-size)) if size > 0 else 0.0  # on/off: size scale 1


FAMILY = Ia3()
