"""Velocity augmentation: dynamics the model can learn from a corpus that has
almost none (the music21 corpus is 88% "medium").

Each piece gets, from a seeded generator, a gain and an offset (the whole
piece played softer or harder) and a slow swell (crescendo and diminuendo
phrases, a sine over onset time). Notes of one press share their onset and so
move together. It works on note events, before control annotation, so the
controls are computed from the augmented velocities and stay consistent.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from yoshimidi_jax.midi.events import NoteEvents


@dataclasses.dataclass(frozen=True)
class VelocityAugment:
    gain: tuple[float, float] = (0.6, 1.4)  # multiplies the velocity
    offset: tuple[float, float] = (-35.0, 35.0)  # then added
    swell_amplitude: tuple[float, float] = (0.0, 30.0)  # velocity units
    swell_period_s: tuple[float, float] = (3.0, 16.0)


def augment_velocity(events: NoteEvents, rng: np.random.Generator, spec: VelocityAugment = VelocityAugment()) -> NoteEvents:
    """New velocities in 1..127; everything else unchanged."""
    gain = rng.uniform(*spec.gain)
    offset = rng.uniform(*spec.offset)
    amplitude = rng.uniform(*spec.swell_amplitude)
    period = rng.uniform(*spec.swell_period_s)
    phase = rng.uniform(0.0, 2 * np.pi)
    swell = amplitude * np.sin(2 * np.pi * events.onset_s / period + phase)
    velocity = np.asarray(events.velocity, np.float64) * gain + offset + swell
    return dataclasses.replace(events, velocity=np.clip(np.round(velocity), 1, 127).astype(np.int16))
