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

    def two_hot(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """t [...] (seconds) -> (lower support index [...] int32, weight of the
        upper support [...] float32). Clipped to [min_s, max_s]."""
        t = np.clip(np.asarray(t, dtype=np.float64), self.min_s, self.max_s)
        x = np.log(t / self.min_s) / np.log(self.max_s / self.min_s) * (self.num_supports - 1)
        lower = np.clip(np.floor(x), 0, self.num_supports - 2)
        return lower.astype(np.int32), (x - lower).astype(np.float32)

    def two_hot_dense(self, t: np.ndarray) -> np.ndarray:
        """t [...] -> probabilities [..., K]."""
        lower, w = self.two_hot(t)
        k = np.arange(self.num_supports)
        return (k == lower[..., None]) * (1 - w[..., None]) + (k == lower[..., None] + 1) * w[..., None]

    def expectation(self, probs: np.ndarray) -> np.ndarray:
        """probabilities [..., K] -> seconds: the expectation in log-time."""
        return np.exp(np.asarray(probs) @ np.log(self.supports))
