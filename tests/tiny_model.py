"""A tiny random BERT with a real WordPiece tokenizer, saved to a directory (no downloads)."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast, LlamaConfig, LlamaForSequenceClassification

GLUE_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "glue"


def _sst2_words(limit: int = 2000) -> list[str]:
    """SST-2's commonest words (and punctuation), most frequent first."""
    counts: dict[str, int] = {}
    lines = (GLUE_DIR / "SST-2" / "train.tsv").read_text(encoding="utf-8").splitlines()[1:20000]
    for line in lines:
        for w in re.findall(r"[a-z]+|[^\sa-z]", line.split("\t")[0].lower()):
            counts[w] = counts.get(w, 0) + 1
    return sorted(counts, key=lambda w: -counts[w])[:limit]


def _save_tokenizer(path: Path, words: list[str] | None, **kwargs) -> int:
    """A word-level WordPiece tokenizer over `words` (default: SST-2's) saved to `path`; returns its vocab size."""
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *(words if words is not None else _sst2_words())]
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(path / "vocab.txt"), do_lower_case=True, **kwargs).save_pretrained(path)
    return len(vocab)


def save_tiny_bert(path: Path, words: list[str] | None = None, layers: int = 4) -> Path:
    """Write config, random weights and a word-level WordPiece vocab (SST-2's commonest words) to `path`."""
    vocab_size = _save_tokenizer(path, words)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=layers, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=128)
    BertForSequenceClassification(config).save_pretrained(path)
    return path


def save_tiny_llama(path: Path, layers: int = 4) -> Path:
    """A tiny random Llama (hidden 32, 4 heads, 2 key/value heads) with the same word-level tokenizer, saved to `path`."""
    vocab_size = _save_tokenizer(path, None, model_input_names=["input_ids", "attention_mask"])
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=layers, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=64, max_position_embeddings=128, pad_token_id=0)
    LlamaForSequenceClassification(config).save_pretrained(path)
    return path
