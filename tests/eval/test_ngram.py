"""The n-gram baseline: exact normalisation, orders, entropy, piece boundaries."""

from __future__ import annotations

import numpy as np
import pytest

from yoshimidi_jax.eval.ngram import (
    best_ngram,
    fit_ngram,
    log_probs,
    nats_per_token,
    next_token_log_probs,
)


def _random_pieces(rng, num, length, vocab_size, low=0):
    return [rng.integers(low, vocab_size, size=rng.integers(2, length)) for _ in range(num)]


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_probabilities_sum_to_one_for_every_context(n):
    vocab_size = 7
    rng = np.random.default_rng(0)
    # skewed, with tokens 5 and 6 never seen in training
    pieces = [rng.choice(5, size=rng.integers(2, 40), p=[0.5, 0.2, 0.15, 0.1, 0.05]) for _ in range(30)]
    model = fit_ngram(pieces, n, vocab_size)
    histories = [[], [0], [0, 1], [0, 0, 0, 0], [1, 2, 3], [6], [6, 5], [5, 6, 5, 6], [0, 6, 0], [4, 4, 4, 4, 4]]
    for history in histories:
        p = np.exp(next_token_log_probs(model, history))
        assert p.shape == (vocab_size,)
        assert np.all(p > 0)
        assert abs(p.sum() - 1.0) < 1e-9, (history, p.sum())
    # and log_probs agrees with the per-context distribution
    piece = np.array([0, 1, 2, 6, 0, 1])
    lp = log_probs(model, [piece])[0]
    expected = [next_token_log_probs(model, piece[:i])[piece[i]] for i in range(1, piece.size)]
    np.testing.assert_allclose(lp, expected, rtol=0, atol=1e-12)


def test_higher_order_beats_unigram_on_a_repeating_sequence():
    # needs 3 tokens of context: after (5, 5) comes 6 or 7 depending on what came before
    pattern = [5, 5, 6, 5, 5, 7]
    pieces = [np.array([1] + pattern * 30 + [2]) for _ in range(20)]
    best, best_nats, scores = best_ngram(pieces[:15], pieces[15:], vocab_size=10, orders=(1, 2, 3, 4, 5))
    assert scores[1] > 0.85  # ~ entropy of the frequencies (2/3, 1/6, 1/6): 0.868
    assert scores[2] < scores[1]
    assert scores[4] < 0.05 * scores[1]
    assert best >= 4 and best_nats == scores[best] == min(scores.values())


def test_unigram_matches_entropy_of_iid_tokens():
    probs = np.array([0.4, 0.25, 0.15, 0.1, 0.05, 0.03, 0.02])
    entropy = float(-(probs * np.log(probs)).sum())
    rng = np.random.default_rng(1)
    train = list(rng.choice(probs.size, size=(200, 1000), p=probs))
    held_out = list(rng.choice(probs.size, size=(200, 1000), p=probs))
    model = fit_ngram(train, 1, probs.size)
    assert abs(nats_per_token(model, held_out) - entropy) < 0.02
    # an iid source gains nothing from context
    assert nats_per_token(fit_ngram(train, 3, probs.size), held_out) > entropy - 0.02


def test_contexts_do_not_cross_piece_boundaries():
    # alternating pieces A, B: concatenated, the stream 1 5 2 | 1 6 2 | 1 5 2 ... would make
    # the token after "5 2 1" always 6 and after "6 2 1" always 5
    a, b = np.array([1, 5, 2]), np.array([1, 6, 2])
    pieces = [a, b] * 50
    model = fit_ngram(pieces, 4, vocab_size=8)
    after_a = np.exp(next_token_log_probs(model, [5, 2, 1]))
    after_b = np.exp(next_token_log_probs(model, [6, 2, 1]))
    # no piece ever contains "5 2 1" or "6 2 1": both back off to the same p(. | 1)
    np.testing.assert_allclose(after_a, after_b, rtol=0, atol=1e-12)
    assert abs(after_a[5] - after_a[6]) < 1e-12
    # while a piece start, (start, start, 1), is a seen context
    at_start = np.exp(next_token_log_probs(model, [1]))
    assert at_start[5] + at_start[6] > 0.95

    # fitting is invariant to the order of the pieces; scoring a piece ignores its neighbours
    rng = np.random.default_rng(2)
    train = _random_pieces(rng, 40, 30, 9)
    held_out = _random_pieces(rng, 10, 30, 9)
    m1, m2 = fit_ngram(train, 3, 9), fit_ngram(train[::-1], 3, 9)
    for k in range(3):
        np.testing.assert_array_equal(m1.keys[k], m2.keys[k])
        np.testing.assert_array_equal(m1.counts[k], m2.counts[k])
    together = log_probs(m1, held_out)
    for piece, lp in zip(held_out, together, strict=True):
        np.testing.assert_array_equal(log_probs(m1, [piece])[0], lp)


def test_unseen_tokens_and_contexts_get_finite_loss():
    rng = np.random.default_rng(3)
    train = _random_pieces(rng, 20, 50, 5)  # ids 0..4 only
    held_out = [np.array([1, 9, 9, 8, 7, 2]), np.array([1, 3]), np.array([1]), np.array([], np.int64)]
    for n in (1, 2, 5):
        model = fit_ngram(train, n, vocab_size=10)
        lps = log_probs(model, held_out)
        assert [lp.size for lp in lps] == [5, 1, 0, 0]
        allv = np.concatenate(lps)
        assert np.all(np.isfinite(allv)) and np.all(allv < 0)
        assert np.isfinite(nats_per_token(model, held_out))
    with pytest.raises(ValueError):
        log_probs(model, [np.array([1, 10])])
    # no training data at all: uniform
    empty = fit_ngram([np.array([1])], 3, vocab_size=10)
    np.testing.assert_allclose(log_probs(empty, [np.array([1, 4, 2])])[0], np.log(0.1), atol=1e-12)


def test_weights_select_positions():
    rng = np.random.default_rng(4)
    train = _random_pieces(rng, 30, 40, 6)
    held_out = _random_pieces(rng, 5, 40, 6)
    model = fit_ngram(train, 2, 6)
    nll = -np.concatenate(log_probs(model, held_out))
    masks = [np.arange(p.size - 1) % 2 == 0 for p in held_out]
    expected = nll[np.concatenate(masks)].mean()
    assert nats_per_token(model, held_out, masks) == pytest.approx(expected, rel=1e-12)
    # masks aligned with the tokens (entry 0, the given BOS, ignored) give the same
    token_masks = [np.concatenate([[True], m]) for m in masks]
    assert nats_per_token(model, held_out, token_masks) == pytest.approx(expected, rel=1e-12)
    assert nats_per_token(model, held_out) == pytest.approx(nll.mean(), rel=1e-12)
