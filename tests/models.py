"""Tiny random models for tests: built from configs, never downloaded."""

from __future__ import annotations

from transformers import BertConfig, GPT2Config, LlamaConfig, RobertaConfig

TINY_CONFIGS = {
    "bert": lambda: BertConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64,
                               vocab_size=120, max_position_embeddings=64),
    "roberta": lambda: RobertaConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=48,
                                     vocab_size=120, max_position_embeddings=70),
    "gpt2": lambda: GPT2Config(n_embd=32, n_layer=4, n_head=4, vocab_size=120, n_positions=64),
    "llama": lambda: LlamaConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                                 intermediate_size=64, vocab_size=120, max_position_embeddings=64),
}
