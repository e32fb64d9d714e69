"""Categorical time: a delta in seconds as a two-hot distribution over K
log-spaced supports (MuZero-style), linear in log-time, so that
`decode(two_hot(t)) == t` for every t inside [min, max]."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class TimeCodec:
    num_supports: int = 64
    min_s: float = 0.005  # also the time grid of encoding: onsets round to it
    max_s: float = 8.0  # longer gaps are written as several TIME positions

    @property
    def supports(self) -> np.ndarray:
        return np.geomspace(self.min_s, self.max_s, self.num_supports)

    def position(self, t, xp=np):
        """t [...] (seconds) -> (lower support index, weight of the upper
        support), both float, clipped to [min_s, max_s]. xp: numpy (float64)
        or jax.numpy (float32, usable under jit): the one formula for both."""
        t = xp.clip(xp.asarray(t, dtype=np.float64 if xp is np else np.float32), self.min_s, self.max_s)
        x = xp.log(t / self.min_s) / float(np.log(self.max_s / self.min_s)) * (self.num_supports - 1)
        lower = xp.clip(xp.floor(x), 0, self.num_supports - 2)
        return lower, x - lower

    def two_hot(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """t [...] (seconds) -> (lower support index [...] int32, weight of the
        upper support [...] float32). Clipped to [min_s, max_s]."""
        lower, w = self.position(t)
        return lower.astype(np.int32), w.astype(np.float32)

    def two_hot_dense(self, t, xp=np):
        """t [...] -> probabilities [..., K] (xp: numpy or jax.numpy)."""
        lower, w = self.position(t, xp)
        k = xp.arange(self.num_supports)
        return (k == lower[..., None]) * (1 - w[..., None]) + (k == lower[..., None] + 1) * w[..., None]

    def log_supports(self, xp=np):
        return xp.asarray(np.log(self.supports), dtype=np.float64 if xp is np else np.float32)

    def expectation(self, probs, xp=np):
        """probabilities [..., K] -> seconds: the expectation in log-time."""
        return xp.exp(xp.asarray(probs) @ self.log_supports(xp))
