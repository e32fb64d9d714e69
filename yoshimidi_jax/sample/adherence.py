"""Adherence: the share of presses whose decoded notes satisfy the controls
they were given, scored on the notes (not the tokens) with the one definition
of a press (tokens/presses.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from yoshimidi_jax.midi import NoteEvents
from yoshimidi_jax.tokens.controls import Control
from yoshimidi_jax.tokens.presses import ANY_CHORD, ANY_INTERVAL, ANY_VELOCITY, attributes_of_notes, interval_bounds

ATTRIBUTES = ("interval", "chord", "velocity")


@dataclasses.dataclass(frozen=True)
class AdherenceCounts:
    hits: dict  # attribute (and "all") -> presses that satisfy it
    given: dict  # attribute (and "all") -> presses that were given it
    infeasible: int = 0  # intervals with no room on the keyboard (not in `given`)

    def __add__(self, other: "AdherenceCounts") -> "AdherenceCounts":
        return AdherenceCounts({k: self.hits[k] + other.hits[k] for k in self.hits},
                               {k: self.given[k] + other.given[k] for k in self.given},
                               self.infeasible + other.infeasible)

    @staticmethod
    def zero() -> "AdherenceCounts":
        keys = ATTRIBUTES + ("all",)
        return AdherenceCounts(dict.fromkeys(keys, 0), dict.fromkeys(keys, 0))

    def rates(self) -> dict:
        return {k: round(self.hits[k] / self.given[k], 4) if self.given[k] else None for k in self.hits}


def score(
    events: NoteEvents, controls: Sequence[Control], complete: bool = True, pitch_range: tuple[int, int] = (0, 127)
) -> AdherenceCounts:
    """The k-th press of `events` against the k-th control. complete=False: the
    last press may have been cut off by the end of sampling and is not scored.
    An interval that has no room in pitch_range from the previous press's
    reference note (asked to go down from the lowest key) is counted as
    infeasible, not scored."""
    attrs = attributes_of_notes(events.onset_s, events.pitch, events.velocity)
    n = min(len(attrs.onset_s) - (0 if complete else 1), len(controls))
    out = AdherenceCounts.zero()
    if n <= 0:
        return out
    want = np.array([[c.interval, c.chord, c.velocity] for c in controls[:n]]).reshape(n, 3)
    got = np.stack([attrs.interval[:n], attrs.chord[:n], attrs.velocity[:n]], axis=1)
    given = want != np.array([ANY_INTERVAL, ANY_CHORD, ANY_VELOCITY])
    prev = np.append(-1, attrs.reference_pitch[: n - 1])
    bounds = np.array([interval_bounds(int(c)) if c < ANY_INTERVAL else (-127, 127) for c in want[:, 0]])
    room = (prev + bounds[:, 1] >= pitch_range[0]) & (prev + bounds[:, 0] <= pitch_range[1])
    infeasible = given[:, 0] & (prev >= 0) & ~room
    given[:, 0] &= ~infeasible
    hit = (want == got) & given
    hits = {a: int(hit[:, i].sum()) for i, a in enumerate(ATTRIBUTES)}
    gives = {a: int(given[:, i].sum()) for i, a in enumerate(ATTRIBUTES)}
    scored = given.any(axis=1)
    hits["all"] = int((scored & (hit | ~given).all(axis=1)).sum())
    gives["all"] = int(scored.sum())
    return AdherenceCounts(hits, gives, int(infeasible.sum()))
