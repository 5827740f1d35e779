"""A tiny random BERT with a real WordPiece tokenizer, saved to a directory (no downloads)."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

GLUE_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "glue"


def save_tiny_bert(path: Path, words: list[str] | None = None, layers: int = 4) -> Path:
    """Write config, random weights and a word-level WordPiece vocab (SST-2's commonest words) to `path`."""
    if words is None:
        counts: dict[str, int] = {}
        lines = (GLUE_DIR / "SST-2" / "train.tsv").read_text(encoding="utf-8").splitlines()[1:20000]
        for line in lines:
            for w in re.findall(r"[a-z]+|[^\sa-z]", line.split("\t")[0].lower()):
                counts[w] = counts.get(w, 0) + 1
        words = sorted(counts, key=lambda w: -counts[w])[:2000]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(path / "vocab.txt"), do_lower_case=True).save_pretrained(path)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=layers, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=128)
    BertForSequenceClassification(config).save_pretrained(path)
    return path
