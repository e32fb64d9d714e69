"""Presses: the vectorised annotation equals the instrument's press-by-press view
(no look-ahead), the reference note is the lowest, and control values are checked."""

from __future__ import annotations

import numpy as np
import pytest

from yoshimidi_jax.midi import NoteEvents, read_midi
from yoshimidi_jax.play.press import Press
from yoshimidi_jax.tokens import TIME, Vocab, encode
from yoshimidi_jax.tokens import controls as ctl
from yoshimidi_jax.tokens.controls import Control, ControlError
from yoshimidi_jax.tokens.presses import (
    ANY_INTERVAL,
    PRESS_WINDOW_S,
    attributes_of_notes,
    attributes_of_press,
    interval_bounds,
    interval_class,
    press_index,
)

VOCAB = Vocab()


def _walk_presses(ids, times):
    """Token by token, past only: -> [(position of first NOTE_ON, pitches, velocity in force)]."""
    presses, vel, open_press = [], -1, False
    for i, (t, dt) in enumerate(zip(ids, times)):
        if t == TIME:
            open_press = False
        elif VOCAB.is_velocity(t):
            vel = int(VOCAB.velocity_of_bin(t - VOCAB.velocity))
        elif VOCAB.is_note_on(t):
            if not open_press:
                presses.append((i, [], vel))
                open_press = True
            presses[-1][1].append(int(t - VOCAB.note_on))
    return presses


