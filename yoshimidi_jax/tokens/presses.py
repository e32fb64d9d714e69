"""Key presses: the one definition that data, sampling and the instrument share.

A *press* is what a player does with one hand movement: the notes struck
together. In data, a press is a run of onsets that all lie within
PRESS_WINDOW_S of the press's first onset (encoding writes them all at that
first onset, so a chord is contiguous in the token stream); at play time the
instrument waits at most that window after a first key-down to count the keys.

Each press has three attributes, each computable at the moment of the press
from the past alone (no look-ahead):
- interval: from the previous press's reference note to this one's, where the
  reference note of a press is its *lowest* note (in the token stream the
  first NOTE_ON of a press, as chords are written low to high). Classes:
  0 same, 1..4 up by 1-2 / 3-5 / 6-11 / 12+ semitones, 5..8 the same down.
  The first press of a piece has no interval (ANY).
- chord: how many notes the press strikes, 1..5+ (classes 0..4).
- velocity: the reference note's velocity, soft (<64) / medium (64..95) /
  hard (>=96) (classes 0..2).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from yoshimidi_jax.tokens.vocab import NUM_CHORD_SIZES, NUM_INTERVAL_CLASSES, NUM_VELOCITY_BUCKETS

PRESS_WINDOW_S = 0.035  # <= 40 ms: the instrument waits this long to count a chord
MAX_KEYS = 10  # keys one press may name (the instrument plays at most play.press.MAX_NOTES of them)
_INTERVAL_EDGES = np.array([1, 3, 6, 12])  # |semitones| -> 0 same, 1, 2, 3, 4 octave+
_VELOCITY_EDGES = np.array([64, 96])
ANY_INTERVAL = NUM_INTERVAL_CLASSES
ANY_CHORD = NUM_CHORD_SIZES
ANY_VELOCITY = NUM_VELOCITY_BUCKETS


def interval_class(semitones):
    """Signed interval -> class 0..8 (0 same, 1..4 up, 5..8 down)."""
    semitones = np.asarray(semitones)
    size = np.searchsorted(_INTERVAL_EDGES, np.abs(semitones), side="right")
    return np.where(semitones < 0, size + 4, size)


def interval_bounds(cls: int) -> tuple[int, int]:
    """Class -> the inclusive range of signed semitones it allows."""
    lo_hi = [(0, 0), (1, 2), (3, 5), (6, 11), (12, 127)]
    if cls <= 4:
        return lo_hi[cls]
    lo, hi = lo_hi[cls - 4]
    return -hi, -lo


def velocity_bucket(velocity):
    """MIDI velocity -> 0 soft, 1 medium, 2 hard (numpy or jax arrays, or numbers)."""
    v = velocity if hasattr(velocity, "shape") else np.asarray(velocity)
    return sum((v >= edge) * 1 for edge in _VELOCITY_EDGES.tolist())


VELOCITY_BUCKET_RANGE = ((1, 63), (64, 95), (96, 127))


def chord_class(num_notes):
    """Notes in a press (>= 1) -> class 0..4 (5 or more -> 4)."""
    return np.minimum(np.asarray(num_notes), NUM_CHORD_SIZES) - 1


def press_index(onset_s: np.ndarray, window_s: float = PRESS_WINDOW_S) -> np.ndarray:
    """Onsets in ascending order -> the press each belongs to (0, 1, ...): a press
    starts at the first onset more than window_s after the current press's first
    onset. Sequential only inside runs of close onsets, so it stays fast."""
    onset_s = np.asarray(onset_s, np.float64)
    n = onset_s.shape[0]
    if n == 0:
        return np.zeros(0, np.int64)
    eps = 1e-9
    new = np.ones(n, bool)
    new[1:] = np.diff(onset_s) > window_s + eps
    for i in np.flatnonzero(~new):  # close to the previous onset: walk back to the press start
        start = i - 1
        while not new[start]:
            start -= 1
        new[i] = onset_s[i] - onset_s[start] > window_s + eps
    return np.cumsum(new) - 1


@dataclasses.dataclass(frozen=True)
class PressAttributes:
    """One row per press, in time order."""

    onset_s: np.ndarray  # the press's first onset
    reference_pitch: np.ndarray  # its lowest pitch
    num_notes: np.ndarray
    interval: np.ndarray  # class, ANY_INTERVAL for the first press
    chord: np.ndarray  # class
    velocity: np.ndarray  # class (of the reference note's velocity)
    reference_velocity: np.ndarray  # the reference note's MIDI velocity


def attributes_of_notes(onset_s, pitch, velocity, window_s: float = PRESS_WINDOW_S) -> PressAttributes:
    """Vectorised: notes (any order) -> the attributes of every press they form."""
    onset_s = np.asarray(onset_s, np.float64)
    pitch = np.asarray(pitch, np.int64)
    velocity = np.asarray(velocity, np.int64)
    order = np.lexsort((pitch, onset_s))  # time, then low to high: the reference comes first
    onset_s, pitch, velocity = onset_s[order], pitch[order], velocity[order]
    press = press_index(onset_s, window_s)
    if press.size == 0:
        empty = np.zeros(0, np.int64)
        return PressAttributes(np.zeros(0), empty, empty, empty, empty, empty, empty)
    first = np.flatnonzero(np.append(True, press[1:] != press[:-1]))
    # the lowest note of each press (the first after sorting a press by pitch)
    by_press = np.lexsort((pitch, press))
    lowest = by_press[np.flatnonzero(np.append(True, press[by_press][1:] != press[by_press][:-1]))]
    ref = pitch[lowest]
    count = np.bincount(press)
    interval = np.append(ANY_INTERVAL, interval_class(np.diff(ref)))
    return PressAttributes(
        onset_s=onset_s[first], reference_pitch=ref, num_notes=count, interval=interval,
        chord=chord_class(count), velocity=velocity_bucket(velocity[lowest]),
        reference_velocity=velocity[lowest],
    )


def attributes_of_press(previous_reference: int | None, pitches, velocity: int) -> tuple[int, int, int]:
    """One press as it happens (the instrument's view): the reference pitch of the
    previous press (None: this is the first), the pitches struck, and the
    press's velocity -> (interval, chord, velocity) classes. The same
    definition as attributes_of_notes, one press at a time."""
    pitches = [int(p) for p in pitches]
    if not pitches:
        raise ValueError("a press strikes at least one note")
    ref = min(pitches)
    interval = ANY_INTERVAL if previous_reference is None else int(interval_class(ref - previous_reference))
    return interval, int(chord_class(len(pitches))), int(velocity_bucket(velocity))
