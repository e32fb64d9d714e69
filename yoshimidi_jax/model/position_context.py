"""Where each position stands in its piece, as model inputs (jnp, vectorised).

After each token: the CONTROL in force for the open or pending press (-1:
none since the last TIME), how many NOTE_ONs the open press has struck, the
reference (lowest, first) pitch of the latest press, the VELOCITY bin in
force, the pitches sounding (so the model knows what it has to end, even
when the notes were struck before its window began) and how long each has
sounded (seconds since its NOTE_ON: a window holds no clock, and a note
struck before the window began has no onset in it). These are the values
sample/tracker.Track keeps step by step; here they are computed for a whole
window at once (training, prefill), or for a chunk of new tokens continuing
from a Track's values (decoding). tests/model check the two agree.

The model uses them to make its controls easy to learn:
- the CONTROL position sees the previous press's reference pitch (the note
  the interval is measured from) instead of searching its context for it;
- its output gets learned biases indexed by the control's attributes: NOTE_ON
  logits by (interval class, pitch - reference) for the press's first note,
  the next token's logits by (velocity bucket asked, bucket in force), and "one more note" vs TIME by
  (chord class, notes struck so far). They are zero-initialised and learned
  from the data like every other parameter; sampling stays free.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from yoshimidi_jax.tokens import Vocab
from yoshimidi_jax.tokens.sounding import step_seconds
from yoshimidi_jax.tokens.vocab import NUM_PITCHES


# a sounding note's age (seconds since its NOTE_ON), as the model reads it: one
# of these buckets (log-spaced: a tenth of a second matters at the start of a
# note, a second at its long end), each edge times the model's age_edges_scale.
# The musical lengths here (a sixteenth at 120 bpm is 0.125 s) are where real
# ages are: 63% of the training data's ages lie within 1 ms of one. At scale 1
# those lie on an edge, where the data's exact sums fall above it and a
# sampled TIME (never exactly 0.125) falls on either side, so the model read
# another bucket at sampling than it learned; at 0.9 each such length sits
# 10% inside its bucket.
AGE_EDGES_S = (0.125, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0)
NUM_AGE_BUCKETS = len(AGE_EDGES_S) + 1


def age_edges(scale: float = 1.0) -> tuple[float, ...]:
    """The bucket edges (seconds) of a model with age_edges_scale `scale`."""
    return tuple(float(e * scale) for e in AGE_EDGES_S)


def age_bucket(age_s: jax.Array, scale: float = 1.0) -> jax.Array:
    """Seconds -> int32 bucket in [0, NUM_AGE_BUCKETS) (the edges count from the bucket above)."""
    return sum((age_s >= e).astype(jnp.int32) for e in age_edges(scale))


class PositionContext(NamedTuple):
    control: jax.Array  # [B, L] int32 CONTROL id in force after the token, -1
    press_len: jax.Array  # [B, L] int32 NOTE_ONs of the open press after the token
    ref: jax.Array  # [B, L] int32 reference pitch of the latest press after the token, -1
    vel_bin: jax.Array  # [B, L] int32 VELOCITY bin in force after the token, -1
    sounding: jax.Array  # [B, L, 128] bool: pitches sounding after the token (struck, not yet ended)
    age: jax.Array  # [B, L, 128] float32: seconds since each sounding pitch's NOTE_ON (0: not sounding)


def _cummax_index(idx: jax.Array) -> jax.Array:
    """lax.cummax over axis 1 of int32 indices (-1 .. < 2**24), taken in
    float32, where each is exact: the same int32 result, and a graph that
    exports to ONNX (an int32 cummax lowers to an int32 MaxPool, which
    onnxruntime has no kernel for; experiments/export.py)."""
    return jax.lax.cummax(idx.astype(jnp.float32), axis=1).astype(jnp.int32)


def _last_index(flag: jax.Array) -> jax.Array:
    idx = jnp.broadcast_to(jnp.arange(flag.shape[1]), flag.shape)
    return _cummax_index(jnp.where(flag, idx, -1))


def piece_start(batch: int) -> PositionContext:
    """The values before a piece's first token, [B] each."""
    minus = jnp.full((batch,), -1, jnp.int32)
    return PositionContext(minus, jnp.zeros((batch,), jnp.int32), minus, minus, jnp.zeros((batch, NUM_PITCHES), bool),
                           jnp.zeros((batch, NUM_PITCHES), jnp.float32))


