"""The model mixed with a copy of what followed the same context before (an
n-gram cache, Kuhn & De Mori 1990): music repeats itself, and the tiny model
alone under-uses it.

At each new position, wherever the last `context` tokens of the sample so far
occurred before (in the window the sampler holds), the token that followed
each occurrence gets a share; the next token's distribution is

    p(w) = (1 - weight) p_model(w) + weight p_copy(w)     (where a match exists; else p_model)

with p_copy(w) the fraction of the earlier occurrences followed by w. On the
held-out split of the main job's data it lowers the main job's model's nats
per note from 4.830 to 4.778 at the defaults below (no controls, 256-token
windows; benchmarks.heldout_copy, docs/benchmarks.md), and its samples repeat
their motifs as held-out music does. Grammar masks, temperature and top-p
apply to the mixture as to the model's own distribution.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# experiments.sample's defaults (and the music benchmark's): measured best of the tried
# settings against held-out music (benchmarks.music_quality, benchmarks.heldout_copy;
# docs/benchmarks.md, "How good is the music")
CONTEXT = 7
WEIGHT = 0.7


def copy_distribution(history_BxT: jax.Array, length: jax.Array, context: int,
                      vocab_size: int) -> tuple[jax.Array, jax.Array]:
    """history [B, T]: the tokens so far in their first `length` entries (the
    rest ignored). -> (p_copy [B, V], matched [B] bool): for each row, what
    followed the earlier occurrences of its last `context` tokens."""
    B, T = history_BxT.shape
    at_T = jnp.arange(T)
    # an occurrence ends at i (i - context + 1 .. i equal the last `context` tokens) and its
    # follower i + 1 is known (i + 1 < length)
    match_BxT = (at_T >= context - 1)[None] & (at_T + 1 < length)[None]
    for j in range(context):
        last_B = jax.lax.dynamic_index_in_dim(history_BxT, length - 1 - j, axis=1, keepdims=False)
        earlier_BxT = jnp.roll(history_BxT, j, axis=1)  # entry i holds history[i - j]
        match_BxT &= earlier_BxT == last_B[:, None]
    match_BxT &= length >= context
    follower_BxT = jnp.roll(history_BxT, -1, axis=1)  # entry i holds history[i + 1]
    counts_BxV = jax.vmap(lambda m, f: jnp.zeros(vocab_size, jnp.float32).at[f].add(m))(
        match_BxT.astype(jnp.float32), follower_BxT)
    total_B = counts_BxV.sum(-1)
    return counts_BxV / jnp.maximum(total_B, 1.0)[:, None], total_B > 0


def mix_logits(logits_BxV: jax.Array, history_BxT: jax.Array, length: jax.Array, context: int,
               weight: float) -> jax.Array:
    """The logits of (1 - weight) softmax(logits) + weight p_copy where the
    last `context` tokens occurred before; the model's own logits elsewhere."""
    p_copy_BxV, matched_B = copy_distribution(history_BxT, length, context, logits_BxV.shape[-1])
    return mixed_log_probs(logits_BxV, p_copy_BxV, matched_B, weight)


def mixed_log_probs(logits: jax.Array, p_copy: jax.Array, matched: jax.Array, weight: float) -> jax.Array:
    """[..., V]: log((1 - weight) softmax(logits) + weight p_copy) where matched [...]; elsewhere
    the model's own log-probabilities (logits up to a constant, for sampling)."""
    log_model = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    mixed = jnp.log((1.0 - weight) * jnp.exp(log_model) + weight * p_copy)
    return jnp.where(matched[..., None], mixed, log_model)


def copy_distributions(inputs_BxL: jax.Array, segment_ids_BxL: jax.Array, context: int,
                       vocab_size: int) -> tuple[jax.Array, jax.Array]:
    """copy_distribution at every position of whole windows (teacher forcing:
    held-out scoring): position t's p_copy from the earlier occurrences of
    inputs t - context + 1 .. t within the window and t's segment (tokens of
    other segments replaced by ids no other position has, so nothing matches
    them). -> (p_copy [B, L, V], matched [B, L] bool)."""
    L = inputs_BxL.shape[1]
    apart_L = -1 - jnp.arange(L, dtype=inputs_BxL.dtype)  # unique per position, never a token id

    def at(t):
        own_BxL = jnp.where(segment_ids_BxL == segment_ids_BxL[:, t, None], inputs_BxL, apart_L[None])
        return copy_distribution(own_BxL, t + 1, context, vocab_size)

    p_LxBxV, matched_LxB = jax.vmap(at)(jnp.arange(L))
    return p_LxBxV.swapaxes(0, 1), matched_LxB.swapaxes(0, 1)
