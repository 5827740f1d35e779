"""IA3 (Liu et al. 2022): learned vectors that rescale keys, values and the feed-forward block; no size.

Counting: peft puts one vector per target, of its output size (input size for the feed-forward
targets, which it scales on the input side). In mixed plans AdapterHub builds it on the feed-forward
block (its attention block holds LoRA there); those vectors are probed once per model on the meta device.
"""

from __future__ import annotations

import functools
import json
import logging
import math

import torch

from autopeft.search_spaces.families import _lowrank
from autopeft.search_spaces.families.base import Family
from autopeft.search_spaces.model_structure import DECODER_LAYER_ATTRS, LAYER_COUNT_ATTRS

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
            return _probe_adapters_ia3(structure.config_json)[structure.stack_index]
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


@functools.lru_cache(maxsize=32)
def _probe_adapters_ia3(config_json: str) -> tuple[int, ...]:
    """IA3 vectors adapters puts in one layer of each stack (its per-architecture placement), counted on
    the meta device with one block per stack (encoder-decoder models: one encoder and one decoder block)."""
    import adapters
    from transformers import AutoConfig, AutoModel

    data = json.loads(config_json)
    for name in (*LAYER_COUNT_ATTRS, *DECODER_LAYER_ATTRS):
        if name in data:
            data[name] = 1
    log = logging.getLogger("adapters")
    level = log.level
    log.setLevel(logging.ERROR)  # adapters warns "none are activated" while it builds the probe: not the user's concern
    try:
        with torch.device("meta"):
            model = AutoModel.from_config(AutoConfig.for_model(**data))
            adapters.init(model)
            model.add_adapter("probe", config=adapters.IA3Config(**ADAPTERS_PLACEMENT))
        model.train_adapter("probe")
    finally:
        log.setLevel(level)
    trainable = [(n, p.numel()) for n, p in model.named_parameters() if p.requires_grad]
    if not data.get("is_encoder_decoder"):
        return (sum(k for _, k in trainable),)
    return tuple(sum(k for n, k in trainable if n.startswith(f"{side}.")) for side in ("encoder", "decoder"))


FAMILY = Ia3()