@jax.named_scope("press_context")
def position_context(
    inputs: jax.Array, times: jax.Array, segment_ids: jax.Array | None = None, start: PositionContext | None = None,
    vocab: Vocab = Vocab()
) -> PositionContext:
    """inputs, times [B, L] -> PositionContext [B, L] each. start: the values before the
    first token, [B] each (a Track's: Track.position_start; None: the start of a
    piece). segment_ids: packed pieces; a new piece starts afresh."""
    start = piece_start(inputs.shape[0]) if start is None else start
    s_control, s_len, s_ref, s_vel = (jnp.asarray(x, jnp.int32)[:, None] for x in start[:4])
    is_on = vocab.is_note_on(inputs)
    boundary = vocab.is_time(inputs)
    fresh = jnp.zeros_like(boundary)  # a new piece: nothing carries over from `start`
    if segment_ids is not None:
        fresh = jnp.concatenate([jnp.zeros_like(boundary[:, :1]), segment_ids[:, 1:] != segment_ids[:, :-1]], 1)
        boundary |= fresh
    last_boundary = _last_index(boundary)
    carried = last_boundary < 0  # no boundary yet in this chunk: `start` still holds
    last_ctrl = _last_index(vocab.is_control(inputs))
    control = jnp.where(last_ctrl > last_boundary, jnp.take_along_axis(inputs, jnp.maximum(last_ctrl, 0), axis=1),
                        jnp.where(carried & (last_ctrl < 0), s_control, -1))
    ons = jnp.cumsum(is_on, axis=1)
    ons_at_boundary = jnp.take_along_axis(ons, jnp.maximum(last_boundary, 0), axis=1)
    press_len = jnp.where(carried, ons + s_len, ons - ons_at_boundary)
    first_on = is_on & (press_len == 1) & ~(carried & (s_len > 0))
    last_first = _last_index(first_on)
    last_fresh = _last_index(fresh)
    ref = jnp.where(last_first >= 0, jnp.take_along_axis(inputs, jnp.maximum(last_first, 0), axis=1) - vocab.note_on,
                    jnp.where(last_fresh < 0, s_ref, -1))
    ref = jnp.where((last_fresh > last_first), -1, ref)  # the latest press was in an earlier piece
    last_vel = _last_index(vocab.is_velocity(inputs))
    vel_bin = jnp.where(last_vel >= 0, jnp.take_along_axis(inputs, jnp.maximum(last_vel, 0), axis=1) - vocab.velocity,
                        jnp.where(last_fresh < 0, s_vel, -1))
    vel_bin = jnp.where(last_fresh > last_vel, -1, vel_bin)
    sounding, age = _sounding(inputs, times, last_fresh, jnp.asarray(start.sounding, bool),
                              jnp.asarray(start.age, jnp.float32), vocab, None if segment_ids is None else fresh)
    return PositionContext(control.astype(jnp.int32), press_len.astype(jnp.int32), ref.astype(jnp.int32),
                           vel_bin.astype(jnp.int32), sounding, age)


def _clock(seconds: jax.Array, fresh: jax.Array | None) -> jax.Array:
    """[B, L] seconds each token moves the clock -> the clock after each token:
    from the chunk's start, or (fresh: where packed pieces start) from its
    piece's start, summed within the piece alone (another piece's times do
    not even round it)."""
    if fresh is None:
        return jnp.cumsum(seconds, axis=1)

    def combine(a, b):
        return a[0] | b[0], jnp.where(b[0], b[1], a[1] + b[1])

    return jax.lax.associative_scan(combine, (fresh, seconds), axis=1)[1]


def _sounding(inputs: jax.Array, times: jax.Array, last_fresh: jax.Array, start: jax.Array, start_age: jax.Array,
              vocab: Vocab, fresh: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """([B, L, 128] bool, [B, L, 128] float32): a pitch sounds after a token
    when its latest NOTE_ON or NOTE_OFF in the piece so far is a NOTE_ON; with
    none yet, as it did at the chunk's start (`start` [B, 128], until a new
    piece begins). Its age: the clock since that NOTE_ON, or since the chunk's
    start plus `start_age` for a carried one."""
    pitches = jnp.arange(NUM_PITCHES)
    idx = jnp.arange(inputs.shape[1])[None, :, None]
    on = inputs[..., None] == vocab.note_on + pitches
    off = inputs[..., None] == vocab.note_off + pitches
    last_on = _cummax_index(jnp.where(on, idx, -1))
    last_off = _cummax_index(jnp.where(off, idx, -1))
    latest = jnp.maximum(last_on, last_off)
    in_piece = (latest >= 0) & (latest >= last_fresh[..., None])  # an event of this pitch in the current piece
    carried = (last_fresh < 0)[..., None] & start[:, None, :]
    # (a select of bools written as logic: onnxruntime has no Where kernel for bool)
    sounding = (in_piece & (last_on > last_off)) | (~in_piece & carried)
    clock = _clock(step_seconds(inputs, times, vocab, jnp), fresh)  # [B, L] after each token, from the chunk's start
    onset_clock = jnp.take_along_axis(clock, jnp.maximum(last_on, 0).reshape(clock.shape[0], -1), axis=1)
    age = jnp.where(last_on >= 0, clock[..., None] - onset_clock.reshape(last_on.shape),
                    clock[..., None] + start_age[:, None, :])
    return sounding, jnp.where(sounding, age, 0.0)
