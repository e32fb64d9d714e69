"""Music-quality figures of one piece: the field's standard symbolic-music
metrics, the melody, stuck notes, motif recurrence and beat-grid consistency.

A piece is `NoteEvents` (seconds). Generated notes have no tempo of their own,
so every piece is read on one fixed clock (`Clock`): 120 bpm (a beat is
0.5 s), 24 steps per beat (muspy's default resolution; a step is 1/48 s, about
21 ms), a measure of 4 beats (96 steps). Quantisation (`quantise`):

    onset_step = round(onset_s / step_s)
    end_step   = max(round(end_s / step_s), onset_step + 1)

(np.round, half to even), so every note sounds for at least one step.

Standard figures: muspy 0.5.0's definitions (`muspy.metrics`; H.-W. Dong et
al., "MusPy: A Toolkit for Symbolic Music Generation", ISMIR 2020), computed on
the quantised piece exactly as muspy computes them on a one-track
`muspy.Music` with `resolution = steps_per_beat` (tests/eval checks equality
with muspy itself):

  pitch_class_entropy  Shannon entropy (bits) of the notes' pitch-class
                       histogram (one count per note)
  scale_consistency    the largest share of notes in one major or natural
                       minor scale, over the 24 scales (C-RNN-GAN, Mogren 2016)
  groove_consistency   1 - mean Hamming distance of neighbouring measures'
                       binary onset vectors / steps per measure (Wu & Yang 2020)
  polyphony            mean number of distinct pitches sounding, over the
                       steps where at least one sounds
  polyphony_rate       share of all steps with MORE THAN `threshold` = 2
                       pitches sounding (muspy's code uses `> threshold`; its
                       docstring says "multiple"; we keep the code's meaning)
  pitch_range          highest minus lowest pitch (0 when no note)
  n_pitches_used       number of distinct pitches
  empty_beat_rate      share of beats (0 .. length // steps_per_beat) no note
                       touches; a note touches beats onset // spb to
                       end // spb inclusive (so a note ending on a beat line
                       touches the next beat, as in muspy)

where "length" is the last note's end step and the steps are 0 .. length - 1.
As in muspy, the figures are NaN where undefined: no note (entropy, scale
consistency, polyphony, polyphony rate, empty-beat rate) or fewer than two
measures (groove consistency).

Beyond muspy:

  out_of_scale_rate    share of notes outside the best-fitting major/minor
                       scale, 1 - scale_consistency
  top line             the skyline: at each onset step (notes starting in
                       one step start together), the highest pitch
                       sounding (held notes included); the onset adds a note
                       to the top line when that highest pitch starts there.
                       A lower voice moving under a held top note adds
                       nothing, so the bass never leaks into the melody.
  melody intervals     semitone steps between consecutive top-line notes;
                       `interval_histogram` clips them to +-12 (25 bins) for
                       the pooled melody histogram
  longest_note_s       the longest note's duration (seconds, unquantised);
                       stuck notes are judged against held-out excerpts
  motif_recurrence     share of the top line's 4-interval windows (n-grams of
                       4 consecutive, unclipped intervals) whose pattern occurs
                       more than once in the piece; NaN under 5 top-line notes
  beat_grid_consistency  share of inter-onset intervals that are whole
                       multiples (>= 1) of the grid step, within 10% of the
                       step. Onsets (seconds) closer than 25 ms to the previous
                       one are one onset (a spread chord). The opening's step
                       comes from the first 16 onsets' 15 intervals: among
                       those intervals and the smallest of them / 2 and / 3,
                       the largest step that explains >= 90% of the opening's
                       intervals, else the step that explains most (ties: the
                       largest). The grid step is the opening's step split in
                       2, so a piece may move twice as fast as its opening
                       (eighths after an opening in quarters). Each interval is
                       judged from the previous onset, so a slow tempo drift
                       (rounded sampled times) is not punished. NaN under 2
                       onsets. Uniformly random onsets score about 2 * 10%.

`piece_figures` gives one piece's figures (`PieceFigures`), `figures_of_pieces`
a set's (name -> one value per piece) and `melody_interval_histogram` a set's
pooled melody histogram; eval/overlap.py compares two sets.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from yoshimidi_jax.midi.events import NoteEvents

MAX_INTERVAL = 12  # melody histogram bins: -12 .. +12 semitones
MOTIF_INTERVALS = 4  # a motif is this many consecutive top-line intervals
POLYPHONY_THRESHOLD = 2  # muspy's polyphony_rate default (steps with > 2 pitches)


@dataclasses.dataclass(frozen=True)
class Clock:
    """The one fixed clock every piece is read on."""

    beat_s: float = 0.5  # 120 bpm
    steps_per_beat: int = 24  # muspy's default resolution
    beats_per_measure: int = 4

    @property
    def step_s(self) -> float:
        return self.beat_s / self.steps_per_beat

    @property
    def steps_per_measure(self) -> int:
        return self.steps_per_beat * self.beats_per_measure


@dataclasses.dataclass(frozen=True)
class GridOptions:
    """How beat_grid_consistency reads onsets (seconds and shares)."""

    same_onset_s: float = 0.025  # onsets closer than this to the previous are one
    opening_onsets: int = 16  # the grid step comes from this many first onsets
    tolerance: float = 0.1  # an interval is on the grid within this share of the step
    explain_share: float = 0.9  # the largest step explaining this share of the opening wins
    subdivision: int = 2  # the grid step is the opening's step / this


@dataclasses.dataclass(frozen=True)
class StepNotes:
    """Notes quantised to the clock's steps (int64 arrays, one row per note)."""

    onset_step: np.ndarray  # [n]
    end_step: np.ndarray  # [n], > onset_step
    pitch: np.ndarray  # [n], 0..127

    @property
    def length(self) -> int:
        """The last note's end step (0 when no note)."""
        return int(self.end_step.max()) if self.end_step.size else 0


