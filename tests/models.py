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


def _lm_configs():
    """Tiny random language models (2-3 blocks, hidden 32-64, vocab 120) of every family the model structure
    covers, for `AutoModelForCausalLM` / `AutoModelForSeq2SeqLM`: name → (config factory, seq2seq?)."""
    from transformers import (
        BartConfig,
        GemmaConfig,
        GPTNeoXConfig,
        MistralConfig,
        OPTConfig,
        Phi3Config,
        Qwen2Config,
        Qwen3Config,
        T5Config,
    )

    decoder = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                   intermediate_size=48, vocab_size=120, max_position_embeddings=64)
    return {
        "t5": (lambda: T5Config(vocab_size=120, d_model=32, d_ff=48, num_layers=2, num_decoder_layers=3, num_heads=4,
                                d_kv=8), True),
        "flan-t5": (lambda: T5Config(vocab_size=120, d_model=32, d_ff=48, num_layers=2, num_heads=4, d_kv=16,
                                     feed_forward_proj="gated-gelu", tie_word_embeddings=False), True),
        "bart": (lambda: BartConfig(vocab_size=120, d_model=32, encoder_layers=2, decoder_layers=2,
                                    encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=48,
                                    decoder_ffn_dim=48, max_position_embeddings=64), True),
        "llama": (TINY_CONFIGS["llama"], False),
        "qwen2": (lambda: Qwen2Config(**decoder), False),
        "qwen3": (lambda: Qwen3Config(**decoder, head_dim=16), False),
        "mistral": (lambda: MistralConfig(**decoder), False),
        "gemma": (lambda: GemmaConfig(**decoder, head_dim=8), False),
        "phi3": (lambda: Phi3Config(**decoder, pad_token_id=0), False),
        "gpt2": (TINY_CONFIGS["gpt2"], False),
        "gpt-neox": (lambda: GPTNeoXConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                                           intermediate_size=48, vocab_size=120, max_position_embeddings=64), False),
        "opt": (lambda: OPTConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, ffn_dim=48,
                                  vocab_size=120, max_position_embeddings=64, word_embed_proj_dim=32), False),
    }


#: name → (config factory, is seq2seq): tiny LMs for `AutoModelForCausalLM` / `AutoModelForSeq2SeqLM`
TINY_LM_CONFIGS = _lm_configs()
