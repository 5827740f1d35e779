"""Language models by task kind: which class loads, in which precision, and what cannot work.

``causal-lm`` loads `AutoModelForCausalLM` (decoders), ``seq2seq`` `AutoModelForSeq2SeqLM` (T5, BART);
the LM head stays frozen (no head parameters are trained). On CUDA the base weights are loaded in
bf16 (fp16 where the GPU has no bf16), optionally quantised to 4-bit NF4 (QLoRA) or 8-bit with
bitsandbytes; adapter weights are trained in fp32. On a CPU everything is fp32 and quantisation is
refused. Mistakes (an encoder-only model for causal-lm, a decoder for seq2seq, 4-bit on a CPU) raise
`ModelError` with one line, before any weights load.
"""

from __future__ import annotations

import importlib.util

import torch
from torch import nn

from autopeft.search_spaces.model_structure import ModelError, load_config
from autopeft.spec import FidelitySpec

PEFT_TASK_TYPES = {"causal-lm": "CAUSAL_LM", "seq2seq": "SEQ_2_SEQ_LM"}


def check_lm_model(model: str, kind: str) -> None:
    """`ModelError` unless `model` has a language-model head of the kind a `kind` task trains."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES

    config = load_config(model)
    model_type = config.model_type
    encoder_decoder = bool(getattr(config, "is_encoder_decoder", False))
    if kind == "seq2seq":
        if not encoder_decoder:
            raise ModelError(f"{model}: kind=seq2seq needs an encoder-decoder model (T5, BART), and {model_type} is not "
                             "one; for a decoder use kind=causal-lm")
        return
    if encoder_decoder:
        raise ModelError(f"{model}: {model_type} is an encoder-decoder model; use kind=seq2seq for it")
    if model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES and not getattr(config, "is_decoder", False):
        raise ModelError(f"{model}: {model_type} is an encoder-only model, with no causal language-model head to "
                         "fine-tune; kind=causal-lm needs a decoder (Llama, Qwen, Mistral, GPT-2, ...), or use "
                         "kind=classification")
    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ModelError(f"{model}: {model_type} has no causal language-model class in transformers; "
                         "kind=causal-lm needs a decoder (Llama, Qwen, Mistral, GPT-2, ...)")


def check_precision(fidelity: FidelitySpec, device: torch.device) -> None:
    """`ModelError` when `fidelity.quantization` cannot run on `device` (CUDA and bitsandbytes only)."""
    if fidelity.quantization == "none":
        return
    if device.type != "cuda":
        raise ModelError(f"fidelity.quantization: {fidelity.quantization} needs a CUDA GPU (bitsandbytes), and this "
                         f"trial runs on {device}; set quantization: none")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModelError(f"fidelity.quantization: {fidelity.quantization} needs the bitsandbytes package; "
                         "pip install bitsandbytes, or set quantization: none")


def weight_dtype(device: torch.device) -> torch.dtype:
    """dtype of the frozen base weights: bf16 on CUDA (fp16 without bf16 support), fp32 elsewhere."""
    if device.type != "cuda":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def load_lm(model: str, kind: str, fidelity: FidelitySpec, device: torch.device, pad_token_id: int | None) -> nn.Module:
    """The pretrained language model for `kind`, every weight frozen, on `device` in `weight_dtype`.

    With `fidelity.quantization` the linear layers are quantised by bitsandbytes (and peft's
    `prepare_model_for_kbit_training` readies the model for adapters on top).
    """
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    cls = AutoModelForCausalLM if kind == "causal-lm" else AutoModelForSeq2SeqLM
    dtype = weight_dtype(device)
    kwargs: dict = {"dtype": dtype}
    if fidelity.quantization != "none":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = (
            BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype,
                               bnb_4bit_use_double_quant=True)
            if fidelity.quantization == "4bit" else BitsAndBytesConfig(load_in_8bit=True))
        kwargs["device_map"] = {"": device.index or 0}
    loaded = cls.from_pretrained(model, **kwargs)
    if pad_token_id is not None and loaded.config.pad_token_id is None:
        loaded.config.pad_token_id = pad_token_id
    if fidelity.quantization != "none":
        from peft import prepare_model_for_kbit_training

        loaded = prepare_model_for_kbit_training(loaded, use_gradient_checkpointing=False)
    else:
        loaded.to(device)
    return loaded.requires_grad_(False)


def adapters_in_fp32(model: nn.Module) -> list[nn.Parameter]:
    """The trainable (adapter) parameters, cast to fp32 master weights where the base is half precision."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    for p in trainable:
        if p.dtype != torch.float32:
            p.data = p.data.float()
    return trainable


def enable_checkpointing(model: nn.Module) -> None:
    """Recompute each block's activations in the backward pass (non-reentrant, so frozen inputs work).

    transformers 5 names it activation checkpointing (``gradient_checkpointing_enable`` is deprecated).
    """
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def precision_name(fidelity: FidelitySpec, device: torch.device) -> str:
    """How the frozen base is stored: ``4bit`` / ``8bit`` when quantised, else its dtype (``bf16``, ``fp16``, ``fp32``)."""
    if fidelity.quantization != "none":
        return fidelity.quantization
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(weight_dtype(device), "fp32")
