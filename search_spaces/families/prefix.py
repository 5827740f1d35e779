"""Prefix-tuning (Li and Liang 2021), flat: L learned key and value vectors per attention head.

Counting: ``L * 2 * kv_heads * head_dim`` per layer, twice in decoder blocks of encoder-decoder models
(AdapterHub's ``cross_prefix``: a prefix for cross-attention too). AdapterHub takes one length for all layers.
"""

from __future__ import annotations

import math

from autopeft.search_spaces.families.base import Family


class Prefix(Family):
    name = "prefix"
    description = "prefix-tuning (flat): learned key/value prefixes in the attention of chosen layers; one length"
    size_name = "length"
    size_letter = "l"
    libraries = ("adapters",)
    adapters_kind = "prefix"
    synthetic_side = "attention"
    efficiency = 0.7

    def check(self, module, library):
        if len({s for s in module.sizes if s}) > 1:
            return "prefix.sizes: adapters needs one prefix length for all layers; use a single length"
        return None

    def layer_cost(self, structure, module, size, library):
        per_attention = size * 2 * structure.num_kv_heads * structure.head_dim
        return per_attention * (2 if structure.has_cross_attention else 1)

    def adapters_config(self, module, structure):
        import adapters

        return adapters.PrefixTuningConfig(prefix_length=max(module.sizes), flat=True,
                                           leave_out=[i for i, s in enumerate(module.sizes) if s == 0])

    def synthetic_capacity(self, module, size, hidden):
        return self.efficiency * (1.0 - math.exp(-size / 16.0)) if size > 0 else 0.0


FAMILY = Prefix()
