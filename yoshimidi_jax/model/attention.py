"""Multi-head causal self-attention with RoPE, segment masking and a KV cache.

Shapes are in the names (nanodo's habit): B batch, L the positions of this
call (the whole sequence in training, the new tokens when decoding), T the key
positions (L in training, the cache length when decoding), H heads, K head
size, D model width."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from yoshimidi_jax.model import kv_cache

NEG_INF = -1e30


def rope(x_BxLxHxK: jax.Array, positions_BxL: jax.Array, base: float = 10_000.0) -> jax.Array:
    """Rotary embedding (half-split layout)."""
    half = x_BxLxHxK.shape[-1] // 2
    freq = base ** (-jnp.arange(half, dtype=jnp.float32) / half)
    angle_BxLxhalf = positions_BxL.astype(jnp.float32)[..., None] * freq
    sin, cos = jnp.sin(angle_BxLxhalf)[:, :, None, :], jnp.cos(angle_BxLxhalf)[:, :, None, :]
    x1, x2 = x_BxLxHxK[..., :half].astype(jnp.float32), x_BxLxHxK[..., half:].astype(jnp.float32)
    out_BxLxHxK = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out_BxLxHxK.astype(x_BxLxHxK.dtype)


def segment_mask(segment_ids_BxL: jax.Array, start: int = 0, stop: int | None = None) -> jax.Array:
    """[B, 1, stop - start, stop] bool for the queries start..stop-1 against
    the keys 0..stop-1: causal (by index) and same segment. The defaults give
    the whole sequence's [B, 1, L, L]."""
    stop = segment_ids_BxL.shape[1] if stop is None else stop
    causal_bxT = jnp.arange(stop)[None, :] <= (start + jnp.arange(stop - start))[:, None]
    same_BxbxT = segment_ids_BxL[:, start:stop, None] == segment_ids_BxL[:, None, :stop]
    return (causal_bxT[None] & same_BxbxT)[:, None]


def full_mask(segment_ids_BxL: jax.Array) -> jax.Array:
    """[B, 1, L, L] bool: causal (by index) and same segment."""
    return segment_mask(segment_ids_BxL)


def decode_mask(index: jax.Array, t: int, length: int) -> jax.Array:
    """Queries at sequence indices index..index+t-1 over a cache of `length`:
    [1, 1, t, length] bool, key index <= query index."""
    query_index_L = index + jnp.arange(t)
    return (jnp.arange(length)[None, :] <= query_index_L[:, None])[None, None]


def attend(q_BxLxHxK: jax.Array, k: jax.Array, v: jax.Array, mask_Bx1xLxT: jax.Array, key_axes: str,
           dtype: Any) -> jax.Array:
    """Masked softmax attention of the queries over keys/values laid out as
    `key_axes` ("bthk": [B, T, H, K], the sequence; "bhtk": [B, H, T, K], the
    cache); scores and softmax in float32."""
    K = q_BxLxHxK.shape[-1]
    scores_BxHxLxT = jnp.einsum(f"blhk,{key_axes}->bhlt", q_BxLxHxK, k, preferred_element_type=jnp.float32)
    scores_BxHxLxT = jnp.where(mask_Bx1xLxT, scores_BxHxLxT / jnp.sqrt(jnp.float32(K)), NEG_INF)
    probs_BxHxLxT = jax.nn.softmax(scores_BxHxLxT, axis=-1).astype(dtype)
    return jnp.einsum(f"bhlt,{key_axes}->blhk", probs_BxHxLxT, v.astype(dtype))


def blockwise_attention(q_BxLxHxK: jax.Array, k_BxLxHxK: jax.Array, v_BxLxHxK: jax.Array,
                        segment_ids_BxL: jax.Array, block: int, dtype: Any) -> jax.Array:
    """Causal, same-segment attention over the whole sequence, one block of
    `block` queries at a time against only the keys at or before its end:
    the key blocks above the diagonal (all masked) are never computed, which
    saves (n - 1) / 2n of the scores and their softmax for n blocks. The
    same result as the full masked softmax (masked keys weigh exactly 0)."""
    L = q_BxLxHxK.shape[1]
    outs = [attend(q_BxLxHxK[:, start:start + block], k_BxLxHxK[:, :start + block], v_BxLxHxK[:, :start + block],
                   segment_mask(segment_ids_BxL, start, start + block), "bthk", dtype)
            for start in range(0, L, block)]
    return jnp.concatenate(outs, axis=1)


def use_blocks(length: int, block: int) -> bool:
    """Whether a sequence of `length` is computed in blocks of `block` (0: never)."""
    return block > 0 and length > block and length % block == 0


class Attention(nn.Module):
    num_heads: int
    positional: str = "rope"
    rope_base: float = 10_000.0
    dtype: Any = jnp.float32
    block: int = 0  # training: queries in blocks of this many, skipping masked key blocks (0: one block)

    @nn.compact
    def __call__(
        self,
        x_BxLxD: jax.Array,
        positions_BxL: jax.Array,
        mask_Bx1xLxT: jax.Array | None,
        cache: dict[str, jax.Array] | None = None,
        cache_index: jax.Array | None = None,
        segment_ids_BxL: jax.Array | None = None,
    ) -> tuple[jax.Array, dict[str, jax.Array] | None]:
        """mask: [B, 1, L, T] bool; None in training when the sequence is
        computed in blocks (segment_ids then give the segments)."""
        D = x_BxLxD.shape[-1]
        K = D // self.num_heads
        dense = lambda name: nn.DenseGeneral(  # noqa: E731
            (self.num_heads, K), use_bias=False, dtype=self.dtype, param_dtype=jnp.float32, name=name
        )
        out = nn.DenseGeneral(D, axis=(-2, -1), use_bias=False, dtype=self.dtype, param_dtype=jnp.float32,
                              name="out")
        q_BxLxHxK, k_BxLxHxK, v_BxLxHxK = dense("query")(x_BxLxD), dense("key")(x_BxLxD), dense("value")(x_BxLxD)
        if self.positional == "rope":
            q_BxLxHxK = rope(q_BxLxHxK, positions_BxL, self.rope_base)
            k_BxLxHxK = rope(k_BxLxHxK, positions_BxL, self.rope_base)
        if cache is None and mask_Bx1xLxT is None:  # training, in blocks
            out_BxLxHxK = blockwise_attention(q_BxLxHxK, k_BxLxHxK, v_BxLxHxK, segment_ids_BxL, self.block, self.dtype)
            return out(out_BxLxHxK), None
        if cache is None:  # training: keys are the sequence itself, [B, T=L, H, K]
            k, v, key_axes = k_BxLxHxK, v_BxLxHxK, "bthk"
        else:  # decoding: the new keys go into the cache, [B, H, T, K]
            cache = kv_cache.update(cache, k_BxLxHxK, v_BxLxHxK, cache_index)
            k, v, key_axes = cache["k"], cache["v"], "bhtk"
        return out(attend(q_BxLxHxK, k, v, mask_Bx1xLxT, key_axes, self.dtype)), cache
