"""A token bucket per session: `rate` messages per second on average, bursts
of up to `burst`. Pure: the caller passes the clock."""

from __future__ import annotations

import collections
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


class FloodMemory:
    """The client addresses whose sessions were closed for flooding, and
    when: a new session from one of them within `cooldown_s` starts with an
    almost empty bucket (the rate, no burst), so that reconnecting buys a flooder no
    new burst of decoded presses. Bounded: past `max_addresses` the oldest is
    forgotten. Pure: the caller passes the clock."""

    def __init__(self, cooldown_s: float, max_addresses: int = 4096):
        if cooldown_s < 0 or max_addresses < 1:
            raise ValueError(f"cooldown_s={cooldown_s} must be >= 0 and max_addresses={max_addresses} >= 1")
        self.cooldown_s, self.max_addresses = cooldown_s, max_addresses
        self._closed_at: collections.OrderedDict[str, float] = collections.OrderedDict()

    def closed(self, address: str | None, now_s: float) -> None:
        """A session from `address` was closed for flooding at now_s."""
        if address is None:
            return
        self._closed_at.pop(address, None)
        self._closed_at[address] = now_s
        while len(self._closed_at) > self.max_addresses:
            self._closed_at.popitem(last=False)

    def cooling(self, address: str | None, now_s: float) -> bool:
        """True if `address` was closed for flooding less than cooldown_s ago."""
        at = self._closed_at.get(address) if address is not None else None
        return at is not None and now_s - at < self.cooldown_s

    def __len__(self) -> int:
        return len(self._closed_at)


COOLING_TOKENS = 4  # what a session from a cooling address starts with: the page's first messages


def bucket_for(rate: float, burst: float, cooling: bool, now_s: float) -> TokenBucket:
    """A new session's bucket: full, or (cooling: its address flooded lately)
    with COOLING_TOKENS from now_s on, filling at the rate: enough for what
    a page sends on connecting (its settings, a reset), no burst to flood."""
    if not cooling:
        return TokenBucket(rate, burst)
    return TokenBucket(rate, burst, tokens=float(min(burst, COOLING_TOKENS)), last_s=now_s)
