"""Classifier-free guidance for the style (Ho & Salimans 2022; for language
models, Sanchez et al. 2023): the style is dropped at random in training, so
one model gives both the logits given a style, l_s, and without one, l_u.
Sampling from

    l_u + weight (l_s - l_u)

follows the style as asked at weight 1, ignores it at 0, and leans further
into what sets the style apart above 1.

The sampler runs an asked row twice in one decode call: rows [0, B) with the
style, rows [B, 2B) with none. Both rows of a pair read the guided logits and
are fed the same token (`tie`), so the two hold the same music and differ
only in the style their model sees. Guidance doubles the work per token.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from yoshimidi_jax.tokens.styles import NO_STYLE

# experiments.sample's default (and the music benchmark's) where a style is asked. The main
# job's model, renaissance asked, against its held-out 2.6-2.7 voices and no monophonic
# piece: at 1, 1.6-1.8 voices and 15-23% monophonic; at 2, 2.3-2.4 and none (three seeds);
# at 2.5, 2.4-2.5, but classical pieces then sound 4.6 voices against their training
# pieces' 3.0 (3.3 at 2); at 3 renaissance's mean OA falls from 0.64 to 0.57
# (benchmarks.music_quality, docs/benchmarks.md, "How good is the music")
WEIGHT = 2.0


def check_weight(weight: float) -> float:
    weight = float(weight)
    if not (math.isfinite(weight) and weight >= 0.0):
        raise ValueError(f"style_guidance={weight}: a finite weight >= 0 (1: the style as asked, 0: no style)")
    return weight


def guided(x_2BxK: jax.Array, weight: float) -> jax.Array:
    """Logits of a paired batch (rows [0, B) given the style, [B, 2B) not) ->
    the guided logits, the same for both rows of a pair."""
    half = x_2BxK.shape[0] // 2
    styled, plain = x_2BxK[:half], x_2BxK[half:]
    mixed = plain + weight * (styled - plain)
    return jnp.concatenate([mixed, mixed], axis=0)


def tie(x_2B: jax.Array) -> jax.Array:
    """What the first row of each pair drew, for both rows."""
    half = x_2B.shape[0] // 2
    return jnp.concatenate([x_2B[:half], x_2B[:half]], axis=0)


def pair_rows(tree, style_B: np.ndarray):
    """A batch's arrays (any pytree of [B, ...] leaves) doubled for guidance,
    and the styles of the 2B rows: the asked ones, then NO_STYLE."""
    doubled = jax.tree.map(lambda a: np.concatenate([np.asarray(a)] * 2, axis=0), tree)
    style_B = np.asarray(style_B, np.int32)
    return doubled, np.concatenate([style_B, np.full_like(style_B, NO_STYLE)])
