"""encode/decode: round trips on real pieces and on random event lists."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from yoshimidi_jax.midi import NoteEvents, read_midi
from yoshimidi_jax.tokens import BOS, EOS, TIME, Family, TimeCodec, Vocab, decode, encode, normalize_events
from yoshimidi_jax.tokens.presses import PRESS_WINDOW_S, press_index

VOCAB, CODEC = Vocab(), TimeCodec()
HALF_GRID = CODEC.min_s / 2 + 1e-6


def _assert_round_trip(events: NoteEvents):
    seq = encode(events)
    back = decode(seq.ids, seq.times)
    expected = normalize_events(events, CODEC)
    assert len(back) == len(expected)
    np.testing.assert_array_equal(back.pitch, expected.pitch)
    np.testing.assert_allclose(back.onset_s, expected.onset_s, atol=1e-4)
    np.testing.assert_allclose(back.duration_s, expected.duration_s, atol=1e-4)
    # against the original: onsets within half a grid step of their press's first
    # onset (a press spans at most PRESS_WINDOW_S), velocity within its bin
    # the original, in the order of its quantised, press-snapped onsets
    quantised = np.round(events.onset_s / CODEC.min_s) * CODEC.min_s
    by_onset = np.argsort(quantised, kind="stable")
    press = press_index(quantised[by_onset])
    snapped = np.empty_like(quantised)
    snapped[by_onset] = quantised[by_onset][np.searchsorted(press, press)]
    original = events.take(np.lexsort((events.pitch, np.round(snapped / CODEC.min_s))))
    if len(expected) == len(original):  # no same-pitch duplicates were merged
        np.testing.assert_array_equal(back.pitch, original.pitch)
        late = original.onset_s - back.onset_s  # a note is written at (or before) its own onset
        assert late.min(initial=0) >= -HALF_GRID - 1e-4
        assert late.max(initial=0) <= PRESS_WINDOW_S + HALF_GRID + 1e-4
        assert np.abs(back.velocity - original.velocity).max(initial=0) <= 128 // VOCAB.num_velocity_bins
    return seq


def test_layout_of_a_real_piece(few_midi_files):
    seq = encode(read_midi(few_midi_files[0]).events)
    assert seq.ids[0] == BOS and seq.ids[-1] == EOS
    fam = VOCAB.family(seq.ids)
    assert (fam == Family.CONTROL).sum() == 0  # controls are added at training time
    assert (fam == Family.NOTE_ON).sum() == (fam == Family.NOTE_OFF).sum()
    assert (seq.times[seq.ids != TIME] == 0).all()
    assert (seq.times[seq.ids == TIME] >= CODEC.min_s - 1e-7).all()
    assert seq.ids.max() < VOCAB.size


def test_round_trip_on_real_pieces(few_midi_files):
    for path in few_midi_files:
        events = read_midi(path).events
        seq = _assert_round_trip(events)
        tokens_per_note = len(seq) / len(events)
        assert tokens_per_note < 3.5, (path, tokens_per_note)


def test_round_trip_on_a_sample_of_the_default_corpus(corpus_sample):
    """Every collection of the default corpus (a seeded sample, tests/conftest.py;
    YOSHIMIDI_TEST_CORPUS=all: every file)."""
    from yoshimidi_jax.data.sources.music21_corpus import DEFAULT_COLLECTIONS

    collections = {os.path.relpath(p, corpus_sample.root).split(os.sep)[0] for p in corpus_sample.paths}
    assert collections == set(DEFAULT_COLLECTIONS)
    total_tokens = total_notes = 0
    for path in corpus_sample.paths:
        events = read_midi(path).events
        seq = _assert_round_trip(events)
        total_tokens += len(seq)
        total_notes += len(events)
    assert total_tokens / total_notes <= 3.5


def test_long_gap_is_split_and_decoded_exactly():
    events = NoteEvents.from_arrays([0.0, 20.0], [1.0, 0.5], [60, 62], [80, 80])
    seq = encode(events)
    assert (seq.ids == TIME).sum() == 5  # 1.0 s, then 19 s as 8 + 8 + 3, then 0.5 s
    assert list(seq.times[seq.ids == TIME]) == [1.0, 8.0, 8.0, 3.0, 0.5]
    _assert_round_trip(events)


def test_re_struck_pitch_off_before_on():
    events = NoteEvents.from_arrays([0.0, 0.5], [0.5, 0.5], [60, 60], [80, 80])
    names = [VOCAB.describe(int(i)) for i in encode(events).ids]
    assert names == ["BOS", "VEL(20)", "ON(60)", "TIME", "OFF(60)", "ON(60)", "TIME", "OFF(60)", "EOS"]


def test_overlapping_same_pitch_cut_and_very_short_note_kept():
    events = NoteEvents.from_arrays([0.0, 0.3, 1.0], [1.0, 0.2, 0.001], [60, 60, 64], [80, 90, 70])
    back = decode(*encode(events).__dict__.values())
    np.testing.assert_allclose(back.onset_s, [0.0, 0.3, 1.0])
    np.testing.assert_allclose(back.duration_s, [0.3, 0.2, CODEC.min_s], atol=1e-6)


def test_decode_tolerates_any_ids():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, VOCAB.size, 500)
    times = np.where(ids == TIME, rng.uniform(0.01, 1.0, 500), 0.0)
    events = decode(ids, times)
    assert (events.duration_s >= 0).all()
    assert len(events) == ((ids >= VOCAB.note_on) & (ids < VOCAB.note_off)).sum()


notes = st.lists(
    st.tuples(
        st.floats(0, 30, allow_nan=False),  # onset
        st.floats(0.0, 5, allow_nan=False),  # duration
        st.integers(0, 127),  # pitch
        st.integers(1, 127),  # velocity
    ),
    min_size=0,
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(notes)
def test_round_trip_random_events(rows):
    cols = list(zip(*rows)) if rows else [[], [], [], []]
    events = NoteEvents.from_arrays(*cols)
    seq = _assert_round_trip(events)
    assert len(seq) >= 2


@settings(max_examples=100, deadline=None)
@given(st.floats(CODEC.min_s, CODEC.max_s))
def test_two_hot_expectation_recovers_time(t):
    dense = CODEC.two_hot_dense(np.array([t]))
    assert np.isclose(dense.sum(), 1.0)
    assert (dense > 0).sum() <= 2
    np.testing.assert_allclose(CODEC.expectation(dense), [t], rtol=1e-5)


def test_velocity_bins_cover_the_range():
    v = np.arange(1, 128)
    bins = VOCAB.velocity_bin(v)
    assert bins.min() == 0 and bins.max() == VOCAB.num_velocity_bins - 1
    assert (np.abs(VOCAB.velocity_of_bin(bins) - v) <= 128 // VOCAB.num_velocity_bins).all()
    assert (VOCAB.velocity_bin(VOCAB.velocity_of_bin(np.arange(32))) == np.arange(32)).all()
