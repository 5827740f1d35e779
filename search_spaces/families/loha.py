"""LoHa (Hyeon-Woo et al. 2022, FedPara; peft `LoHaConfig`): the Hadamard product of two rank-r updates.

Counting (peft, nn.Linear of in x out): ``2 * r * (in + out)`` per targeted layer.
"""

from __future__ import annotations

from autopeft.search_spaces.families._lycoris import Lycoris


class Loha(Lycoris):
    name = "loha"
    description = "LoHa: Hadamard product of two low-rank updates per targeted nn.Linear, one rank per layer (peft)"
    peft_class = "LoHaConfig"
    efficiency = 0.95

    def layer_cost(self, structure, module, size, library):
        return sum(2 * size * (lin.in_features + lin.out_features) for lin in self.targets_of(structure, module.targets))


FAMILY = Loha()
