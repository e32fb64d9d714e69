"""Decoder-only transformer with a token head and a categorical time head,
its loss, an explicit KV cache, and size/FLOP accounting."""

from yoshimidi_jax.model.flops import ModelCost, model_cost
from yoshimidi_jax.model.kv_cache import Cache, init_cache
from yoshimidi_jax.model.loss import FAMILY_NAMES, loss_fn
from yoshimidi_jax.model.transformer import Transformer, cache_for, compute_dtype, init_params, make_model

__all__ = [
    "FAMILY_NAMES", "Cache", "ModelCost", "Transformer", "cache_for", "compute_dtype", "init_cache",
    "init_params", "loss_fn", "make_model", "model_cost",
]
