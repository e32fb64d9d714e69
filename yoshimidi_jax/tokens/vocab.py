"""The token vocabulary: one flat space of int ids (see shared/DESIGN.md).

    PAD BOS EOS SEP TIME | NOTE_ON x128 | NOTE_OFF x128 | VELOCITY x bins | CONTROL x 240

A TIME position carries a float (seconds since the previous event) beside its
id; the model embeds it as a two-hot mix of time supports (time_codec.py).
A CONTROL id packs one note's three control attributes (controls.py).
"""

from __future__ import annotations

import dataclasses
import enum

import numpy as np

# v2: notes struck within PRESS_WINDOW_S of a press's first onset are written at
# that onset (a chord is one press), and CONTROLs describe presses.
VOCAB_VERSION = "yoshimidi-v2"

PAD, BOS, EOS, SEP, TIME = 0, 1, 2, 3, 4
NUM_SPECIALS = 5
NUM_PITCHES = 128

# control attribute sizes, each with one extra "any" value (dropped control)
NUM_INTERVAL_CLASSES = 9  # same, +1..2, +3..5, +6..11, +12.., -1..2, -3..5, -6..11, -12..
NUM_CHORD_SIZES = 5  # 1, 2, 3, 4, 5+
NUM_VELOCITY_BUCKETS = 3  # soft, medium, hard
NUM_CONTROLS = (NUM_INTERVAL_CLASSES + 1) * (NUM_CHORD_SIZES + 1) * (NUM_VELOCITY_BUCKETS + 1)


class Family(enum.IntEnum):
    """Token families, for per-family losses and masks."""

    SPECIAL = 0
    NOTE_ON = 1
    NOTE_OFF = 2
    VELOCITY = 3
    TIME = 4
    CONTROL = 5


@dataclasses.dataclass(frozen=True)
class Vocab:
    """Offsets of each block of ids. Hashable, so jit can close over it."""

    num_velocity_bins: int = 32

    @property
    def note_on(self) -> int:
        return NUM_SPECIALS

    @property
    def note_off(self) -> int:
        return self.note_on + NUM_PITCHES

    @property
    def velocity(self) -> int:
        return self.note_off + NUM_PITCHES

    @property
    def control(self) -> int:
        return self.velocity + self.num_velocity_bins

    @property
    def size(self) -> int:
        return self.control + NUM_CONTROLS

    @property
    def version(self) -> str:
        return f"{VOCAB_VERSION}-vel{self.num_velocity_bins}"

    # Range tests on ids: one home for "is this id a NOTE_ON?" and the like.
    # Plain comparisons, so each works on ints, numpy and jax arrays alike.
    def is_note_on(self, ids):
        return (ids >= self.note_on) & (ids < self.note_off)

    def is_note_off(self, ids):
        return (ids >= self.note_off) & (ids < self.velocity)

    def is_velocity(self, ids):
        return (ids >= self.velocity) & (ids < self.control)

    def is_control(self, ids):
        return (ids >= self.control) & (ids < self.size)

    def family(self, ids, xp=np):
        """Family of each id (vectorised; xp: numpy, or jax.numpy under jit)."""
        bounds = xp.asarray([TIME, self.note_on, self.note_off, self.velocity, self.control])
        fam = xp.searchsorted(bounds, xp.asarray(ids), side="right")
        # searchsorted: <TIME ->0, TIME ->1, note_on.. ->2, note_off.. ->3, vel ->4, ctrl ->5
        return xp.asarray(
            [Family.SPECIAL, Family.TIME, Family.NOTE_ON, Family.NOTE_OFF, Family.VELOCITY, Family.CONTROL],
            dtype=np.int32,
        )[fam]

    def velocity_bin(self, velocity: np.ndarray) -> np.ndarray:
        """MIDI velocity 1..127 -> bin 0..num_velocity_bins-1."""
        v = np.clip(np.asarray(velocity, dtype=np.int64), 1, 127)
        return (v * self.num_velocity_bins) // 128

    def velocity_of_bin(self, bins: np.ndarray) -> np.ndarray:
        """Bin -> the middle velocity of the bin (decoding)."""
        bins = np.asarray(bins, dtype=np.int64)
        lo = np.maximum((bins * 128 + self.num_velocity_bins - 1) // self.num_velocity_bins, 1)
        hi = np.minimum(((bins + 1) * 128 - 1) // self.num_velocity_bins, 127)
        return (lo + hi) // 2

    def describe(self, token: int) -> str:
        """A readable name for one id (debugging, notebooks)."""
        names = {PAD: "PAD", BOS: "BOS", EOS: "EOS", SEP: "SEP", TIME: "TIME"}
        if token in names:
            return names[token]
        if token < self.note_off:
            return f"ON({token - self.note_on})"
        if token < self.velocity:
            return f"OFF({token - self.note_off})"
        if token < self.control:
            return f"VEL({token - self.velocity})"
        if token < self.size:
            return f"CTRL({token - self.control})"
        return f"?({token})"
