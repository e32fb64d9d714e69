"""Velocity augmentation: seeded, in range, presses move together, all dynamics present."""

from __future__ import annotations

import numpy as np

from yoshimidi_jax.data.augment import augment_velocity
from yoshimidi_jax.midi import read_midi
from yoshimidi_jax.tokens import decode, encode
from yoshimidi_jax.tokens.presses import press_index, velocity_bucket


def _pieces(paths):
    # as the pipeline sees them: decoded from tokens (a press's notes share one onset)
    out = []
    for p in paths:
        seq = encode(read_midi(p).events)
        out.append(decode(seq.ids, seq.times))
    return out


def test_seeded_and_in_range(few_midi_files):
    events = _pieces(few_midi_files[:2])[1]
    a = augment_velocity(events, np.random.default_rng(5))
    b = augment_velocity(events, np.random.default_rng(5))
    c = augment_velocity(events, np.random.default_rng(6))
    np.testing.assert_array_equal(a.velocity, b.velocity)
    assert not np.array_equal(a.velocity, c.velocity)
    np.testing.assert_array_equal(a.pitch, events.pitch)
    np.testing.assert_array_equal(a.onset_s, events.onset_s)
    np.testing.assert_array_equal(a.duration_s, events.duration_s)
    # extremes stay in 1..127 whatever the draw
    loud = events.__class__.from_arrays(onset_s=np.arange(40) * 0.5, duration_s=np.full(40, 0.4),
                                        pitch=np.full(40, 60), velocity=np.tile([1, 127], 20))
    for seed in range(50):
        v = augment_velocity(loud, np.random.default_rng(seed)).velocity
        assert v.min() >= 1 and v.max() <= 127


def test_notes_of_one_press_move_together(few_midi_files):
    for events in _pieces(few_midi_files):
        order = np.argsort(events.onset_s, kind="stable")
        press = np.empty(len(events), np.int64)
        press[order] = press_index(events.onset_s[order])
        for seed in range(3):
            new = augment_velocity(events, np.random.default_rng(seed)).velocity.astype(int)
            old = events.velocity.astype(int)
            for p in np.unique(press):
                rows = np.flatnonzero(press == p)
                if rows.size < 2:
                    continue
                # one gain, offset and swell for the press: equal velocities stay equal,
                # and the order of velocities is kept
                o, n = old[rows], new[rows]
                by = np.argsort(o, kind="stable")
                assert (np.diff(n[by]) >= 0).all(), (p, o, n)
                for v in np.unique(o):
                    assert np.unique(n[o == v]).size == 1, (p, o, n)


def test_all_three_buckets_get_a_share(few_midi_files):
    counts = np.zeros(3)
    plain = np.zeros(3)
    for i, events in enumerate(_pieces(few_midi_files)):
        plain += np.bincount(velocity_bucket(events.velocity), minlength=3)
        for seed in range(8):
            v = augment_velocity(events, np.random.default_rng(100 * i + seed)).velocity
            counts += np.bincount(velocity_bucket(v), minlength=3)
    share = counts / counts.sum()
    assert (share > 0.15).all(), share
    assert (plain / plain.sum()).min() < 0.15  # the corpus alone does not have them
