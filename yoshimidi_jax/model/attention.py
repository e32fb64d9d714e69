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
import numpy as np

from yoshimidi_jax.model import dots, kv_cache

NEG_INF = -1e30


@jax.named_scope("rope")
def rope_tables(positions_BxL: jax.Array, head_size: int, base: float = 10_000.0) -> tuple[jax.Array, jax.Array]:
    """(sin, cos) [B, L, K/2] of the rotary embedding's angles at each position."""
    half = head_size // 2
    freq = base ** (-jnp.arange(half, dtype=jnp.float32) / half)
    angle_BxLxhalf = positions_BxL.astype(jnp.float32)[..., None] * freq
    return jnp.sin(angle_BxLxhalf), jnp.cos(angle_BxLxhalf)


@jax.named_scope("rope")
def apply_rope(x: jax.Array, sin: jax.Array, cos: jax.Array) -> jax.Array:
    """Rotary embedding (half-split layout) of x [..., K], with sin/cos [..., K/2]
    broadcast against it (positions on the right axis); in float32."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half].astype(jnp.float32), x[..., half:].astype(jnp.float32)
    return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).astype(x.dtype)


@jax.named_scope("segment_mask")
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


@jax.named_scope("attend")
def attend(q_BxLxHxK: jax.Array, k_BxHxTxK: jax.Array, v_BxHxTxK: jax.Array, mask_Bx1xLxT: jax.Array,
           dtype: Any) -> jax.Array:
    """Masked softmax attention of queries (already scaled by 1/sqrt(K)) over
    the cache's keys and values [B, H, T, K] (decoding); softmax in float32."""
    scores_BxHxLxT = jnp.einsum("blhk,bhtk->bhlt", q_BxLxHxK, k_BxHxTxK, preferred_element_type=jnp.float32)
    probs_BxHxLxT = jax.nn.softmax(jnp.where(mask_Bx1xLxT, scores_BxHxLxT, NEG_INF), axis=-1).astype(dtype)
    return dots.einsum("bhlt,bhtk->blhk", probs_BxHxLxT, v_BxHxTxK, dtype)


@jax.named_scope("attend")
def attend_beside(q_BxLxHxK: jax.Array, cache: dict[str, jax.Array], k_BxLxHxK: jax.Array, v_BxLxHxK: jax.Array,
                  index: jax.Array, dtype: Any) -> jax.Array:
    """What `attend` gives after kv_cache.update wrote the L new keys/values at
    `index`, without writing them: the queries over the cache's entries before
    `index` and, causally, over the new keys beside them, one softmax across
    both. The cache is only read, so an exported graph need not copy it out
    (export/step.py: the page writes the new rows itself). -> [B, L, H, K]."""
    T, L = cache["k"].shape[2], q_BxLxHxK.shape[1]
    old_BxHxLxT = jnp.einsum("blhk,bhtk->bhlt", q_BxLxHxK, cache["k"], preferred_element_type=jnp.float32)
    old_BxHxLxT = jnp.where((jnp.arange(T) < index)[None, None, None, :], old_BxHxLxT, NEG_INF)
    new_BxHxLxL = jnp.einsum("blhk,bjhk->bhlj", q_BxLxHxK, k_BxLxHxK, preferred_element_type=jnp.float32)
    new_BxHxLxL = jnp.where(jnp.tril(jnp.ones((L, L), bool))[None, None], new_BxHxLxL, NEG_INF)
    probs_BxHxLxU = jax.nn.softmax(jnp.concatenate([old_BxHxLxT, new_BxHxLxL], axis=-1), axis=-1).astype(dtype)
    return (dots.einsum("bhlt,bhtk->blhk", probs_BxHxLxU[..., :T], cache["v"], dtype)
            + dots.einsum("bhlj,bjhk->blhk", probs_BxHxLxU[..., T:], v_BxLxHxK, dtype))


