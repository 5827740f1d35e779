"""Serial bottleneck adapter (Houlsby et al. 2019, Pfeiffer placement): after the feed-forward block."""

from __future__ import annotations

from autopeft.search_spaces.families._bottleneck import Bottleneck


class Serial(Bottleneck):
    name = "serial"
    description = "serial bottleneck adapter after the feed-forward block (AdapterHub SeqBnConfig); width per layer"
    adapters_kind = "serial"
    adapters_class = "SeqBnConfig"
    synthetic_side = "ffn"
    efficiency = 0.9


FAMILY = Serial()
