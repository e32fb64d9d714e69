"""Reading state off a token sequence, vectorised: the clock at each position
and the velocity in force there. Shared by decode and control annotation."""

from __future__ import annotations

import numpy as np

from yoshimidi_jax.tokens.vocab import Vocab


def clock_s(ids: np.ndarray, times: np.ndarray, vocab: Vocab = Vocab()) -> np.ndarray:
    """Seconds elapsed at each position: the sum of the time values of TIME
    (and TIME_SHIFT) positions up to it."""
    return np.cumsum(np.where(vocab.is_time(np.asarray(ids)), np.asarray(times, np.float64), 0.0))


def velocity_in_force(ids: np.ndarray, positions: np.ndarray, vocab: Vocab = Vocab()) -> np.ndarray:
    """The velocity (middle of its bin) of the last VELOCITY token at or
    before each of `positions`; -1 where there is none yet."""
    ids = np.asarray(ids)
    positions = np.asarray(positions, np.int64)
    if positions.size == 0:
        return np.zeros(0, np.int64)
    is_vel = vocab.is_velocity(ids)
    last = np.maximum.accumulate(np.where(is_vel, np.arange(ids.shape[0]), -1))[positions]
    velocity = vocab.velocity_of_bin(ids[np.maximum(last, 0)] - vocab.velocity)
    return np.where(last >= 0, velocity, -1)
