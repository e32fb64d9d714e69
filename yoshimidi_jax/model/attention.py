"""Multi-head causal self-attention with RoPE, segment masking and a KV cache."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from yoshimidi_jax.model import kv_cache

NEG_INF = -1e30


def rope(x: jax.Array, positions: jax.Array, base: float = 10_000.0) -> jax.Array:
    """Rotary embedding (half-split layout). x [B, T, H, D], positions [B, T]."""
    d = x.shape[-1]
    half = d // 2
    freq = base ** (-jnp.arange(half, dtype=jnp.float32) / half)
    angle = positions.astype(jnp.float32)[..., None] * freq  # [B, T, half]
    sin, cos = jnp.sin(angle)[:, :, None, :], jnp.cos(angle)[:, :, None, :]
    x1, x2 = x[..., :half].astype(jnp.float32), x[..., half:].astype(jnp.float32)
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x.dtype)


def full_mask(segment_ids: jax.Array) -> jax.Array:
    """[B, L] segment ids -> [B, 1, L, L] bool: causal (by index) and same segment."""
    L = segment_ids.shape[1]
    causal = jnp.tril(jnp.ones((L, L), bool))
    same = segment_ids[:, :, None] == segment_ids[:, None, :]
    return (causal[None] & same)[:, None]


def decode_mask(index: jax.Array, t: int, length: int) -> jax.Array:
    """Queries at sequence indices index..index+t-1 over a cache of `length`:
    [1, 1, t, length] bool, key index <= query index."""
    q = index + jnp.arange(t)
    return (jnp.arange(length)[None, :] <= q[:, None])[None, None]


class Attention(nn.Module):
    num_heads: int
    positional: str = "rope"
    rope_base: float = 10_000.0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        positions: jax.Array,
        mask: jax.Array,
        cache: dict[str, jax.Array] | None = None,
        cache_index: jax.Array | None = None,
    ) -> tuple[jax.Array, dict[str, jax.Array] | None]:
        d_model = x.shape[-1]
        head_dim = d_model // self.num_heads
        dense = lambda name: nn.DenseGeneral(  # noqa: E731
            (self.num_heads, head_dim), use_bias=False, dtype=self.dtype, param_dtype=jnp.float32, name=name
        )
        q, k, v = dense("query")(x), dense("key")(x), dense("value")(x)  # [B, T, H, D]
        if self.positional == "rope":
            q, k = rope(q, positions, self.rope_base), rope(k, positions, self.rope_base)
        # keys/values [B, T, H, D] (training), or the cache's [B, H, L, D] (decoding)
        keys = "bkhd"
        if cache is not None:
            cache = kv_cache.update(cache, k, v, cache_index)
            k, v, keys = cache["k"], cache["v"], "bhkd"
        scores = jnp.einsum(f"bqhd,{keys}->bhqk", q, k, preferred_element_type=jnp.float32)
        scores = scores / jnp.sqrt(jnp.float32(head_dim))
        scores = jnp.where(mask, scores, NEG_INF)
        probs = jax.nn.softmax(scores, axis=-1).astype(self.dtype)
        out = jnp.einsum(f"bhqk,{keys}->bqhd", probs, v.astype(self.dtype))
        out = nn.DenseGeneral(
            d_model, axis=(-2, -1), use_bias=False, dtype=self.dtype, param_dtype=jnp.float32, name="out"
        )(out)
        return out, cache
