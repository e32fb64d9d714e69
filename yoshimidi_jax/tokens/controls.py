"""Control annotation (conditional training, Korbak et al. 2023).

Every NOTE_ON gets one CONTROL token before it (before its VELOCITY token,
where the note has one) that says what kind of note it is, computed from the
data:
- interval to the previous NOTE_ON (stream order; chord notes go low to high):
  same, +1..2, +3..5, +6..11, +12 or more, and the same downwards;
- chord size: NOTE_ONs whose onsets chain within `chord_window_s` (1..5+);
- velocity bucket: soft (<64), medium (64..95), hard (>=96).
Each attribute has an extra value ANY, so a control can say "a higher note,
any chord size, any velocity". One CONTROL id packs the three attributes.
Training drops attributes (and whole controls) at random, so one model is
both conditional and unconditional.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from yoshimidi_jax.tokens.vocab import (
    NUM_CHORD_SIZES,
    NUM_INTERVAL_CLASSES,
    NUM_VELOCITY_BUCKETS,
    Vocab,
)
from yoshimidi_jax.tokens.stream import clock_s, velocity_in_force

ANY_INTERVAL = NUM_INTERVAL_CLASSES
ANY_CHORD = NUM_CHORD_SIZES
ANY_VELOCITY = NUM_VELOCITY_BUCKETS
_INTERVAL_EDGES = np.array([1, 3, 6, 12])  # |interval| -> 0 same, 1, 2, 3, 4 octave+
_VELOCITY_EDGES = np.array([64, 96])


@dataclasses.dataclass(frozen=True)
class NoteControls:
    """One row per NOTE_ON of a sequence: its attribute classes."""

    position: np.ndarray  # index of the NOTE_ON in the sequence
    interval: np.ndarray  # 0..8, or ANY_INTERVAL
    chord: np.ndarray  # 0..4 (1..5+ notes), or ANY_CHORD
    velocity: np.ndarray  # 0..2, or ANY_VELOCITY


def interval_class(semitones: np.ndarray) -> np.ndarray:
    """Signed interval -> class 0..8 (0 same, 1..4 up, 5..8 down)."""
    semitones = np.asarray(semitones)
    size = np.searchsorted(_INTERVAL_EDGES, np.abs(semitones), side="right")
    return np.where(semitones < 0, size + 4, size)


def velocity_bucket(velocity: np.ndarray) -> np.ndarray:
    return np.searchsorted(_VELOCITY_EDGES, np.asarray(velocity), side="right")


def chord_sizes(onset_s: np.ndarray, window_s: float) -> np.ndarray:
    """For onsets in time order: size of the group each belongs to, where a
    group is a run of onsets each within window_s of the previous one."""
    if onset_s.size == 0:
        return np.zeros(0, np.int64)
    new_group = np.append(True, np.diff(onset_s) > window_s)
    group = np.cumsum(new_group) - 1
    return np.bincount(group)[group]


def annotate(
    ids: np.ndarray, times: np.ndarray, vocab: Vocab = Vocab(), chord_window_s: float = 0.035
) -> NoteControls:
    """The controls each NOTE_ON of a token sequence satisfies."""
    ids = np.asarray(ids)
    clock = clock_s(ids, times)
    is_on = (ids >= vocab.note_on) & (ids < vocab.note_off)
    position = np.flatnonzero(is_on)
    pitch = ids[position] - vocab.note_on
    interval = np.append(ANY_INTERVAL, interval_class(np.diff(pitch))) if pitch.size else pitch
    chord = np.minimum(chord_sizes(clock[position], chord_window_s), NUM_CHORD_SIZES) - 1
    vel = velocity_in_force(ids, position, vocab)
    velocity = np.where(vel >= 0, velocity_bucket(vel), ANY_VELOCITY)
    return NoteControls(position=position, interval=interval, chord=chord, velocity=velocity)


def control_id(interval, chord, velocity, vocab: Vocab = Vocab()) -> np.ndarray:
    """Packs attribute classes (ANY allowed) into CONTROL token ids."""
    packed = (np.asarray(interval) * (NUM_CHORD_SIZES + 1) + np.asarray(chord)) * (
        NUM_VELOCITY_BUCKETS + 1
    ) + np.asarray(velocity)
    return vocab.control + packed


def control_attributes(ids: np.ndarray, vocab: Vocab = Vocab()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CONTROL token ids -> (interval, chord, velocity) classes."""
    packed = np.asarray(ids) - vocab.control
    velocity = packed % (NUM_VELOCITY_BUCKETS + 1)
    rest = packed // (NUM_VELOCITY_BUCKETS + 1)
    return rest // (NUM_CHORD_SIZES + 1), rest % (NUM_CHORD_SIZES + 1), velocity


def drop_attributes(
    controls: NoteControls, rng: np.random.Generator, p_drop_note: float, p_drop_attribute: float
) -> tuple[NoteControls, np.ndarray]:
    """Sets attributes to ANY at random. Returns the controls and a keep mask
    (False: the note gets no CONTROL token at all)."""
    n = controls.position.shape[0]
    keep = rng.random(n) >= p_drop_note
    drop = rng.random((3, n)) < p_drop_attribute
    return (
        dataclasses.replace(
            controls,
            interval=np.where(drop[0], ANY_INTERVAL, controls.interval),
            chord=np.where(drop[1], ANY_CHORD, controls.chord),
            velocity=np.where(drop[2], ANY_VELOCITY, controls.velocity),
        ),
        keep,
    )


def insert_controls(
    ids: np.ndarray,
    times: np.ndarray,
    controls: NoteControls,
    keep: np.ndarray | None = None,
    vocab: Vocab = Vocab(),
) -> tuple[np.ndarray, np.ndarray]:
    """Inserts one CONTROL id before each NOTE_ON (where keep is True), ahead of
    the note's VELOCITY token when it has one, so that the control comes
    before everything that realises it (velocity, then pitch)."""
    keep = np.ones(controls.position.shape[0], bool) if keep is None else keep
    where = controls.position[keep]
    before = np.asarray(ids)[np.maximum(where - 1, 0)]
    where = where - ((where > 0) & (before >= vocab.velocity) & (before < vocab.control))
    values = control_id(controls.interval[keep], controls.chord[keep], controls.velocity[keep], vocab)
    return (
        np.insert(np.asarray(ids), where, values.astype(ids.dtype)),
        np.insert(np.asarray(times), where, np.zeros(where.shape[0], times.dtype)),
    )
