"""Time on a grid of TIME_SHIFT tokens: the vocabulary block, the conversion
on real pieces, and the two-hot head's probability of a grid bin."""

from __future__ import annotations

import numpy as np
import pytest

from yoshimidi_jax.midi import read_midi
from yoshimidi_jax.tokens import TIME, Family, TimeCodec, Vocab, decode, encode
from yoshimidi_jax.tokens.controls import annotate, insert_controls
from yoshimidi_jax.tokens.time_shifts import to_time_shifts

GRID = Vocab(time_shifts=100, time_shift_s=0.01)


def test_the_shift_block_follows_the_controls_and_leaves_the_rest_alone():
    plain = Vocab()
    assert plain.size == 533 and plain.time_shift == plain.size  # no shift ids by default
    assert GRID.size == plain.size + 100 and GRID.time_shift == plain.size
    ids = np.arange(GRID.size)
    np.testing.assert_array_equal(GRID.family(ids)[: plain.size], plain.family(ids[: plain.size]))
    assert (GRID.family(ids[plain.size:]) == Family.TIME).all()
    assert not GRID.is_control(plain.size) and GRID.is_control(plain.size - 1)
    np.testing.assert_allclose(GRID.shift_seconds(np.array([TIME, GRID.time_shift, GRID.size - 1])), [0, 0.01, 1.0])
    assert GRID.describe(GRID.size - 1) == "SHIFT(100)"
    assert GRID.version != plain.version


def test_real_pieces_keep_their_notes_on_the_10ms_grid(few_midi_files):
    for path in few_midi_files:
        seq = encode(read_midi(path).events)
        ids, times = to_time_shifts(seq.ids, seq.times, GRID)
        assert not (ids == TIME).any()
        shifts = GRID.is_time_shift(ids)
        np.testing.assert_allclose(times[shifts], GRID.shift_seconds(ids[shifts]), atol=1e-6)
        before, after = decode(seq.ids, seq.times), decode(ids, times, GRID)
        np.testing.assert_array_equal(after.pitch, before.pitch)
        np.testing.assert_array_equal(after.velocity, before.velocity)
        # each gap moves to the grid: a note's onset drifts by at most half a step per gap before it
        gaps_before = np.count_nonzero(seq.ids == TIME)
        assert np.abs(after.onset_s - before.onset_s).max() <= 0.005 * gaps_before + 1e-4
        # the grid itself: every onset is a whole number of 10 ms steps
        np.testing.assert_allclose(np.round(after.onset_s / 0.01) * 0.01, after.onset_s, atol=1e-4)
        # a gap over a second takes several ids, the longest first
        long = seq.times[seq.ids == TIME] > 1.0
        assert np.count_nonzero(shifts) >= gaps_before + long.sum()


def test_controls_inserted_before_the_conversion_stay_with_their_presses(few_midi_files):
    seq = encode(read_midi(few_midi_files[0]).events)
    controls = annotate(seq.ids, seq.times)
    with_controls = insert_controls(seq.ids, seq.times, controls)
    ids, times = to_time_shifts(*with_controls, GRID)
    again = annotate(ids, times, GRID)
    np.testing.assert_array_equal(again.interval, controls.interval)
    np.testing.assert_array_equal(again.chord, controls.chord)
    np.testing.assert_array_equal(again.velocity, controls.velocity)


def test_plain_vocabulary_is_refused():
    with pytest.raises(ValueError, match="no TIME_SHIFT"):
        to_time_shifts(np.array([TIME]), np.array([0.1]), Vocab())


@pytest.mark.parametrize("supports", [16, 64])
def test_grid_bin_probabilities_sum_to_one_and_follow_the_head(supports):
    codec = TimeCodec(num_supports=supports)
    rng = np.random.default_rng(0)
    logits = rng.standard_normal(supports) * 3
    n = np.arange(1, 1000)  # every 10 ms bin up to 10 s (the supports end at 8 s)
    p = np.exp(codec.grid_bin_log_prob(np.broadcast_to(logits, (n.size, supports)), n * 0.01, 0.01))
    assert p.sum() == pytest.approx(1.0, abs=1e-6)
    # a head sure of one support puts its bins' mass around that support's time
    peaked = np.full(supports, -30.0)
    peaked[supports // 2] = 0.0
    q = np.exp(codec.grid_bin_log_prob(np.broadcast_to(peaked, (n.size, supports)), n * 0.01, 0.01))
    mode_s = n[np.argmax(q)] * 0.01
    assert mode_s == pytest.approx(codec.supports[supports // 2], rel=0.06)
    # and the same under jax
    import jax.numpy as jnp

    np.testing.assert_allclose(np.asarray(codec.grid_bin_log_prob(jnp.asarray(logits), jnp.asarray(0.25), 0.01, jnp)),
                               codec.grid_bin_log_prob(logits, np.asarray(0.25), 0.01), rtol=1e-4)
