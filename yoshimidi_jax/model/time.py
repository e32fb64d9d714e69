"""jnp versions of tokens.TimeCodec (two-hot and expectation), usable under jit.
They agree with the numpy codec (tests/model/test_time.py)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from yoshimidi_jax.tokens import TimeCodec


def two_hot(codec: TimeCodec, t: jnp.ndarray) -> jnp.ndarray:
    """seconds [...] -> probabilities [..., K] (float32), clipped to [min_s, max_s]."""
    k = codec.num_supports
    t = jnp.clip(t.astype(jnp.float32), codec.min_s, codec.max_s)
    x = jnp.log(t / codec.min_s) / np.log(codec.max_s / codec.min_s) * (k - 1)
    lower = jnp.clip(jnp.floor(x), 0, k - 2)
    w = x - lower
    idx = jnp.arange(k, dtype=jnp.float32)
    return (idx == lower[..., None]) * (1 - w[..., None]) + (idx == lower[..., None] + 1) * w[..., None]


def log_supports(codec: TimeCodec) -> jnp.ndarray:
    return jnp.asarray(np.log(codec.supports), jnp.float32)


def expectation(codec: TimeCodec, probs: jnp.ndarray) -> jnp.ndarray:
    """probabilities [..., K] -> seconds: the expectation in log-time."""
    return jnp.exp(probs @ log_supports(codec))
