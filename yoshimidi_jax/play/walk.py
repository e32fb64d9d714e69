"""Player-like press scripts: a seeded random walk of presses a person could make
(runs up and down, repeated notes, leaps, chords of 1-4, soft and hard
phrases, a steady-ish rhythm). Used by the adherence benchmark, the main job's
controlled piece and the latency benchmark."""

from __future__ import annotations

import dataclasses

import numpy as np

from yoshimidi_jax.play.press import press_control
from yoshimidi_jax.tokens.controls import Control
from yoshimidi_jax.tokens.presses import ANY_INTERVAL, attributes_of_press


@dataclasses.dataclass(frozen=True)
class ScriptedPress:
    dt_s: float  # seconds since the previous press
    interval: int  # class, ANY_INTERVAL for the first
    num_keys: int  # 1..4
    velocity: int  # MIDI velocity 1..127
    keys: tuple[int, ...]  # the keys the player pressed (their lowest is the reference)

    @property
    def control(self) -> Control:
        return press_control(self.interval, self.num_keys, self.velocity)


def player_walk(num_presses: int, seed: int, low: int = 48, high: int = 84) -> list[ScriptedPress]:
    """Keys move in phrases of 3..8 presses: a run up or down by steps or skips,
    a repeated note, or leaps; each phrase has one dynamic (soft/medium/hard)
    and one note value. The attributes come from the keys through
    presses.attributes_of_press, as the instrument computes them."""
    rng = np.random.default_rng(seed)
    out: list[ScriptedPress] = []
    key, prev_ref = int(rng.integers(low + 6, high - 6)), None
    while len(out) < num_presses:
        kind = rng.choice(["run_up", "run_down", "repeat", "leaps", "chords"], p=[0.28, 0.28, 0.12, 0.16, 0.16])
        velocity = int(rng.choice([int(rng.integers(25, 60)), int(rng.integers(68, 92)), int(rng.integers(100, 124))]))
        beat = float(rng.choice([0.125, 0.25, 0.375, 0.5]))
        for _ in range(int(rng.integers(3, 9))):
            if kind == "run_up":
                step = int(rng.choice([1, 2, 2, 3, 4]))
            elif kind == "run_down":
                step = -int(rng.choice([1, 2, 2, 3, 4]))
            elif kind == "repeat":
                step = 0
            else:
                step = int(rng.choice([-12, -7, -5, 5, 7, 12]))
            if not low <= key + step <= high:
                step = -step  # turn around at the ends of the keyboard
            key += step
            num_keys = int(rng.integers(2, 5)) if kind == "chords" else (2 if rng.random() < 0.08 else 1)
            keys = tuple(key + 3 * i + int(rng.integers(0, 2)) for i in range(num_keys))
            interval, _, _ = attributes_of_press(prev_ref, keys, velocity)
            dt = 0.0 if not out else beat * float(rng.choice([1, 1, 1, 2]))
            out.append(ScriptedPress(dt, interval, num_keys, velocity, keys))
            prev_ref = min(keys)
            if len(out) == num_presses:
                break
    assert out[0].interval == ANY_INTERVAL
    return out
