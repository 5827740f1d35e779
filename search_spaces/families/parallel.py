"""Parallel bottleneck adapter (He et al. 2022) beside the attention block.

AdapterHub's `SeqBnConfig` and `ParBnConfig` both default to the feed-forward output and conflict
there, so the parallel adapter sits at the attention block (``mh_adapter``).
"""

from __future__ import annotations

from autopeft.search_spaces.families._bottleneck import Bottleneck


class Parallel(Bottleneck):
    name = "parallel"
    description = "parallel bottleneck adapter beside the attention block (AdapterHub ParBnConfig); width per layer"
    adapters_kind = "parallel"
    adapters_class = "ParBnConfig"
    placement = {"mh_adapter": True, "output_adapter": False}
    synthetic_side = "attention"
    efficiency = 0.95


FAMILY = Parallel()
