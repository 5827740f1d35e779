"""What the bottleneck adapters (serial, parallel) share: exact widths in AdapterHub, counting, capacity.

A bottleneck of width d in a block of hidden size h has ``2 * h * d + d + h`` parameters (down and up
projections with biases). AdapterHub sizes it by ``reduction_factor`` (width = ``int(h // factor)``),
so the factor is chosen to give the exact width, per layer when widths differ.
"""

from __future__ import annotations

import math

from autopeft.search_spaces.families.base import Family


def reduction_factor(hidden: int, width: int) -> float:
    """The factor for which adapters' `int(hidden // factor)` equals `width` exactly."""
    factor = hidden / width
    while int(hidden // factor) < width:
        factor = math.nextafter(factor, 0.0)
    return factor


def factor_of(module, hidden: int):
    """One reduction factor, or a per-layer mapping (with ``default``) when the widths differ."""
    widths = {i: s for i, s in enumerate(module.sizes) if s}
    if len(set(widths.values())) == 1:
        return reduction_factor(hidden, next(iter(widths.values())))
    mapping: dict[str, float] = {str(i): reduction_factor(hidden, s) for i, s in widths.items()}
    mapping["default"] = mapping[str(next(iter(widths)))]
    return mapping


class Bottleneck(Family):
    """Serial or parallel bottleneck adapter (AdapterHub only: peft has none)."""

    size_name = "width"
    size_letter = "d"
    libraries = ("adapters",)
    efficiency: float
    adapters_class: str  # SeqBnConfig | ParBnConfig
    placement: dict[str, bool] = {}  # where in the block AdapterHub puts it (its config's flags)

    def layer_cost(self, structure, module, size, library):
        h = structure.hidden_size
        return 2 * h * size + size + h if size else 0

    def adapters_config(self, module, structure):
        import adapters

        return getattr(adapters, self.adapters_class)(
            reduction_factor=factor_of(module, structure.hidden_size),
            leave_out=[i for i, s in enumerate(module.sizes) if s == 0], **self.placement)

    def synthetic_capacity(self, module, size, hidden):
        if size <= 0:
            return 0.0
        return self.efficiency * (1.0 - math.exp(-size / max(hidden / 64.0, 1.0)))