def test_annotate_equals_press_by_press_on_real_pieces(few_midi_files):
    total_chords = 0
    for path in few_midi_files:
        seq = encode(read_midi(path).events)
        c = ctl.annotate(seq.ids, seq.times)
        walked = _walk_presses(seq.ids, seq.times)
        assert len(walked) == len(c.position) > 20
        prev_ref = None
        for k, (pos, pitches, vel) in enumerate(walked):
            # the reference note is the first NOTE_ON of the press in the stream: its lowest
            assert pitches[0] == min(pitches) and pitches == sorted(pitches), (path, k, pitches)
            want = attributes_of_press(prev_ref, pitches, vel)
            got = (int(c.interval[k]), int(c.chord[k]), int(c.velocity[k]))
            assert got == want, (path, k, pos, pitches, vel)
            assert c.position[k] == pos
            prev_ref = min(pitches)
            total_chords += len(pitches) > 1
        # causal: annotating a prefix (cut at a TIME) gives the same rows for its presses
        cut = np.flatnonzero(seq.ids == TIME)[len(seq.ids[seq.ids == TIME]) // 2]
        head = ctl.annotate(seq.ids[:cut], seq.times[:cut])
        n = len(head.position)
        assert 0 < n < len(c.position)
        for a, b in ((head.interval, c.interval), (head.chord, c.chord), (head.velocity, c.velocity)):
            np.testing.assert_array_equal(a, b[:n])
    assert total_chords > 50  # the chorales have chords: the reference rule was exercised


def test_reference_is_the_lowest_note_in_data_and_at_play_time():
    # a chord struck high note first (E4, then C4 10 ms later, then G4), after A3
    events = NoteEvents.from_arrays(
        onset_s=[0.0, 0.5, 0.51, 0.52, 1.0], duration_s=[0.4] * 5,
        pitch=[57, 64, 60, 67, 62], velocity=[80, 100, 40, 70, 80],
    )
    seq = encode(events)
    c = ctl.annotate(seq.ids, seq.times)
    assert len(c.position) == 3
    assert VOCAB.describe(int(seq.ids[c.position[1]])) == "ON(60)"  # first in the stream: the lowest
    # the chord: +3 from A3 to C4 (not +7 to E4); then D4 is +2 from C4 (not -2 from E4)
    assert list(c.interval) == [ANY_INTERVAL, int(interval_class(3)), int(interval_class(2))]
    assert c.chord[1] == 2
    attrs = attributes_of_notes(events.onset_s, events.pitch, events.velocity)
    assert list(attrs.reference_pitch) == [57, 60, 62]
    assert list(attrs.velocity) == [1, 0, 1]  # the lowest note's velocity (40: soft), not the first struck
    # the instrument: keys in any order, the lowest is the reference
    assert attributes_of_press(57, [67, 64, 60], 40)[0] == int(interval_class(3))
    assert attributes_of_press(60, [62], 80)[0] == int(interval_class(2))
    assert attributes_of_press(None, [62], 80)[0] == ANY_INTERVAL
    with pytest.raises(ValueError):
        attributes_of_press(60, [], 80)


def test_press_index_window():
    onsets = np.array([0.0, 0.02, 0.035, 0.036, 0.06, 0.08, 1.0])
    # 0.036 is more than the window after 0.0: a new press, which 0.06 joins (24 ms later)
    assert list(press_index(onsets)) == [0, 0, 0, 1, 1, 2, 3]
    assert PRESS_WINDOW_S == pytest.approx(0.035)
    for cls in range(9):
        lo, hi = interval_bounds(cls)
        assert all(interval_class(s) == cls for s in range(lo, hi + 1))
        for outside in (lo - 1, hi + 1):
            if abs(outside) <= 127:  # beyond the keyboard: no neighbour class
                assert interval_class(outside) != cls, (cls, outside)


@pytest.mark.parametrize(
    "spec, words",
    [
        ("10/0/0", ["10", "0..8"]),
        ("9x/0/0", ["9x", "0..8"]),
        ("0/9/0", ["9", "0..4"]),
        ("0/0/4", ["4", "0..2"]),
        ("-1/*/*", ["-1", "0..8"]),
        ("x/0/0", ["'x'", "0..8"]),
        ("*/huge/*", ["'huge'", "0..4"]),
        ("0/0", ["'0/0'", "INTERVAL/CHORD/VELOCITY"]),
        ("", ["''", "INTERVAL/CHORD/VELOCITY"]),
        ("0/0/0/0", ["'0/0/0/0'", "INTERVAL/CHORD/VELOCITY"]),
    ],
)
def test_malformed_controls_name_value_and_range(spec, words):
    with pytest.raises(ControlError) as e:
        Control.parse(spec)
    for w in words:
        assert w in str(e.value), (spec, str(e.value))
    with pytest.raises(ControlError):
        ctl.parse_controls([spec, "0/0/0"])


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: Control(interval=True), ["interval", "True", "0..8"]),
        (lambda: Control(interval=10), ["interval", "10", "0..8"]),
        (lambda: Control(chord=-1), ["chord", "-1", "0..4"]),
        (lambda: Control(velocity=1.0), ["velocity", "1.0", "0..2"]),
        (lambda: Press(dt_s=0.1, velocity=0), ["velocity", "0", "[1, 127]"]),
        (lambda: Press(dt_s=0.1, velocity=128), ["velocity", "128", "[1, 127]"]),
        (lambda: Press(dt_s=0.1, velocity=64, num_keys=6), ["num_keys", "6", "[1, 5]"]),
        (lambda: Press(dt_s=0.1, velocity=64, num_keys=0), ["num_keys", "0", "[1, 5]"]),
        (lambda: Press(dt_s=float("nan"), velocity=64), ["dt_s", "nan", "3600"]),
        (lambda: Press(dt_s=-0.5, velocity=64), ["dt_s", "-0.5", "3600"]),
        (lambda: Press(dt_s=0.1, velocity=64, interval=10), ["interval", "10", "[0, 9]"]),
    ],
)
def test_bad_values_are_control_errors(make, words):
    with pytest.raises(ControlError) as e:
        make()
    for w in words:
        assert w in str(e.value), str(e.value)


def test_names_round_trip():
    seen = set()
    for i in range(10):
        for c in range(6):
            for v in range(4):
                control = Control(i, c, v)
                text = str(control)
                assert Control.parse(text) == control, text
                assert Control.from_id(control.id()) == control
                seen.add(control.id())
    assert len(seen) == 240
    assert Control.parse("2/0/1") == Control(2, 0, 1)
    assert Control.parse("up-step/single/hard") == Control(1, 0, 2)
    assert Control.parse(" Down-Octave / * / any ") == Control(8, ctl.ANY_CHORD, ctl.ANY_VELOCITY)
    assert ctl.parse_controls("0/0/0, up-skip/two/soft") == [Control(0, 0, 0), Control(2, 1, 0)]
    with pytest.raises(ControlError):
        Control.from_id(VOCAB.velocity)