@dataclasses.dataclass(frozen=True)
class PieceFigures:
    """All figures of one piece (floats; NaN where undefined)."""

    pitch_class_entropy: float
    scale_consistency: float
    out_of_scale_rate: float
    groove_consistency: float
    polyphony: float
    polyphony_rate: float
    pitch_range: float
    n_pitches_used: float
    empty_beat_rate: float
    longest_note_s: float
    motif_recurrence: float
    beat_grid_consistency: float


FIGURES: tuple[str, ...] = tuple(field.name for field in dataclasses.fields(PieceFigures))
MUSPY_FIGURES: tuple[str, ...] = ("pitch_class_entropy", "scale_consistency", "groove_consistency", "polyphony",
                                  "polyphony_rate", "pitch_range", "n_pitches_used", "empty_beat_rate")


def quantise(events: NoteEvents, clock: Clock = Clock()) -> StepNotes:
    """Onsets and ends rounded to the clock's steps; every note lasts >= 1 step."""
    onset = np.round(np.asarray(events.onset_s, np.float64) / clock.step_s).astype(np.int64)
    end = np.round(np.asarray(events.end_s, np.float64) / clock.step_s).astype(np.int64)
    return StepNotes(onset_step=onset, end_step=np.maximum(end, onset + 1),
                     pitch=np.asarray(events.pitch, np.int64))


# ------------------------------------------------------------ pitch figures


def _scale_masks() -> np.ndarray:
    """[24, 12] bool: the 12 major then the 12 natural minor scales, by root."""
    major = np.array([1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1], bool)
    minor = np.array([1, 0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0], bool)
    return np.stack([np.roll(scale, root) for scale in (major, minor) for root in range(12)])


def pitch_class_entropy(pitch: np.ndarray) -> float:
    """Entropy (bits) of the pitch-class histogram; NaN when no note."""
    counts = np.bincount(np.asarray(pitch, np.int64) % 12, minlength=12)
    if counts.sum() < 1:
        return float("nan")
    prob = counts / counts.sum()
    terms = np.where(counts > 0, prob * np.log2(np.where(counts > 0, prob, 1.0)), 0.0)
    return float(-np.sum(terms))  # summed over all 12 classes, as muspy's nansum (same rounding)


def scale_consistency(pitch: np.ndarray) -> float:
    """Largest share of notes in one major/minor scale; NaN when no note."""
    counts = np.bincount(np.asarray(pitch, np.int64) % 12, minlength=12)
    if counts.sum() < 1:
        return float("nan")
    in_scale = _scale_masks().astype(np.int64) @ counts  # [24] notes in each scale
    return float(np.max(in_scale / counts.sum()))


def pitch_range(pitch: np.ndarray) -> float:
    """Highest minus lowest pitch; 0 when no note."""
    return float(np.ptp(pitch)) if np.size(pitch) else 0.0


def n_pitches_used(pitch: np.ndarray) -> float:
    return float(np.unique(pitch).size)


# ------------------------------------------------------------ time figures


