"""Language-model rows → token ids with loss masks, truncation counted, and padded batches.

Causal LM (decoders): a row is one token sequence; `labels` equal the ids on trained tokens and
-100 elsewhere (prompt, template and BOS tokens), so the loss covers completions / assistant turns
only. The whole string is tokenised once (what the model sees), and a token is trained when its
characters overlap a trained span: the completion, the text, or an assistant turn. Assistant spans
come from rendering the conversation incrementally with the tokenizer's chat template (the text up
to a turn with the generation prompt, then the text with that turn). Pair and text rows get the
tokenizer's BOS in front (when it has one) and an end token after the completion (EOS, else SEP),
which is trained, so generation learns to stop; a chat template writes its own special tokens.

Seq2seq (T5, BART): the input is tokenised as the model's tokenizer does (`add_special_tokens`),
the target with ``text_target=``; `labels` are the target ids.

Rows longer than `max_seq_length` are cut to it (input and target separately for seq2seq) and
counted in `truncated`; a causal row whose trained tokens were all cut is left out and counted in
`dropped`. A split in which every row is longer than `max_seq_length` raises `DataError`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from autopeft.workers.lm_data import LMExample
from autopeft.workers.tasks import DataError

IGNORE = -100


@dataclass(frozen=True)
class LMEncoded:
    """One tokenised split. `ids[i]`: input ids (causal: the whole sequence; seq2seq: the encoder input);
    `labels[i]`: causal — same length as `ids[i]`, -100 on untrained tokens; seq2seq — the target ids.
    `prompts[i]` / `references[i]`: the generation input (ids) and the expected answer (text) for exact
    match, None for rows without one (text rows). `truncated`: rows cut at `max_seq_length`;
    `dropped`: rows left out because nothing trainable was left after the cut."""

    ids: list[list[int]]
    labels: list[list[int]]
    prompts: list[list[int] | None]
    references: list[str | None]
    truncated: int = 0
    dropped: int = 0
    seq2seq: bool = False

    @property
    def lengths(self) -> list[int]:
        """Tokens per row that a batch pads (input plus target for seq2seq, where labels are separate)."""
        if self.seq2seq:
            return [len(x) + len(y) for x, y in zip(self.ids, self.labels, strict=True)]
        return [len(x) for x in self.ids]

    @property
    def target_tokens(self) -> int:
        """Tokens the loss is computed on (causal: trained tokens after the first position, which nothing predicts)."""
        if self.seq2seq:
            return sum(len(y) for y in self.labels)
        return sum(sum(1 for t in y[1:] if t != IGNORE) for y in self.labels)

    def __len__(self) -> int:
        return len(self.ids)


def end_token_id(tokenizer) -> int | None:
    """The token that ends a completion: EOS, else SEP (BERT-style vocabularies), else None."""
    return tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id


def _render(tokenizer, messages, generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=generation_prompt)


def _chat_spans(tokenizer, example: LMExample) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of its assistant turns."""
    full = _render(tokenizer, example.messages)
    spans = []
    for i, m in enumerate(example.messages):
        if m["role"] != "assistant":
            continue
        before = _render(tokenizer, example.messages[:i], generation_prompt=True) if i else ""
        upto = _render(tokenizer, example.messages[:i + 1])
        if not full.startswith(upto) or not upto.startswith(before):
            raise DataError(f"line {example.line}: the chat template does not render a conversation as a prefix of its "
                            "continuation, so the assistant turns cannot be located; use prompt/completion rows")
        spans.append((len(before), len(upto)))
    return full, spans


def _tokens_with_mask(tokenizer, text: str, spans: list[tuple[int, int]]) -> tuple[list[int], list[bool]]:
    """Ids of `text` (no special tokens added) and, per token, whether it overlaps a trained span."""
    if tokenizer.is_fast:
        out = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        trained = [any(end > s and start < e for s, e in spans) for start, end in out["offset_mapping"]]
        return list(out["input_ids"]), trained
    ids, trained, cursor = [], [], 0  # a slow tokenizer has no offsets: tokenise span by span
    for s, e in [*spans, (len(text), len(text))]:
        for piece, on in ((text[cursor:s], False), (text[s:e], True)):
            if piece:
                part = tokenizer(piece, add_special_tokens=False)["input_ids"]
                ids += part
                trained += [on] * len(part)
        cursor = e
    return ids, trained


