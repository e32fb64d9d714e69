"""KV cache: a plain pytree, one {'k', 'v'} per layer, [B, H, T, K] (batch,
heads, cache length, head size)
(heads before length: a decode step's attention reads each head's keys as
one contiguous block, with no transpose of the cache).

The cache is passed into and returned from Transformer.decode explicitly (no
flax mutable collections), so it can live in a lax.scan carry. Entry i holds
the key/value of sequence index i; `index` (a scalar int32 kept beside the
cache by the caller) says how many entries are filled."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

Cache = list[dict[str, jax.Array]]


def init_cache(
    num_layers: int, batch: int, length: int, num_heads: int, head_dim: int, dtype: Any = jnp.float32
) -> Cache:
    shape = (batch, num_heads, length, head_dim)
    return [{"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)} for _ in range(num_layers)]


def update(layer: dict[str, jax.Array], k_BxLxHxK: jax.Array, v_BxLxHxK: jax.Array,
           index: jax.Array) -> dict[str, jax.Array]:
    """Writes the keys and values of L new positions at sequence index `index`."""
    zero = jnp.zeros((), jnp.int32)
    start = (zero, zero, index.astype(jnp.int32), zero)
    return {
        "k": jax.lax.dynamic_update_slice(layer["k"], k_BxLxHxK.swapaxes(1, 2).astype(layer["k"].dtype), start),
        "v": jax.lax.dynamic_update_slice(layer["v"], v_BxLxHxK.swapaxes(1, 2).astype(layer["v"].dtype), start),
    }