def distinct_pitches_sounding(notes: StepNotes) -> np.ndarray:
    """[length] int: the number of distinct pitches sounding at each step
    (muspy's boolean piano roll summed over pitch), in O(n log n + length).

    Overlapping notes of one pitch sound as one: each pitch's notes are moved
    to their own stretch of one axis (pitch * (length + 1) + step), where one
    union of intervals merges the overlaps of every pitch at once."""
    length = notes.length
    if length == 0:
        return np.zeros(0, np.int64)
    offset = notes.pitch * (length + 1)
    order = np.argsort(notes.onset_step + offset, kind="stable")
    start = (notes.onset_step + offset)[order]
    reach = np.maximum.accumulate((notes.end_step + offset)[order])  # furthest end so far
    run_first = np.flatnonzero(np.append(True, start[1:] > reach[:-1]))  # a new run of sound
    run_last = np.append(run_first[1:] - 1, start.size - 1)
    run_pitch = start[run_first] // (length + 1)
    run_start = start[run_first] - run_pitch * (length + 1)
    run_end = reach[run_last] - run_pitch * (length + 1)
    change = np.bincount(run_start, minlength=length + 1) - np.bincount(run_end, minlength=length + 1)
    return np.cumsum(change)[:length]


def polyphony(notes: StepNotes) -> float:
    """Mean distinct pitches sounding over the steps where any sounds; NaN when none."""
    sounding = distinct_pitches_sounding(notes)
    steps_on = np.count_nonzero(sounding > 0)
    return float(sounding.sum() / steps_on) if steps_on >= 1 else float("nan")


def polyphony_rate(notes: StepNotes, threshold: int = POLYPHONY_THRESHOLD) -> float:
    """Share of steps with more than `threshold` pitches sounding; NaN when no step."""
    sounding = distinct_pitches_sounding(notes)
    return float(np.count_nonzero(sounding > threshold) / sounding.size) if sounding.size else float("nan")


def empty_beat_rate(notes: StepNotes, clock: Clock = Clock()) -> float:
    """Share of beats 0 .. length // steps_per_beat that no note touches; NaN when no note."""
    length = notes.length
    if length < 1:
        return float("nan")
    n_beats = length // clock.steps_per_beat + 1
    first = notes.onset_step // clock.steps_per_beat
    last = notes.end_step // clock.steps_per_beat  # inclusive, as muspy
    change = np.bincount(first, minlength=n_beats + 1) - np.bincount(last + 1, minlength=n_beats + 1)
    touched = np.count_nonzero(np.cumsum(change)[:n_beats] > 0)
    return float(1 - touched / n_beats)


def groove_consistency(notes: StepNotes, clock: Clock = Clock()) -> float:
    """1 - mean Hamming distance of neighbouring measures' onset vectors per
    step of a measure; NaN under two measures."""
    per_measure = clock.steps_per_measure
    n_measures = notes.length // per_measure + 1
    if n_measures < 2:
        return float("nan")
    onsets = np.zeros((n_measures, per_measure), bool)
    measure, position = np.divmod(notes.onset_step, per_measure)
    onsets[measure, position] = True
    hamming = np.count_nonzero(onsets[:-1] != onsets[1:])
    return float(1 - hamming / (per_measure * (n_measures - 1)))


# ------------------------------------------------------------ melody


def top_line(notes: StepNotes) -> np.ndarray:
    """The skyline's pitches in time order: at each onset step, the highest
    pitch sounding, kept when a note of that pitch starts there."""
    if notes.pitch.size == 0:
        return np.zeros(0, np.int64)
    onset_steps = np.unique(notes.onset_step)
    n_onsets = onset_steps.size
    highest_start = np.full(n_onsets, -1, np.int64)
    np.maximum.at(highest_start, np.searchsorted(onset_steps, notes.onset_step), notes.pitch)
    # which pitches sound at each onset: a note covers onsets [its own, the first at/after its end)
    first = np.searchsorted(onset_steps, notes.onset_step, side="left")
    past = np.searchsorted(onset_steps, notes.end_step, side="left")
    change = np.zeros((n_onsets + 1, 128), np.int32)
    np.add.at(change, (first, notes.pitch), 1)
    np.add.at(change, (past, notes.pitch), -1)
    sounding = np.cumsum(change[:n_onsets], axis=0) > 0  # [onsets, 128]
    highest_sounding = 127 - np.argmax(sounding[:, ::-1], axis=1)
    return highest_start[highest_start == highest_sounding]


def melody_intervals(notes: StepNotes) -> np.ndarray:
    """Semitone steps between consecutive top-line notes (unclipped)."""
    return np.diff(top_line(notes))


def interval_histogram(intervals: np.ndarray, max_interval: int = MAX_INTERVAL) -> np.ndarray:
    """[2 * max_interval + 1] counts of intervals clipped to +-max_interval
    (bin i holds interval i - max_interval)."""
    clipped = np.clip(np.asarray(intervals, np.int64), -max_interval, max_interval)
    return np.bincount(clipped + max_interval, minlength=2 * max_interval + 1)


