"""What decoding needs to know about the tokens so far: one home for it.

`Track` is a pytree of small arrays, one row per batch element; `advance`
updates it with one token per row (jnp, inside jit and scan); `track_tokens`
runs it over a whole prompt. The sampler's constraint mask, the instrument's
presses and the grammar checker all read this one state.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from yoshimidi_jax.model.position_context import PositionContext
from yoshimidi_jax.tokens import EOS, Vocab
from yoshimidi_jax.tokens.vocab import NUM_PITCHES


class Track(NamedTuple):
    sounding: jax.Array  # [B, 128] bool: pitches struck and not yet ended
    done: jax.Array  # [B] bool: EOS seen
    vel_bin: jax.Array  # [B] int32: the VELOCITY bin in force, -1 before the first
    after_vel: jax.Array  # [B] bool: the last token was a VELOCITY (its NOTE_ON must follow)
    press_len: jax.Array  # [B] int32: NOTE_ONs of the open press (0: none open; TIME closes it)
    last_on: jax.Array  # [B] int32: pitch of the open press's last NOTE_ON, -1
    ref: jax.Array  # [B] int32: reference (lowest, first) pitch of the latest press, -1
    prev_ref: jax.Array  # [B] int32: reference pitch of the press before it, -1
    control: jax.Array  # [B] int32: the CONTROL id of the pending/open press, -1
    pending: jax.Array  # [B] bool: a CONTROL came; its press's first NOTE_ON has not
    since_press: jax.Array  # [B] float32: seconds since the latest press began (large before any)
    age: jax.Array  # [B, 128] float32: seconds since each pitch's latest NOTE_ON (on past its NOTE_OFF)

    @property
    def position_start(self) -> PositionContext:
        """Where the next token's position stands, as the model reads it
        (model/position_context.py computes the same for a whole window)."""
        return PositionContext(self.control, self.press_len, self.ref, self.vel_bin, self.sounding,
                               jnp.where(self.sounding, self.age, 0.0))


def init_track(batch: int) -> Track:
    minus = jnp.full((batch,), -1, jnp.int32)
    false = jnp.zeros((batch,), bool)
    return Track(jnp.zeros((batch, NUM_PITCHES), bool), false, minus, false, jnp.zeros((batch,), jnp.int32),
                 minus, minus, minus, minus, false, jnp.full((batch,), 1e6, jnp.float32),
                 jnp.zeros((batch, NUM_PITCHES), jnp.float32))


def advance(track: Track, tok: jax.Array, tval: jax.Array, vocab: Vocab = Vocab()) -> Track:
    """One token per row [B] and its time value [B] (seconds at TIME) -> the updated track."""
    tok = tok.astype(jnp.int32)
    pitches = jnp.arange(NUM_PITCHES)
    is_on, is_off = vocab.is_note_on(tok), vocab.is_note_off(tok)
    is_vel, is_ctrl = vocab.is_velocity(tok), vocab.is_control(tok)
    is_time = vocab.is_time(tok)
    pitch_on = jnp.where(is_on, tok - vocab.note_on, -1)
    pitch_off = jnp.where(is_off, tok - vocab.note_off, -1)
    sounding = (track.sounding | (pitches == pitch_on[:, None])) & ~(pitches == pitch_off[:, None])
    new_press = is_on & (track.press_len == 0)
    press_len = jnp.where(is_time, 0, track.press_len + is_on)
    return Track(
        sounding=sounding,
        done=track.done | (tok == EOS),
        vel_bin=jnp.where(is_vel, tok - vocab.velocity, track.vel_bin),
        after_vel=is_vel,
        press_len=press_len,
        last_on=jnp.where(is_time, -1, jnp.where(is_on, pitch_on, track.last_on)),
        ref=jnp.where(new_press, pitch_on, track.ref),
        prev_ref=jnp.where(new_press, track.ref, track.prev_ref),
        control=jnp.where(is_ctrl, tok, jnp.where(is_time, -1, track.control)),
        pending=jnp.where(is_ctrl, True, track.pending & ~is_on),
        since_press=jnp.where(new_press, 0.0, track.since_press + jnp.where(is_time, tval, 0.0)),
        age=jnp.where(pitches == pitch_on[:, None], 0.0, track.age + jnp.where(is_time, tval, 0.0)[:, None]),
    )


@functools.partial(jax.jit, static_argnums=(3,))
def _scan_tokens(track: Track, ids: jax.Array, times: jax.Array, vocab: Vocab) -> Track:
    def body(t, x):
        return advance(t, *x, vocab), None

    return jax.lax.scan(body, track, (ids.T, times.T))[0]


def track_tokens(ids: np.ndarray, times: np.ndarray, track: Track | None = None, vocab: Vocab = Vocab()) -> Track:
    """ids, times [B, N] -> the track after them (from `track`, or a fresh one)."""
    ids = jnp.asarray(np.asarray(ids, np.int32))
    return _scan_tokens(init_track(ids.shape[0]) if track is None else track, ids, jnp.asarray(times, jnp.float32),
                        vocab)
