"""The token vocabulary: one flat space of int ids (docs/data.md, "Tokens").

    PAD BOS EOS SEP TIME | NOTE_ON x128 | NOTE_OFF x128 | VELOCITY x bins | CONTROL x 240
    [| TIME_SHIFT x time_shifts]

A TIME position carries a float (seconds since the previous event) beside its
id; the model embeds it as a two-hot mix of time supports (time_codec.py).
A CONTROL id packs one note's three control attributes (controls.py).

The optional TIME_SHIFT block is the other way to write time (Magenta's
Performance RNN, the Anticipatory Music Transformer): a fixed grid, the k-th
shift id meaning k steps of time_shift_s, longer gaps written as several
(time_shifts.py). Shift ids are of the TIME family and carry their seconds
in the time values like TIME does, so clocks and decoding read both alike.
Off by default (time_shifts=0): the ids and sizes above are unchanged.
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
    time_shifts: int = 0  # TIME_SHIFT ids (k steps of time_shift_s, k = 1..time_shifts); 0: none
    time_shift_s: float = 0.01

    def block_sizes(self) -> tuple[int, ...]:
        """How many ids each block holds, in id order: specials, NOTE_ON,
        NOTE_OFF, VELOCITY, CONTROL, TIME_SHIFT."""
        return NUM_SPECIALS, NUM_PITCHES, NUM_PITCHES, self.num_velocity_bins, NUM_CONTROLS, self.time_shifts

    def block_start(self, block: int) -> int:
        """The first id of a block (its index in block_sizes); len(block_sizes()): the size."""
        return sum(self.block_sizes()[:block])

    note_on = property(lambda self: self.block_start(1), doc="the first NOTE_ON id")
    note_off = property(lambda self: self.block_start(2), doc="the first NOTE_OFF id")
    velocity = property(lambda self: self.block_start(3), doc="the first VELOCITY id")
    control = property(lambda self: self.block_start(4), doc="the first CONTROL id")
    time_shift = property(lambda self: self.block_start(5), doc="the first TIME_SHIFT id (one step); == size when none")
    size = property(lambda self: self.block_start(6), doc="ids in all")

    @property
    def version(self) -> str:
        shifts = f"-shift{self.time_shifts}x{self.time_shift_s * 1e3:g}ms" if self.time_shifts else ""
        return f"{VOCAB_VERSION}-vel{self.num_velocity_bins}{shifts}"

    # Range tests on ids: one home for "is this id a NOTE_ON?" and the like.
    # Plain comparisons, so each works on ints, numpy and jax arrays alike.
    def is_note_on(self, ids):
        return (ids >= self.note_on) & (ids < self.note_off)

    def is_note_off(self, ids):
        return (ids >= self.note_off) & (ids < self.velocity)

    def is_velocity(self, ids):
        return (ids >= self.velocity) & (ids < self.control)

    def is_control(self, ids):
        return (ids >= self.control) & (ids < self.time_shift)

    def is_time_shift(self, ids):
        return (ids >= self.time_shift) & (ids < self.size)

    def is_time(self, ids):
        """TIME or a TIME_SHIFT: the ids that move the clock."""
        return (ids == TIME) | self.is_time_shift(ids)

    def shift_seconds(self, ids):
        """Seconds of each TIME_SHIFT id (k steps of time_shift_s); 0 elsewhere."""
        return ((ids - self.time_shift + 1) * self.time_shift_s) * self.is_time_shift(ids)

    def family(self, ids, xp=np):
        """Family of each id (vectorised; xp: numpy, or jax.numpy under jit)."""
        ids = xp.asarray(ids)
        # the block each id falls in, counted by comparisons (no search: cheap under jit)
        block = sum((ids >= b).astype(np.int32) for b in
                    (TIME, TIME + 1, self.note_on, self.note_off, self.velocity, self.control, self.time_shift))
        # <TIME: 0, TIME: 1, between TIME and note_on (none): 2, ON: 3, OFF: 4, VEL: 5, CTRL: 6, SHIFT: 7
        return xp.asarray(
            [Family.SPECIAL, Family.TIME, Family.SPECIAL, Family.NOTE_ON, Family.NOTE_OFF, Family.VELOCITY,
             Family.CONTROL, Family.TIME],
            dtype=np.int32,
        )[block]

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
        if token < self.time_shift:
            return f"CTRL({token - self.control})"
        if token < self.size:
            return f"SHIFT({token - self.time_shift + 1})"
        return f"?({token})"
