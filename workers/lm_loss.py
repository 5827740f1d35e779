"""Token losses of a language model on a batch, held-out scoring and greedy generation.

Causal LM: the decoder backbone runs once and the LM head projects only the positions whose next
token is trained (completion / assistant tokens), as TRL's fused LM head does: a prompt costs the
backbone but never the (hidden x vocab) head, forward or backward. Models that post-process their
logits (soft-capping, logit scales) run their own forward instead, with every position projected.
Seq2seq: the decoder inputs are the labels shifted right (the model's own rule), the logits are
over the target positions. The loss is the token-mean cross-entropy over target tokens in nats.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from autopeft.workers.batching import length_grouped_batches
from autopeft.workers.lm_encode import IGNORE, LMEncoded, collate_lm, collate_prompts
from autopeft.workers.metrics import exact_match, lm_metrics

_LOGIT_POSTPROCESSING = ("final_logit_softcapping", "logit_scale", "logits_scaling", "lm_head_multiplier",
                         "output_multiplier")


def unwrap(model: nn.Module) -> nn.Module:
    """The Hugging Face model inside a `PeftModel` (with its adapter layers), or `model` itself."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def head_on_targets_only(model: nn.Module) -> bool:
    """Whether the LM head may be applied to selected hidden states (the model does nothing after it)."""
    config = unwrap(model).config.get_text_config()
    return all(getattr(config, attr, None) is None for attr in _LOGIT_POSTPROCESSING)


def token_losses(model: nn.Module, batch: dict[str, torch.Tensor], seq2seq: bool, head_only_targets: bool
                 ) -> tuple[torch.Tensor, int, torch.Tensor]:
    """(summed cross-entropy (scalar, fp32, nats), target tokens, correct argmax predictions) of a batch.

    `batch` as from `collate_lm`: `input_ids`, `attention_mask` (B, T) and `labels` — causal (B, T)
    with -100 on untrained tokens, seq2seq (B, T_target).
    """
    hf = unwrap(model)
    labels = batch["labels"]
    if seq2seq:
        decoder_input_ids = hf.prepare_decoder_input_ids_from_labels(labels=labels)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       decoder_input_ids=decoder_input_ids, use_cache=False).logits  # (B, T_target, V)
        targets = labels
        mask = targets != IGNORE
        selected = logits[mask]
    else:
        targets = labels[:, 1:]  # position t predicts token t + 1
        mask = targets != IGNORE
        if head_only_targets:
            hidden = hf.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                   use_cache=False).last_hidden_state  # (B, T, H)
            selected = hf.get_output_embeddings()(hidden[:, :-1][mask])  # (N, V), N = target tokens
        else:
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
            selected = logits[:, :-1][mask]
    gold = targets[mask]
    selected = selected.float()
    loss_sum = F.cross_entropy(selected, gold, reduction="sum")
    correct = (selected.detach().argmax(-1) == gold).sum()
    return loss_sum, int(gold.numel()), correct


def score(model: nn.Module, enc: LMEncoded, batch_size: int, pad_id: int, device: torch.device,
          head_only_targets: bool) -> dict[str, float]:
    """``eval_loss``, ``perplexity``, ``token_accuracy`` over every target token of `enc` (token-weighted)."""
    model.eval()
    loss_sum, tokens, correct = 0.0, 0, 0
    with torch.inference_mode():
        for idx in length_grouped_batches(enc.lengths, batch_size, None):
            s, n, c = token_losses(model, collate_lm(enc, idx, pad_id, device), enc.seq2seq, head_only_targets)
            loss_sum, tokens, correct = loss_sum + float(s), tokens + n, correct + int(c)
    model.train()
    return lm_metrics(loss_sum, tokens, correct)


def generate_answers(model: nn.Module, tokenizer, enc: LMEncoded, batch_size: int, max_new_tokens: int,
                     device: torch.device, end_id: int | None) -> tuple[list[str], list[str]]:
    """Greedy generations (at most `max_new_tokens`, cut at the end token) for every row of `enc` with a
    reference, and those references: (predictions, references), decoded without special tokens."""
    rows = [i for i, r in enumerate(enc.references) if r is not None and enc.prompts[i] is not None]
    rows.sort(key=lambda i: len(enc.prompts[i]))
    pad_id = tokenizer.pad_token_id
    predictions: list[str] = []
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            inputs = collate_prompts([enc.prompts[i] for i in chunk], pad_id, device, left=not enc.seq2seq)
            out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                 pad_token_id=pad_id, eos_token_id=end_id)
            new = out if enc.seq2seq else out[:, inputs["input_ids"].shape[1]:]
            for seq in new.tolist():
                if end_id is not None and end_id in seq[1 if enc.seq2seq else 0:]:
                    seq = seq[:seq.index(end_id, 1 if enc.seq2seq else 0)]
                predictions.append(tokenizer.decode(seq, skip_special_tokens=True))
    model.train()
    return predictions, [enc.references[i] for i in rows]


def generation_metrics(model: nn.Module, tokenizer, enc: LMEncoded, batch_size: int, max_new_tokens: int,
                       device: torch.device, end_id: int | None) -> dict[str, float]:
    """``exact_match`` of greedy generations against the references (see `metrics.normalize_answer`)."""
    predictions, references = generate_answers(model, tokenizer, enc, batch_size, max_new_tokens, device, end_id)
    return {"exact_match": exact_match(predictions, references)}
