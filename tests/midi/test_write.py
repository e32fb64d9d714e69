"""Writing events back gives a file that plays the same notes."""

from __future__ import annotations

import numpy as np

from yoshimidi_jax.midi import read_midi, write_midi


def test_write_then_read_gives_the_same_notes(tmp_path, few_midi_files):
    for path in few_midi_files:
        events = read_midi(path).events  # channels unknown: the writer picks them
        out = str(tmp_path / "back.mid")
        write_midi(events, out)
        back = read_midi(out).events
        assert len(back) == len(events)
        np.testing.assert_array_equal(back.pitch, events.pitch)
        np.testing.assert_array_equal(back.velocity, events.velocity)
        tick = 0.5 / 960  # writer resolution: 960 ticks per beat at 120 bpm
        np.testing.assert_allclose(back.onset_s, events.onset_s, atol=tick)
        # durations too, even where notes of one pitch overlap (violins in
        # unison): the writer puts such notes on channels of their own
        assert _overlaps_same_pitch(events).any() or path != few_midi_files[-2]
        np.testing.assert_allclose(back.duration_s, events.duration_s, atol=2 * tick)
        assert [(k.sharps, k.minor) for k in back.key_signatures] == [
            (k.sharps, k.minor) for k in events.key_signatures
        ]
        np.testing.assert_array_equal(np.unique(back.program), np.unique(events.program))


def _overlaps_same_pitch(events) -> np.ndarray:
    out = np.zeros(len(events), bool)
    for p, prog in set(zip(events.pitch.tolist(), events.program.tolist())):
        idx = np.flatnonzero((events.pitch == p) & (events.program == prog))
        on, end = events.onset_s[idx], events.end_s[idx]
        overlap = (on[:, None] < end[None, :]) & (on[None, :] < end[:, None])
        out[idx] = overlap.sum(1) > 1
    return out
