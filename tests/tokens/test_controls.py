"""Control annotation: values on a known sequence, packing, insertion, drop."""

from __future__ import annotations

import numpy as np

from yoshimidi_jax.midi import NoteEvents, read_midi
from yoshimidi_jax.tokens import BOS, TIME, Vocab, encode
from yoshimidi_jax.tokens import controls as ctl

VOCAB = Vocab()


def test_annotate_known_melody_and_chord():
    # C4, E4 (+4), C4 (-4), then a chord G3+B3+D4 struck hard (D4 10 ms late: still
    # one press), then D4 again: +7 from the chord's lowest note G3
    events = NoteEvents.from_arrays(
        onset_s=[0.0, 0.5, 1.0, 1.5, 1.5, 1.51, 2.0],
        duration_s=[0.5, 0.5, 0.5, 0.5, 0.5, 0.49, 0.5],
        pitch=[60, 64, 60, 55, 59, 62, 62],
        velocity=[40, 40, 80, 110, 110, 110, 70],
    )
    seq = encode(events)
    c = ctl.annotate(seq.ids, seq.times)
    assert list(c.interval) == [ctl.ANY_INTERVAL, 2, 6, 6, 3]
    assert list(c.chord) == [0, 0, 0, 2, 0]  # classes: 1 note, 3 notes
    assert list(c.velocity) == [0, 0, 1, 2, 1]
    # each position is the press's first NOTE_ON: the lowest note of the chord
    on = [VOCAB.describe(int(t)) for t in seq.ids[c.position]]
    assert on == ["ON(60)", "ON(64)", "ON(60)", "ON(55)", "ON(62)"]
    # the chord is contiguous in the stream: its three NOTE_ONs with no TIME between
    chord = c.position[3]
    assert [VOCAB.describe(int(t)) for t in seq.ids[chord : chord + 3]] == ["ON(55)", "ON(59)", "ON(62)"]


def test_interval_classes():
    semis = np.array([0, 1, 2, 3, 5, 6, 11, 12, 30, -1, -2, -3, -5, -6, -11, -12, -40])
    assert list(ctl.interval_class(semis)) == [0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8]


def test_pack_unpack_covers_the_block():
    i, c, v = np.meshgrid(np.arange(10), np.arange(6), np.arange(4), indexing="ij")
    ids = ctl.control_id(i.ravel(), c.ravel(), v.ravel())
    assert sorted(ids) == list(range(VOCAB.control, VOCAB.size))
    back = ctl.control_attributes(ids)
    for a, b in zip(back, (i.ravel(), c.ravel(), v.ravel())):
        np.testing.assert_array_equal(a, b)


def test_insert_controls_right_after_the_time_of_each_press(few_midi_files):
    seq = encode(read_midi(few_midi_files[0]).events)
    c = ctl.annotate(seq.ids, seq.times)
    ids, times = ctl.insert_controls(seq.ids, seq.times, c)
    is_ctrl = VOCAB.is_control(ids)
    assert is_ctrl.sum() == len(c.position)
    at = np.flatnonzero(is_ctrl)
    # each CONTROL follows the TIME (or the BOS) of its press ...
    assert np.isin(ids[at - 1], [TIME, BOS]).all()
    # ... then come that moment's NOTE_OFFs, the press's VELOCITY if it has one, its NOTE_ON
    nxt = np.array([i + 1 + np.argmax(~VOCAB.is_note_off(ids[i + 1:])) for i in at])
    nxt = nxt + VOCAB.is_velocity(ids[nxt])
    assert VOCAB.is_note_on(ids[nxt]).all()
    assert VOCAB.is_note_off(ids[at + 1]).sum() > 0  # notes end at the moment of a press somewhere
    assert VOCAB.is_velocity(ids[at + 1]).sum() > 0  # the piece changes velocity somewhere
    # the NOTE_ON after each CONTROL is the first of its press, at the annotated position
    shift = np.arange(len(at)) + 1  # controls inserted at or before each position
    np.testing.assert_array_equal(nxt - shift, c.position)
    # removing the controls gives the original back; annotation ignores them
    np.testing.assert_array_equal(ids[~is_ctrl], seq.ids)
    np.testing.assert_array_equal(times[~is_ctrl], seq.times)
    again = ctl.annotate(ids, times)
    np.testing.assert_array_equal(again.interval, c.interval)
    np.testing.assert_array_equal(again.chord, c.chord)


def test_drop_rates_match_their_probabilities():
    n = 20_000
    c = ctl.PressControls(np.arange(n), np.zeros(n, int), np.zeros(n, int), np.zeros(n, int))
    dropped, keep = ctl.drop_controls(c, np.random.default_rng(0), p_drop_sequence=0.0, p_drop_press=0.3,
                                      p_drop_attribute=0.1)
    assert abs((~keep).mean() - 0.3) < 0.02
    assert abs((dropped.interval == ctl.ANY_INTERVAL).mean() - 0.1) < 0.01
    assert abs((dropped.chord == ctl.ANY_CHORD).mean() - 0.1) < 0.01
    assert abs((dropped.velocity == ctl.ANY_VELOCITY).mean() - 0.1) < 0.01
    # whole sequences: all or nothing, at their rate
    few = ctl.PressControls(c.position[:50], c.interval[:50], c.chord[:50], c.velocity[:50])
    kept_any = []
    for seed in range(400):
        _, keep = ctl.drop_controls(few, np.random.default_rng(seed), p_drop_sequence=0.25, p_drop_press=0.0,
                                    p_drop_attribute=0.0)
        assert keep.all() or not keep.any()
        kept_any.append(keep.any())
    assert abs(1 - np.mean(kept_any) - 0.25) < 0.06
