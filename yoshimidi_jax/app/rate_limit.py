"""A token bucket per session: `rate` messages per second on average, bursts
of up to `burst`. Pure: the caller passes the clock."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class TokenBucket:
    rate: float  # tokens added per second
    burst: float  # the most tokens the bucket holds
    tokens: float = -1.0  # starts full
    last_s: float | None = None

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError(f"rate={self.rate} must be > 0 and burst={self.burst} >= 1")
        if self.tokens < 0:
            self.tokens = float(self.burst)

    def take(self, now_s: float) -> bool:
        """True if a message arriving at now_s may go through (and spends a token)."""
        if self.last_s is not None:
            self.tokens = min(self.burst, self.tokens + max(0.0, now_s - self.last_s) * self.rate)
        self.last_s = now_s
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False
