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
        x = self.support_index(t, xp)
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

    def grid_bin_log_prob(self, time_logits, t, step_s: float, xp=np):
        """The log-probability the time head gives a time's bin on a grid of
        step_s (bin n = max(1, round(t / step_s)) covers [(n - 1/2), (n + 1/2))
        steps, bin 1 everything below): logits [..., K], t [...] -> [...].

        The categorical over supports is read as the density its two-hot
        targets came from: support k spreads its probability as a hat
        (triangle) over support positions k - 1 .. k + 1 in log-time, the
        inverse of two-hot; the mass beyond the first and last supports
        belongs to them (times are clipped there). This scores a two-hot
        model and a model of TIME_SHIFT tokens on the same outcomes."""
        logp = time_logits - xp.max(time_logits, axis=-1, keepdims=True)
        probs = xp.exp(logp) / xp.sum(xp.exp(logp), axis=-1, keepdims=True)
        n = xp.maximum(xp.round(xp.asarray(t) / step_s), 1)
        k = xp.arange(self.num_supports)

        def cdf(x):  # P(position < x) [...]: the hats' CDFs, summed
            u = x[..., None] - k
            hat = xp.where(u < -1, 0.0, xp.where(u < 0, 0.5 * (u + 1) ** 2,
                                                 xp.where(u < 1, 1 - 0.5 * (1 - u) ** 2, 1.0)))
            # beyond the first/last support: that support's outer half-hat is inside the range
            hat = xp.where((k == 0) & (u < 0), 0.0, hat)
            hat = xp.where((k == self.num_supports - 1) & (u >= 0), 1.0, hat)
            return xp.sum(probs * hat, axis=-1)

        lo = self.support_index((n - 0.5) * step_s, xp)
        hi = self.support_index((n + 0.5) * step_s, xp)
        lo = xp.where(n <= 1, -np.inf, lo)
        p = cdf(hi) - cdf(lo)
        return xp.log(xp.maximum(p, 1e-30))

    def support_index(self, t, xp=np):
        """Seconds -> continuous support index, linear in log-time (0 at min_s,
        K - 1 at max_s; unclipped, t floored at 1e-12 s)."""
        return xp.log(xp.maximum(xp.asarray(t), 1e-12) / self.min_s) / float(np.log(self.max_s / self.min_s)) * (
            self.num_supports - 1)