def motif_recurrence(intervals: np.ndarray, motif_intervals: int = MOTIF_INTERVALS) -> float:
    """Share of the windows of `motif_intervals` consecutive intervals whose
    pattern occurs more than once; NaN when there is no window."""
    intervals = np.asarray(intervals, np.int64)
    if intervals.size < motif_intervals:
        return float("nan")
    windows = np.lib.stride_tricks.sliding_window_view(intervals, motif_intervals)
    _, inverse, counts = np.unique(windows, axis=0, return_inverse=True, return_counts=True)
    return float(np.mean(counts[inverse.reshape(-1)] > 1))


# ------------------------------------------------------------ rhythm and stuck notes


def longest_note_s(duration_s: np.ndarray) -> float:
    """The longest note's duration (seconds); NaN when no note."""
    return float(np.max(duration_s)) if np.size(duration_s) else float("nan")


def _on_grid(intervals: np.ndarray, step: np.ndarray, tolerance: float) -> np.ndarray:
    """[..., n] whether each interval is a whole multiple >= 1 of `step` (broadcast) within tolerance * step."""
    multiple = np.round(intervals / step)
    return (multiple >= 1) & (np.abs(intervals - multiple * step) <= tolerance * step)


def onset_intervals(onset_s: np.ndarray, options: GridOptions = GridOptions()) -> np.ndarray:
    """Seconds between distinct onsets; an onset within same_onset_s of the
    previous (sorted) onset is part of it."""
    onsets = np.sort(np.asarray(onset_s, np.float64).reshape(-1))
    if onsets.size == 0:
        return np.zeros(0)
    distinct = onsets[np.append(True, np.diff(onsets) >= options.same_onset_s)]
    return np.diff(distinct)


def opening_step_s(intervals: np.ndarray, options: GridOptions = GridOptions()) -> float:
    """The step that explains the opening's inter-onset intervals (see the
    module docstring); NaN when there is no interval."""
    opening = intervals[: options.opening_onsets - 1]
    if opening.size == 0:
        return float("nan")
    candidates = np.unique(np.append(opening, opening.min() / np.array([2.0, 3.0])))[::-1]  # largest first
    explained = np.mean(_on_grid(opening[None, :], candidates[:, None], options.tolerance), axis=1)
    good = np.flatnonzero(explained >= options.explain_share)
    return float(candidates[good[0]] if good.size else candidates[np.argmax(explained)])


def beat_grid_consistency(onset_s: np.ndarray, options: GridOptions = GridOptions()) -> float:
    """Share of inter-onset intervals on the opening's grid; NaN under 2 onsets."""
    intervals = onset_intervals(onset_s, options)
    if intervals.size == 0:
        return float("nan")
    grid_step = opening_step_s(intervals, options) / options.subdivision
    return float(np.mean(_on_grid(intervals, grid_step, options.tolerance)))


# ------------------------------------------------------------ one piece, many pieces


def piece_figures(events: NoteEvents, clock: Clock = Clock(), grid: GridOptions = GridOptions()) -> PieceFigures:
    """All figures of one piece."""
    notes = quantise(events, clock)
    consistency = scale_consistency(notes.pitch)
    return PieceFigures(
        pitch_class_entropy=pitch_class_entropy(notes.pitch),
        scale_consistency=consistency,
        out_of_scale_rate=1.0 - consistency,
        groove_consistency=groove_consistency(notes, clock),
        polyphony=polyphony(notes),
        polyphony_rate=polyphony_rate(notes),
        pitch_range=pitch_range(notes.pitch),
        n_pitches_used=n_pitches_used(notes.pitch),
        empty_beat_rate=empty_beat_rate(notes, clock),
        longest_note_s=longest_note_s(events.duration_s),
        motif_recurrence=motif_recurrence(melody_intervals(notes)),
        beat_grid_consistency=beat_grid_consistency(events.onset_s, grid),
    )


def figures_of_pieces(pieces: Sequence[NoteEvents], clock: Clock = Clock(),
                      grid: GridOptions = GridOptions()) -> dict[str, np.ndarray]:
    """Figure name -> float64 [pieces], one value per piece (NaN where undefined)."""
    rows = [dataclasses.astuple(piece_figures(events, clock, grid)) for events in pieces]
    table = np.array(rows, np.float64).reshape(len(rows), len(FIGURES))
    return {name: table[:, i] for i, name in enumerate(FIGURES)}


def melody_interval_histogram(pieces: Sequence[NoteEvents], clock: Clock = Clock(),
                              max_interval: int = MAX_INTERVAL) -> np.ndarray:
    """The pooled top-line interval histogram of a set of pieces (counts)."""
    counts = np.zeros(2 * max_interval + 1, np.int64)
    for events in pieces:
        counts += interval_histogram(melody_intervals(quantise(events, clock)), max_interval)
    return counts
