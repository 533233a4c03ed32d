"""The T5 encoder-decoder, built from a ``ModelConfig`` and trained from scratch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class ModelConfig:
    d_model: int = 256
    d_ff: int = 1024
    d_kv: int = 64
    num_heads: int = 4
    num_layers: int = 4
    num_decoder_layers: int = 4
    dropout_rate: float = 0.1
    feed_forward_proj: str = "relu"
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    tie_word_embeddings: bool = True


def t5_config(cfg: ModelConfig, vocab_size: int, pad_id: int = 0, eos_id: int = 1) -> Any:
    from transformers import T5Config

    return T5Config(
        vocab_size=vocab_size,
        d_model=cfg.d_model,
        d_ff=cfg.d_ff,
        d_kv=cfg.d_kv,
        num_heads=cfg.num_heads,
        num_layers=cfg.num_layers,
        num_decoder_layers=cfg.num_decoder_layers,
        dropout_rate=cfg.dropout_rate,
        feed_forward_proj=cfg.feed_forward_proj,
        relative_attention_num_buckets=cfg.relative_attention_num_buckets,
        relative_attention_max_distance=cfg.relative_attention_max_distance,
        tie_word_embeddings=cfg.tie_word_embeddings,
        pad_token_id=pad_id,
        eos_token_id=eos_id,
        decoder_start_token_id=pad_id,
        is_encoder_decoder=True,
    )


def build_model(cfg: ModelConfig, vocab_size: int, pad_id: int = 0, eos_id: int = 1, seed: int = 0) -> Any:
    import torch
    from transformers import T5ForConditionalGeneration

    torch.manual_seed(seed)
    return T5ForConditionalGeneration(t5_config(cfg, vocab_size, pad_id, eos_id))


def count_parameters(model: Any) -> int:
    """Unique parameters (tied embeddings counted once)."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def model_config_of(hf_config: Any) -> ModelConfig:
    """The ``ModelConfig`` of a loaded T5 model (for a run that starts from one)."""
    return ModelConfig(**{f: getattr(hf_config, f) for f in ModelConfig.__dataclass_fields__})
