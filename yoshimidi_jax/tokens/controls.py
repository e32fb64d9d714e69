"""Control tokens (conditional training, Korbak et al. 2023), one per key press.

A CONTROL id packs the three attributes of a press (tokens/presses.py:
interval from the previous press, chord size, velocity bucket), each of which
may be ANY. In a token stream it comes right before the press it describes,
right after the TIME that brings the press, ahead of the NOTE_OFFs of that
moment and of the press's VELOCITY:

    ... TIME  CONTROL  [NOTE_OFF ...]  [VELOCITY]  NOTE_ON  [VELOCITY] NOTE_ON ...  TIME ...
                       \___________________ one press ____________________/

so the control comes before everything that realises it: the notes ended at
that moment too (a repeated note is ended, then struck again). Training drops
whole sequences' controls, single presses' controls and single attributes at
random, so one model is conditional and unconditional.

`Control` is the checked, user-facing form: every value is validated where it
enters (CLI, API, the instrument), with an error naming the value and the
allowed range.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from yoshimidi_jax.tokens.presses import (
    ANY_CHORD,
    ANY_INTERVAL,
    ANY_VELOCITY,
    NUM_CHORD_SIZES,
    NUM_INTERVAL_CLASSES,
    NUM_VELOCITY_BUCKETS,
    attributes_of_notes,
    chord_class,
    interval_class,
    press_index,
    velocity_bucket,
)
from yoshimidi_jax.tokens.stream import clock_s, velocity_in_force
from yoshimidi_jax.tokens.vocab import BOS, Vocab

__all__ = [
    "ANY_CHORD", "ANY_INTERVAL", "ANY_VELOCITY", "Control", "ControlError", "PressControls",
    "annotate", "chord_class", "control_attributes", "control_id", "drop_controls", "insert_controls",
    "interval_class", "velocity_bucket",
]

INTERVAL_NAMES = (
    "same", "up-step", "up-skip", "up-leap", "up-octave", "down-step", "down-skip", "down-leap", "down-octave",
)
INTERVAL_MEANING = ("0", "+1..2", "+3..5", "+6..11", "+12 or more", "-1..2", "-3..5", "-6..11", "-12 or more")
CHORD_NAMES = ("single", "two", "three", "four", "five")
VELOCITY_NAMES = ("soft", "medium", "hard")
_ANY_WORDS = ("*", "any")


class ControlError(ValueError):
    """A control value that is malformed or out of range."""


def _parse_field(text: str, what: str, names: tuple[str, ...], any_value: int) -> int:
    t = text.strip().lower()
    if t in _ANY_WORDS:
        return any_value
    if t in names:
        return names.index(t)
    try:
        value = int(t)
    except ValueError:
        raise ControlError(
            f"{what} {text!r} is not a class number 0..{len(names) - 1}, a name ({', '.join(names)}) or '*'"
        ) from None
    _check(value, what, len(names), names)
    return value


def _check(value, what: str, n: int, names: tuple[str, ...]) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ControlError(f"{what} {value!r} is not an integer class (0..{n - 1}, or {n} for any)")
    if not 0 <= int(value) <= n:
        raise ControlError(
            f"{what} {int(value)} is out of range: 0..{n - 1} ({', '.join(names)}) or {n} for any"
        )


@dataclasses.dataclass(frozen=True)
class Control:
    """What a player asks of one press. Each field is a class number or ANY."""

    interval: int = ANY_INTERVAL
    chord: int = ANY_CHORD
    velocity: int = ANY_VELOCITY

    def __post_init__(self) -> None:
        _check(self.interval, "interval", NUM_INTERVAL_CLASSES, INTERVAL_NAMES)
        _check(self.chord, "chord", NUM_CHORD_SIZES, CHORD_NAMES)
        _check(self.velocity, "velocity", NUM_VELOCITY_BUCKETS, VELOCITY_NAMES)

    @staticmethod
    def parse(spec: str) -> "Control":
        """'INTERVAL/CHORD/VELOCITY': class numbers ('2/0/1'), names
        ('up-step/single/hard') or '*' (any), mixed as you like."""
        parts = str(spec).split("/")
        if len(parts) != 3:
            raise ControlError(f"control {spec!r}: expected INTERVAL/CHORD/VELOCITY, e.g. 2/0/1 or up-step/*/hard")
        try:
            return Control(
                _parse_field(parts[0], "interval", INTERVAL_NAMES, ANY_INTERVAL),
                _parse_field(parts[1], "chord", CHORD_NAMES, ANY_CHORD),
                _parse_field(parts[2], "velocity", VELOCITY_NAMES, ANY_VELOCITY),
            )
        except ControlError as e:
            raise ControlError(f"control {spec!r}: {e}") from None

    @staticmethod
    def from_id(token: int, vocab: Vocab = Vocab()) -> "Control":
        if not vocab.is_control(int(token)):
            raise ControlError(f"id {token} is not a CONTROL id ({vocab.control}..{vocab.size - 1})")
        i, c, v = control_attributes(np.array([token]), vocab)
        return Control(int(i[0]), int(c[0]), int(v[0]))

    def id(self, vocab: Vocab = Vocab()) -> int:
        return int(control_id(self.interval, self.chord, self.velocity, vocab))

    def __str__(self) -> str:
        def name(v, names):
            return "*" if v == len(names) else names[v]

        return "/".join((name(self.interval, INTERVAL_NAMES), name(self.chord, CHORD_NAMES),
                         name(self.velocity, VELOCITY_NAMES)))


def parse_controls(specs) -> list[Control]:
    """A list of specs (or one comma-separated string) -> Controls."""
    if isinstance(specs, str):
        specs = [s for s in specs.split(",") if s.strip()]
    return [Control.parse(s) for s in specs]


def control_id(interval, chord, velocity, vocab: Vocab = Vocab()) -> np.ndarray:
    """Packs attribute classes (ANY allowed) into CONTROL token ids."""
    packed = (np.asarray(interval) * (NUM_CHORD_SIZES + 1) + np.asarray(chord)) * (
        NUM_VELOCITY_BUCKETS + 1
    ) + np.asarray(velocity)
    return vocab.control + packed


def control_attributes(ids, vocab: Vocab = Vocab()):
    """CONTROL token ids -> (interval, chord, velocity) classes (numpy or jax)."""
    packed = ids - vocab.control
    velocity = packed % (NUM_VELOCITY_BUCKETS + 1)
    rest = packed // (NUM_VELOCITY_BUCKETS + 1)
    return rest // (NUM_CHORD_SIZES + 1), rest % (NUM_CHORD_SIZES + 1), velocity


@dataclasses.dataclass(frozen=True)
class PressControls:
    """One row per press of a token sequence."""

    position: np.ndarray  # index of the press's first NOTE_ON in the sequence
    interval: np.ndarray  # 0..8, or ANY_INTERVAL
    chord: np.ndarray  # 0..4, or ANY_CHORD
    velocity: np.ndarray  # 0..2, or ANY_VELOCITY


def annotate(ids: np.ndarray, times: np.ndarray, vocab: Vocab = Vocab()) -> PressControls:
    """The controls each press of a token sequence satisfies (CONTROL ids
    already in the sequence are ignored)."""
    ids = np.asarray(ids)
    position = np.flatnonzero(vocab.is_note_on(ids))
    clock = clock_s(ids, times, vocab)[position]
    pitch = ids[position] - vocab.note_on
    vel = velocity_in_force(ids, position, vocab)  # -1 where no VELOCITY came yet
    attrs = attributes_of_notes(clock, pitch, vel)
    press = press_index(clock)  # clock is ascending along the stream
    first = np.flatnonzero(np.append(True, press[1:] != press[:-1])) if press.size else press
    return PressControls(
        position=position[first],
        interval=attrs.interval,
        chord=attrs.chord,
        velocity=np.where(attrs.reference_velocity >= 0, attrs.velocity, ANY_VELOCITY),
    )


def drop_controls(
    controls: PressControls, rng: np.random.Generator, p_drop_sequence: float, p_drop_press: float,
    p_drop_attribute: float,
) -> tuple[PressControls, np.ndarray]:
    """Korbak-style tag dropout. Returns the controls with some attributes set
    to ANY and a keep mask (False: the press gets no CONTROL token). With
    probability p_drop_sequence the whole sequence keeps none."""
    n = controls.position.shape[0]
    drop_all = rng.random() < p_drop_sequence
    keep = (rng.random(n) >= p_drop_press) & (not drop_all)
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
    controls: PressControls,
    keep: np.ndarray | None = None,
    vocab: Vocab = Vocab(),
) -> tuple[np.ndarray, np.ndarray]:
    """Inserts one CONTROL id per press (where keep is True) right after the
    TIME that brings the press (after BOS for a piece's first press): ahead of
    the NOTE_OFFs of that moment and the press's VELOCITY, so that the notes
    ended there (a repeated note must end first) are chosen knowing the press."""
    keep = np.ones(controls.position.shape[0], bool) if keep is None else keep
    ids = np.asarray(ids)
    boundary = np.flatnonzero(vocab.is_time(ids) | (ids == BOS))
    first_on = controls.position[keep]
    k = np.searchsorted(boundary, first_on) - 1  # the last TIME/BOS before the press
    where = np.where(k >= 0, boundary[np.maximum(k, 0)] + 1, 0)
    values = control_id(controls.interval[keep], controls.chord[keep], controls.velocity[keep], vocab)
    return (
        np.insert(ids, where, values.astype(ids.dtype)),
        np.insert(np.asarray(times), where, np.zeros(where.shape[0], np.asarray(times).dtype)),
    )