def _causal_row(tokenizer, example: LMExample) -> tuple[list[int], list[bool], int]:
    """(ids, trained mask, index of the last trained span's first token) of one causal row."""
    if example.shape == "chat":
        text, spans = _chat_spans(tokenizer, example)
        ids, trained = _tokens_with_mask(tokenizer, text, spans)
    else:
        text = example.prompt + example.completion
        ids, trained = _tokens_with_mask(tokenizer, text, [(len(example.prompt), len(text))])
        if tokenizer.bos_token_id is not None:
            ids, trained = [tokenizer.bos_token_id, *ids], [False, *trained]
        end = end_token_id(tokenizer)
        if end is not None:
            ids, trained = [*ids, end], [*trained, True]
    starts = [i for i, on in enumerate(trained) if on and (i == 0 or not trained[i - 1])]  # runs of trained tokens
    return ids, trained, starts[-1] if starts else 0


def encode_causal(tokenizer, examples: list[LMExample], max_length: int, where: str) -> LMEncoded:
    """Tokenise causal-LM rows with loss masks; `where` names the split in errors. Chat rows need a chat template."""
    if any(e.shape == "chat" for e in examples) and not getattr(tokenizer, "chat_template", None):
        raise DataError(f"{where}: messages rows need a chat template, and this model's tokenizer has none; "
                        "use prompt/completion rows, or a model (tokenizer) that ships a chat template")
    ids, labels, prompts, references = [], [], [], []
    truncated = dropped = 0
    shortest = None
    for example in examples:
        row, trained, last = _causal_row(tokenizer, example)
        shortest = len(row) if shortest is None else min(shortest, len(row))
        if len(row) > max_length:
            truncated += 1
            row, trained = row[:max_length], trained[:max_length]
        if not any(trained[1:]):
            dropped += 1
            continue
        ids.append(row)
        labels.append([t if on else IGNORE for t, on in zip(row, trained, strict=True)])
        prompt_fits = example.shape != "text" and 0 < last <= max_length
        prompts.append(row[:last] if prompt_fits else None)
        references.append(example.reference if prompt_fits else None)
    if examples and truncated == len(examples):
        raise DataError(f"{where}: every one of the {len(examples)} rows is longer than fidelity.max_seq_length="
                        f"{max_length} tokens (the shortest has {shortest}); raise max_seq_length")
    return LMEncoded(ids, labels, prompts, references, truncated=truncated, dropped=dropped)


def encode_seq2seq(tokenizer, examples: list[LMExample], max_length: int, where: str) -> LMEncoded:
    """Tokenise seq2seq rows: encoder input ids, target ids as labels; each cut at `max_length`."""
    sources = tokenizer([e.prompt for e in examples], add_special_tokens=True)["input_ids"]
    targets = tokenizer(text_target=[e.completion for e in examples], add_special_tokens=True)["input_ids"]
    cut = [len(s) > max_length or len(t) > max_length for s, t in zip(sources, targets, strict=True)]
    if examples and all(cut):
        raise DataError(f"{where}: every one of the {len(examples)} rows has an input or target longer than "
                        f"fidelity.max_seq_length={max_length} tokens; raise max_seq_length")
    ids = [list(s[:max_length]) for s in sources]
    return LMEncoded(ids, [list(t[:max_length]) for t in targets], prompts=list(ids),
                     references=[e.completion for e in examples], truncated=sum(cut), seq2seq=True)


def _pad(rows: list[list[int]], value: int, left: bool = False) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([[value] * (width - len(r)) + r if left else r + [value] * (width - len(r)) for r in rows],
                        dtype=torch.long)


def collate_lm(enc: LMEncoded, idx: list[int], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """A training / scoring batch padded to its longest row: `input_ids`, `attention_mask` (batch, width)
    and `labels` — (batch, width) for causal rows, (batch, target width) for seq2seq, -100 on padding."""
    rows = [enc.ids[i] for i in idx]
    batch = {"input_ids": _pad(rows, pad_id), "attention_mask": _pad([[1] * len(r) for r in rows], 0),
             "labels": _pad([enc.labels[i] for i in idx], IGNORE)}
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def collate_prompts(prompts: list[list[int]], pad_id: int, device: torch.device, left: bool) -> dict[str, torch.Tensor]:
    """Generation inputs: `input_ids`, `attention_mask` (batch, width), left-padded for decoders (`left`)."""
    return {"input_ids": _pad(prompts, pad_id, left).to(device),
            "attention_mask": _pad([[1] * len(p) for p in prompts], 0, left).to(device)}
