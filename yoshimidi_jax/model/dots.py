"""Matrix products in the compute dtype, accumulated in float32.

With bf16 compute, a product that accumulates and returns float32, then is
cast back, is the accurate choice, and on XLA:CPU the fast one too: there a
bf16 x bf16 -> f32 product of 8192x512 by 512x2048 ran at ~400 GFLOP/s
against ~150 for the same product returning bf16 (the project's CPU, which
has AMX). On GPUs it is what cuBLAS does anyway. In float32 these are plain
products.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp


def einsum(spec: str, a: jax.Array, b: jax.Array, dtype: Any) -> jax.Array:
    """jnp.einsum of a and b (both cast to dtype), accumulated in float32, returned in dtype."""
    return jnp.einsum(spec, a.astype(dtype), b.astype(dtype), preferred_element_type=jnp.float32).astype(dtype)


def dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None):
    """lax.dot_general for flax's Dense(dot_general=...): float32 accumulation, lhs's dtype out."""
    del preferred_element_type
    out = jax.lax.dot_general(lhs, rhs, dimension_numbers, precision=precision, preferred_element_type=jnp.float32)
    return out.astype(lhs.dtype)