def block_spans(length: int, block: int) -> list[tuple[int, int]]:
    """The query blocks [start, stop) of a sequence: blocks of `block` where
    use_blocks says so, else one block of the whole length."""
    if not use_blocks(length, block):
        return [(0, length)]
    return [(start, start + block) for start in range(0, length, block)]


def use_blocks(length: int, block: int) -> bool:
    """Whether a sequence of `length` is computed in blocks of `block` (0: never)."""
    return block > 0 and length > block and length % block == 0


@jax.named_scope("attend")
def causal_attention(q_BxHxLxK: jax.Array, k_BxHxLxK: jax.Array, v_BxHxLxK: jax.Array,
                     segment_ids_BxL: jax.Array, block: int, dtype: Any) -> jax.Array:
    """Causal, same-segment attention over a whole sequence (training and
    prefill), heads before positions, queries already scaled by 1/sqrt(K).

    One block of `block` queries at a time against only the keys at or before
    its end (block_spans): the key blocks above the diagonal, all masked, are
    never computed, saving (n - 1) / 2n of the scores for n blocks. Each block
    is softmax-normalised after its weighted sum ([b, K] divisions instead of
    [b, T]), its row maximum held constant for the gradient (softmax does not
    depend on it). The same result as the whole masked softmax: masked keys
    weigh exactly 0. -> [B, H, L, K]."""
    outs = []
    for start, stop in block_spans(q_BxHxLxK.shape[2], block):
        scores_BxHxbxT = jnp.einsum("bhlk,bhtk->bhlt", q_BxHxLxK[:, :, start:stop], k_BxHxLxK[:, :, :stop],
                                    preferred_element_type=jnp.float32)
        scores_BxHxbxT = jnp.where(segment_mask(segment_ids_BxL, start, stop), scores_BxHxbxT, NEG_INF)
        top_BxHxbx1 = jax.lax.stop_gradient(scores_BxHxbxT.max(axis=-1, keepdims=True))
        weights_BxHxbxT = jnp.exp(scores_BxHxbxT - top_BxHxbx1)
        out_BxHxbxK = jnp.einsum("bhlt,bhtk->bhlk", weights_BxHxbxT.astype(dtype), v_BxHxLxK[:, :, :stop],
                                 preferred_element_type=jnp.float32)
        outs.append((out_BxHxbxK / weights_BxHxbxT.sum(axis=-1, keepdims=True)).astype(dtype))
    return jnp.concatenate(outs, axis=2)


class ProjectionKernel(nn.Module):
    """One projection's kernel, kept at its place in the params tree
    (attn/query/kernel, ...: checkpoints are those of nn.DenseGeneral) and
    initialised as nn.DenseGeneral does (lecun normal over the flattened
    input axes), so that Attention can use the four kernels as it likes."""

    shape: tuple[int, ...]
    input_axes: int  # the leading axes of `shape` that are the input's

    @nn.compact
    def __call__(self) -> jax.Array:
        def init(key, shape, dtype=jnp.float32):
            flat = (int(np.prod(shape[: self.input_axes])), int(np.prod(shape[self.input_axes:])))
            return jnp.reshape(nn.initializers.lecun_normal()(key, flat, dtype), shape)

        return self.param("kernel", init, self.shape, jnp.float32)


IMPLEMENTATIONS = ("blocks", "jax", "cudnn")


def fused_attention_available(dtype: Any) -> bool:
    """Whether cuDNN's fused (flash) attention can run here: a GPU backend and
    a 16-bit compute dtype (what jax.nn.dot_product_attention's cudnn path takes)."""
    return jax.default_backend() == "gpu" and jnp.dtype(dtype) in (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))


