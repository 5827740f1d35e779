"""Parallel bottleneck adapter (He et al. 2022) beside the attention block.

AdapterHub's `SeqBnConfig` and `ParBnConfig` both default to the feed-forward output and conflict
there, so the parallel adapter sits at the attention block (``mh_adapter``).
"""

from __future__ import annotations

from autopeft.search_spaces.families._bottleneck import Bottleneck, factor_of


class Parallel(Bottleneck):
    name = "parallel"
    description = "parallel bottleneck adapter beside the attention block (AdapterHub ParBnConfig); width per layer"
    adapters_kind = "parallel"
    synthetic_side = "attention"
    efficiency = 0.95

    def adapters_config(self, module, structure):
        import adapters

        return adapters.ParBnConfig(mh_adapter=True, output_adapter=False,
                                    reduction_factor=factor_of(module, structure.hidden_size),
                                    leave_out=self.leave_out(module))


FAMILY = Parallel()
