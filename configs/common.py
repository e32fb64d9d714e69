"""Shared config skeleton: config.model (this issue), config.data and
config.train (filled by the training issue). Vocabulary and time settings are
derived from tokens.Vocab / tokens.TimeCodec so they never drift."""

from __future__ import annotations

import ml_collections

from yoshimidi_jax.tokens import TimeCodec, Vocab


def base_config(
    *, num_layers: int, d_model: int, num_heads: int, max_len: int, dtype: str = "float32"
) -> ml_collections.ConfigDict:
    vocab, codec = Vocab(), TimeCodec()
    c = ml_collections.ConfigDict()
    c.seed = 0

    c.model = ml_collections.ConfigDict()
    c.model.num_layers = num_layers
    c.model.d_model = d_model
    c.model.num_heads = num_heads
    c.model.mlp_ratio = 4
    c.model.max_len = max_len  # context length (learned positions: table size)
    c.model.positional = "rope"  # 'rope' | 'learned'
    c.model.rope_base = 10_000.0
    c.model.dtype = dtype  # compute dtype; params stay float32
    c.model.dropout = 0.0
    c.model.norm = "rmsnorm"  # 'rmsnorm' | 'layernorm'
    c.model.vocab_size = vocab.size
    c.model.num_velocity_bins = vocab.num_velocity_bins
    c.model.num_time_supports = codec.num_supports
    c.model.time_min_s = codec.min_s
    c.model.time_max_s = codec.max_s

    c.data = ml_collections.ConfigDict()
    c.data.path = "data/m21"
    c.data.seq_len = max_len
    c.data.batch_size = 8

    c.train = ml_collections.ConfigDict()
    c.train.steps = 10_000
    c.train.lr = 3e-4
    c.train.warmup_steps = 500
    c.train.weight_decay = 0.1
    c.train.grad_clip = 1.0
    return c