def library_attention(q_BxLxHxK: jax.Array, k_BxLxHxK: jax.Array, v_BxLxHxK: jax.Array,
                      segment_ids_BxL: jax.Array, implementation: str) -> jax.Array:
    """jax.nn.dot_product_attention over the whole sequence, causal and within
    segments (the segments as a [B, 1, L, L] mask), queries already scaled.
    implementation: 'xla' or 'cudnn'. -> [B, L, H, K]."""
    same_Bx1xLxL = (segment_ids_BxL[:, :, None] == segment_ids_BxL[:, None, :])[:, None]
    return jax.nn.dot_product_attention(q_BxLxHxK, k_BxLxHxK, v_BxLxHxK, mask=same_Bx1xLxL, is_causal=True,
                                        scale=1.0, implementation=implementation)


class Attention(nn.Module):
    num_heads: int
    positional: str = "rope"
    rope_base: float = 10_000.0
    dtype: Any = jnp.float32
    block: int = 0  # training: queries in blocks of this many, skipping masked key blocks (0: one block)
    # training's attention: 'blocks' (causal_attention), 'jax' (jax.nn.dot_product_attention, XLA),
    # 'cudnn' (its cuDNN flash attention where fused_attention_available, else 'blocks')
    implementation: str = "blocks"

    @nn.compact
    def __call__(
        self,
        x_BxLxD: jax.Array,
        positions_BxL: jax.Array,
        mask_Bx1xLxT: jax.Array | None,
        cache: dict[str, jax.Array] | None = None,
        cache_index: jax.Array | None = None,
        segment_ids_BxL: jax.Array | None = None,
        rows_only: bool = False,
    ) -> tuple[jax.Array, dict[str, jax.Array] | None]:
        """Training (cache None): causal and within segment_ids, mask unused.
        Decoding: the new keys/values go into the cache; mask [B, 1, L, T].
        rows_only (decoding): the cache is read, not written (attend_beside),
        and what comes back in its place is the new rows {'k', 'v'} [B, H, L, K]
        for the caller to write at cache_index; mask unused."""
        D = x_BxLxD.shape[-1]
        H, K = self.num_heads, D // self.num_heads
        w_query, w_key, w_value = (ProjectionKernel((D, H, K), 1, name=n)() for n in ("query", "key", "value"))
        w_out_HxKxD = ProjectionKernel((H, K, D), 2, name="out")()
        w_query = w_query * K ** -0.5  # 1/sqrt(K) folded into the query's kernel
        library = cache is None and (self.implementation == "jax" or (
            self.implementation == "cudnn" and fused_attention_available(self.dtype)))
        # our training attention runs heads before positions (the layout of its score
        # matmuls); jax.nn's and the cache's updates take positions before heads
        layout = "bhlk" if cache is None and not library else "blhk"
        with jax.named_scope("projections"):
            # q, k, v: [B, H, L, K] or [B, L, H, K], as `layout` says
            q, k, v = (dots.einsum(f"bld,dhk->{layout}", x_BxLxD, w, self.dtype) for w in (w_query, w_key, w_value))
        if self.positional == "rope":
            sin_BxLxhalf, cos_BxLxhalf = rope_tables(positions_BxL, K, self.rope_base)
            at = (slice(None), None) if layout == "bhlk" else (slice(None), slice(None), None)  # the heads axis
            q, k = (apply_rope(x, sin_BxLxhalf[at], cos_BxLxhalf[at]) for x in (q, k))
        if library:
            out = library_attention(q, k, v, segment_ids_BxL, "xla" if self.implementation == "jax" else "cudnn")
        elif cache is None:
            out = causal_attention(q, k, v, segment_ids_BxL, self.block, self.dtype)
        elif rows_only:
            out = attend_beside(q, cache, k, v, cache_index, self.dtype)
            cache = {"k": k.swapaxes(1, 2), "v": v.swapaxes(1, 2)}
        else:
            cache = kv_cache.update(cache, k, v, cache_index)
            out = attend(q, cache["k"], cache["v"], mask_Bx1xLxT, self.dtype)
        with jax.named_scope("projections"):
            return dots.einsum(f"{layout},hkd->bld", out, w_out_HxKxD, self.dtype), cache
