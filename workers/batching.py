"""Tokenised splits, length-grouped batches and dynamic padding.

A batch is padded to its own longest example, not to `max_seq_length`; training batches are drawn
from length-sorted chunks so that examples of similar length share a batch (little padding), while
the order of batches stays random.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from autopeft.workers.data import Examples

GROUP_BATCHES = 50  # training batches per length-sorted chunk (as transformers' `group_by_length`)


@dataclass(frozen=True)
class Encoded:
    """Token ids of one split: `ids[i]` (and `types[i]` where the model has token types), `labels[i]`."""

    ids: list[list[int]]
    types: list[list[int]] | None
    labels: list

    @property
    def lengths(self) -> list[int]:
        return [len(x) for x in self.ids]

    def __len__(self) -> int:
        return len(self.ids)


def encode(tokenizer, examples: Examples, max_length: int) -> Encoded:
    """Tokenise one or two text columns, truncated to `max_length` tokens (no padding)."""
    columns = list(zip(*examples.texts, strict=True))
    out = tokenizer(*columns[:2], truncation=True, max_length=max_length)
    types = out.get("token_type_ids")
    if types is not None and not any(any(t) for t in types):
        types = None  # all zeros: the model's default, no need to send them
    return Encoded(ids=out["input_ids"], types=types, labels=list(examples.labels))


def length_grouped_batches(lengths: list[int], batch_size: int, rng: random.Random | None) -> list[list[int]]:
    """Lists of example indices, each at most `batch_size` long.

    With `rng` (training): shuffle, sort chunks of `GROUP_BATCHES` batches by length, cut them into
    batches and shuffle the batches. Without (evaluation): consecutive batches in length order.
    """
    order = list(range(len(lengths)))
    if rng is None:
        order.sort(key=lambda i: lengths[i])
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(order)
    chunk = GROUP_BATCHES * batch_size
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start:start + chunk], key=lambda i: lengths[i])
        batches += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(enc: Encoded, idx: list[int], pad_id: int, device: torch.device, regression: bool,
            with_labels: bool = True) -> dict[str, torch.Tensor]:
    """One batch padded to its longest example: `input_ids`, `attention_mask` (and `token_type_ids`)
    of shape (batch, width), `labels` of shape (batch,) — float for regression, long otherwise."""
    width = max(len(enc.ids[i]) for i in idx)
    rows = [enc.ids[i] for i in idx]
    batch = {
        "input_ids": torch.tensor([r + [pad_id] * (width - len(r)) for r in rows], dtype=torch.long),
        "attention_mask": torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], dtype=torch.long),
    }
    if enc.types is not None:
        batch["token_type_ids"] = torch.tensor([enc.types[i] + [0] * (width - len(enc.types[i])) for i in idx],
                                               dtype=torch.long)
    if with_labels:
        batch["labels"] = torch.tensor([enc.labels[i] for i in idx], dtype=torch.float if regression else torch.long)
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
