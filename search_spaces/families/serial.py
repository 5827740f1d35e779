"""Serial bottleneck adapter (Houlsby et al. 2019, Pfeiffer placement): after the feed-forward block."""

from __future__ import annotations

from autopeft.search_spaces.families._bottleneck import Bottleneck, factor_of


class Serial(Bottleneck):
    name = "serial"
    description = "serial bottleneck adapter after the feed-forward block (AdapterHub SeqBnConfig); width per layer"
    adapters_kind = "serial"
    synthetic_side = "ffn"
    efficiency = 0.9

    def adapters_config(self, module, structure):
        import adapters

        return adapters.SeqBnConfig(reduction_factor=factor_of(module, structure.hidden_size),
                                    leave_out=self.leave_out(module))


FAMILY = Serial()
