"""Run the frozen bottom of the network without autograd.

Blocks below the lowest block that holds any module of the plan have no trainable weight, so no
gradient has to flow through them. `FrozenBottom` turns grad mode off when the input embeddings
start and back on when the lowest adapted block starts: PyTorch then records no graph and keeps no
activations for the embeddings and the frozen blocks. It works the same for peft and adapters
models, since it only hooks the embedding and block modules. Prefix-tuning changes attention in every
block it is in, so a plan's lowest adapted block is the lowest block with any module of any family.
Encoder-decoder models (T5, BART) get no frozen bottom: the decoder runs the shared embeddings again.
"""

from __future__ import annotations

import torch
from torch import nn

from autopeft.search_spaces.model_structure import ModelStructure
from autopeft.search_spaces.plan import Plan


def lowest_adapted_layer(plan: Plan) -> int | None:
    """Index of the lowest block holding a module of any family, or None for an empty plan."""
    layers = [layer for m in plan.active for layer in m.layers]
    return min(layers) if layers else None


def find_blocks(model: nn.Module, structure: ModelStructure) -> nn.ModuleList:
    """The model's list of transformer blocks (`structure.layers_path`, under any wrapper prefix)."""
    for name, module in model.named_modules():
        if (name == structure.layers_path or name.endswith("." + structure.layers_path)) and isinstance(module, nn.ModuleList):
            return module
    raise ValueError(f"no block list {structure.layers_path!r} in {type(model).__name__}")


class FrozenBottom:
    """Forward pre-hooks that run embeddings and blocks [0, `lowest`) under no-grad during training.

    Only acts when grad mode is on and inference mode is off (evaluation is untouched). The caller
    wraps each training forward in `torch.enable_grad()`, which restores grad mode even if the
    forward fails between the two hooks. `active` is False when nothing needed hooking (the lowest
    adapted block is block 0) or when a trainable weight that no adapted block holds sits below it
    (then nothing is hooked, and autograd runs as usual).
    """

    def __init__(self, model: nn.Module, structure: ModelStructure, lowest: int | None):
        self._handles: list = []
        self._off = False
        if not lowest or structure.is_encoder_decoder:
            # Encoder-decoder models run the (shared) embeddings again in the decoder: no frozen bottom.
            return
        blocks = find_blocks(model, structure)
        embeddings = model.get_input_embeddings()
        below = {id(p) for m in (embeddings, *blocks[:lowest]) for p in m.parameters() if p.requires_grad}
        # A module shared by many blocks (adapters' prefix pool) shows up under block 0 too; what the
        # adapted blocks also hold is computed for them, not by the frozen bottom.
        below -= {id(p) for m in blocks[lowest:] for p in m.parameters()}
        if below:
            return
        self._handles = [embeddings.register_forward_pre_hook(self._enter),
                         blocks[lowest].register_forward_pre_hook(self._leave)]

    @property
    def active(self) -> bool:
        return bool(self._handles)

    def _enter(self, module: nn.Module, args) -> None:
        self._off = False
        if torch.is_grad_enabled() and not torch.is_inference_mode_enabled():
            torch.set_grad_enabled(False)
            self._off = True

    def _leave(self, module: nn.Module, args) -> None:
        if self._off:
            torch.set_grad_enabled(True)
            self._off = False

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
