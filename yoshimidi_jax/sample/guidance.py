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

from yoshimidi_jax.tokens.styles import NO_STYLE, STYLES

# experiments.sample's default (and the music benchmark's) where a style is asked and no
# weight is given: each style's own (weight_for). The main job's model, benchmarks.music_quality
# seeds 0 / 1 / 2 (docs/benchmarks.md "How good is the music"): renaissance asked sounds
# 2.06 / 2.02 voices at 1, 2.20 / 2.32 at 2, 2.44 / 2.40 at 3, 2.67 / 2.60 / 2.70 at 3.5 and
# 2.80 / 2.90 / 3.11 at 4 against its held-out excerpts' 2.70 / 2.87 / 2.69 (mean OA 0.68 /
# 0.71 at 1, 0.58 / 0.63 at 2, 0.62 / 0.64 / 0.61 at 3.5); classical asked (no held-out piece;
# its training excerpts sound 3.0-3.2) sounds 2.7-2.8 at 1, 5.4 at 2 and 11.5 at 3.5: guidance
# piles its notes up; chorales (3.8-4.0 against 3.9) and fiddle tunes (one voice) hold their
# texture from 1 to 3.5, fiddle tunes' mean OA highest at 2.
WEIGHT = 2.0  # a style not in WEIGHTS
WEIGHTS = {"fiddle": 2.0, "chorale": 2.0, "renaissance": 3.5, "classical": 1.0}


def weight_for(style: int, given: float | None = None) -> float:
    """The guidance weight a sample asked for `style` (tokens/styles.py) gets:
    `given` (checked) where one is given, else its entry in WEIGHTS; 1 (none)
    where no style is asked."""
    if given is not None:
        return check_weight(given)
    if style == NO_STYLE:
        return 1.0
    return WEIGHTS.get(STYLES[style], WEIGHT) if 0 <= style < len(STYLES) else WEIGHT


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
