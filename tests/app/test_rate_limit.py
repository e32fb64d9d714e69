"""The per-session token bucket (app/rate_limit.py), on an explicit clock."""

from __future__ import annotations

import pytest

from yoshimidi_jax.app.rate_limit import COOLING_TOKENS, FloodMemory, TokenBucket, bucket_for


def takes(bucket: TokenBucket, now_s: float, n: int) -> list[bool]:
    return [bucket.take(now_s) for _ in range(n)]


def test_allows_a_burst_at_once_then_refuses():
    b = TokenBucket(rate=4.0, burst=5)
    assert takes(b, 100.0, 5) == [True] * 5
    assert takes(b, 100.0, 3) == [False] * 3


def test_refills_at_rate():
    b = TokenBucket(rate=4.0, burst=5)
    takes(b, 0.0, 5)
    assert not b.take(0.125)  # half a token
    assert b.take(0.25)  # one token after 1/rate s
    assert not b.take(0.25)
    assert takes(b, 0.75, 3) == [True, True, False]  # 0.5 s later: 2 tokens


def test_refill_is_capped_at_burst():
    b = TokenBucket(rate=4.0, burst=5)
    takes(b, 0.0, 5)
    assert takes(b, 1000.0, 6) == [True] * 5 + [False]


def test_refused_messages_cost_nothing():
    b = TokenBucket(rate=2.0, burst=1)
    assert b.take(0.0)
    assert takes(b, 0.25, 10) == [False] * 10  # refused: no token spent, none owed
    assert b.take(0.5)


def test_sustained_rate_passes_and_faster_does_not():
    # exactly the rate (after the burst is spent): every message passes
    b = TokenBucket(rate=8.0, burst=2)
    takes(b, 0.0, 2)
    assert all(b.take(i / 8.0) for i in range(1, 50))
    # twice the rate: about half pass
    b = TokenBucket(rate=8.0, burst=2)
    takes(b, 0.0, 2)
    passed = sum(b.take(i / 16.0) for i in range(1, 161))
    assert passed == 80


def test_clock_going_backwards_adds_no_tokens():
    b = TokenBucket(rate=4.0, burst=2)
    takes(b, 10.0, 2)
    assert not b.take(5.0)
    assert not b.take(5.0)


def test_starts_full_and_checks_its_arguments():
    assert TokenBucket(rate=1.0, burst=3).tokens == 3.0
    for rate, burst in [(0.0, 5), (-1.0, 5), (1.0, 0), (1.0, 0.5)]:
        with pytest.raises(ValueError):
            TokenBucket(rate=rate, burst=burst)


def test_an_address_closed_for_flooding_cools_down_then_is_forgotten():
    memory = FloodMemory(cooldown_s=10.0, max_addresses=2)
    memory.closed("10.0.0.1", now_s=100.0)
    assert memory.cooling("10.0.0.1", 109.9) and not memory.cooling("10.0.0.1", 110.0)
    assert not memory.cooling("10.0.0.2", 105.0) and not memory.cooling(None, 105.0)
    memory.closed("10.0.0.2", 101.0)
    memory.closed("10.0.0.3", 102.0)  # past max_addresses: the oldest is forgotten
    assert len(memory) == 2 and not memory.cooling("10.0.0.1", 105.0) and memory.cooling("10.0.0.3", 105.0)
    memory.closed(None, 103.0)  # an unknown address is not kept
    assert len(memory) == 2
    with pytest.raises(ValueError, match="cooldown_s"):
        FloodMemory(cooldown_s=-1.0)


def test_a_cooling_address_gets_the_rate_but_no_burst():
    full = bucket_for(rate=60.0, burst=120, cooling=False, now_s=0.0)
    assert sum(full.take(0.0) for _ in range(200)) == 120
    cooling = bucket_for(rate=60.0, burst=120, cooling=True, now_s=0.0)
    assert sum(cooling.take(0.0) for _ in range(10)) == COOLING_TOKENS  # at once: a page's first messages
    assert sum(cooling.take(0.5) for _ in range(200)) == 30  # half a second at 60/s, from its start
