"""The per-session token bucket (app/rate_limit.py), on an explicit clock."""

from __future__ import annotations

import pytest

from yoshimidi_jax.app.rate_limit import TokenBucket


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
