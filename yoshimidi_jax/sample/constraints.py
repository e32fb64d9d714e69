"""The per-step constraint mask of constrained decoding, and a checker.

Grammar (always; it is the grammar of the training data):
- never PAD, BOS, SEP; EOS only if allowed (it ends the piece); after EOS only PAD;
- NOTE_ON(p) only for p in [pitch_lo, pitch_hi] and p not sounding, and only
  once a VELOCITY is in force (the first note never loses its velocity);
- NOTE_OFF(p) only for p sounding;
- a VELOCITY is followed by a NOTE_ON;
- a press (NOTE_ONs with no TIME between) goes low to high: each NOTE_ON is
  above the previous one; no NOTE_OFF or CONTROL inside a press; a new press
  starts more than PRESS_WINDOW_S after the previous one began (closer onsets
  would be one press);
- after a CONTROL, its press follows: NOTE_OFFs of that moment, then its
  VELOCITY or NOTE_ON (no TIME, CONTROL or EOS before the press);
- CONTROL only if allow_controls (the model's own "a note starts here, of
  this kind"); the sampler may always *insert* given controls.

Strict mode adds, for the press whose CONTROL is in force (and lets a
sounding pitch be struck again, so a held note never makes a control
impossible):
- velocity: VELOCITY bins only inside the bucket, and a NOTE_ON only once the
  velocity in force is inside it;
- interval: the press's first NOTE_ON only at pitches in the interval class
  from the previous press's reference note;
- chord of n: exactly n NOTE_ONs, with no TIME (nor anything else, a
  VELOCITY included) between.
A row whose mask would be empty (e.g. an interval that leaves the pitch range)
falls back to the grammar alone for that step.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from yoshimidi_jax.sample.tracker import Track, advance, init_track
from yoshimidi_jax.tokens import EOS, PAD, TIME, Vocab
from yoshimidi_jax.tokens.controls import control_attributes
from yoshimidi_jax.tokens.presses import (
    ANY_CHORD, ANY_INTERVAL, ANY_VELOCITY, PRESS_WINDOW_S, VELOCITY_BUCKET_RANGE, interval_bounds,
)
from yoshimidi_jax.tokens.vocab import NUM_INTERVAL_CLASSES, NUM_PITCHES


@dataclasses.dataclass(frozen=True)
class Constraints:
    pitch_lo: int = 0
    pitch_hi: int = 127
    allow_controls: bool = True
    allow_eos: bool = True
    strict: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.pitch_lo <= self.pitch_hi <= 127:
            raise ValueError(f"bad pitch range [{self.pitch_lo}, {self.pitch_hi}]: need 0 <= lo <= hi <= 127")


def bucket_bins(vocab: Vocab) -> np.ndarray:
    """[4, num_velocity_bins] bool: bins whose middle velocity lies in each bucket (ANY: all)."""
    mids = vocab.velocity_of_bin(np.arange(vocab.num_velocity_bins))
    rows = [(mids >= lo) & (mids <= hi) for lo, hi in VELOCITY_BUCKET_RANGE]
    return np.stack(rows + [np.ones_like(rows[0])])


def _interval_pitches() -> np.ndarray:
    """[10, 255] bool: for each class (ANY last), which offsets -127..127 it allows."""
    offsets = np.arange(-127, 128)
    rows = []
    for cls in range(NUM_INTERVAL_CLASSES):
        lo, hi = interval_bounds(cls)
        rows.append((offsets >= lo) & (offsets <= hi))
    return np.stack(rows + [np.ones_like(rows[0])])


def allowed_tokens(track: Track, constraints: Constraints = Constraints(), vocab: Vocab = Vocab()) -> jax.Array:
    """-> allowed [B, V] bool for the next token."""
    b = track.done.shape[0]
    pitches = jnp.arange(NUM_PITCHES)
    in_range = (pitches >= constraints.pitch_lo) & (pitches <= constraints.pitch_hi)
    press_open = track.press_len > 0
    can_on = in_range[None] & ~track.sounding & (track.vel_bin >= 0)[:, None]
    can_start = track.since_press > PRESS_WINDOW_S
    can_on &= jnp.where(press_open[:, None], pitches[None] > track.last_on[:, None],
                        (can_start | track.pending)[:, None])
    can_off = track.sounding & (~press_open & ~track.after_vel)[:, None]  # after a CONTROL too
    free = ~track.after_vel & ~track.pending  # not in the middle of starting a note
    # a VELOCITY starts a press unless one is open or announced by its CONTROL
    can_vel = jnp.broadcast_to((~track.after_vel & (press_open | track.pending | can_start))[:, None],
                               (b, vocab.num_velocity_bins))
    can_time = free
    can_eos = free & constraints.allow_eos
    can_ctrl = free & ~press_open & can_start & constraints.allow_controls

    if constraints.strict:
        interval, chord, velocity = control_attributes(jnp.maximum(track.control, vocab.control), vocab)
        has = track.control >= 0
        interval = jnp.where(has, interval, ANY_INTERVAL)
        chord = jnp.where(has, chord, ANY_CHORD)
        velocity = jnp.where(has, velocity, ANY_VELOCITY)
        bins = jnp.asarray(bucket_bins(vocab))[velocity]  # [B, bins]
        vel_ok = jnp.take_along_axis(bins, jnp.maximum(track.vel_bin, 0)[:, None], axis=1)[:, 0] & (track.vel_bin >= 0)
        strict_vel = can_vel & bins
        # a pitch still sounding may be struck again (decoding ends the old note
        # there), so that a sustained note never makes a control impossible
        restrike = in_range[None] & (track.vel_bin >= 0)[:, None] & jnp.where(
            press_open[:, None], pitches[None] > track.last_on[:, None], (can_start | track.pending)[:, None])
        strict_on = restrike & vel_ok[:, None]
        # interval: the first NOTE_ON of the press, from the previous reference
        first = ~press_open & (track.ref >= 0) & (interval != ANY_INTERVAL)
        offsets = jnp.clip(pitches[None] - track.ref[:, None] + 127, 0, 254)
        in_class = jnp.take_along_axis(jnp.asarray(_interval_pitches())[interval], offsets, axis=1)
        strict_on = jnp.where(first[:, None], strict_on & in_class, strict_on)
        # chord of n: n NOTE_ONs, nothing between them, none after
        n = jnp.where(chord == ANY_CHORD, 0, chord + 1)
        counting = (n > 0) & press_open
        short = counting & (track.press_len < n)
        full = counting & (track.press_len >= n)
        strict_on = jnp.where(full[:, None], False, strict_on)
        # leave room above for the notes still to come (a press goes low to high)
        to_come = jnp.maximum(n - 1 - track.press_len, 0)
        strict_on &= pitches[None] <= constraints.pitch_hi - to_come[:, None]
        strict_off = can_off & ~short[:, None]
        strict_vel = jnp.where(counting[:, None], False, strict_vel)
        strict_time, strict_eos, strict_ctrl = can_time & ~short, can_eos & ~short, can_ctrl & ~short
        strict_mask = _assemble(vocab, b, strict_time, strict_eos, strict_on, strict_off, strict_vel, strict_ctrl)
        grammar = _assemble(vocab, b, can_time, can_eos, can_on, can_off, can_vel, can_ctrl)
        allowed = jnp.where(strict_mask.any(axis=1, keepdims=True), strict_mask, grammar)
    else:
        allowed = _assemble(vocab, b, can_time, can_eos, can_on, can_off, can_vel, can_ctrl)
    # never an empty row: time is always a way on (TIME, or one step of TIME_SHIFT)
    on = vocab.time_shift if vocab.time_shifts else TIME
    allowed = allowed.at[:, on].set(allowed[:, on] | ~allowed.any(axis=1))
    pad_only = jnp.zeros((b, vocab.size), bool).at[:, PAD].set(True)
    return jnp.where(track.done[:, None], pad_only, allowed)


def _assemble(vocab: Vocab, b: int, time, eos, on, off, vel, ctrl) -> jax.Array:
    """[B, V] from each family's rows; `time` allows TIME, or the TIME_SHIFT
    ids instead where the vocabulary writes time with them."""
    specials = jnp.zeros((b, vocab.note_on), bool).at[:, TIME].set(time & (vocab.time_shifts == 0)).at[:, EOS].set(eos)
    ctrl_block = jnp.broadcast_to(ctrl[:, None], (b, vocab.time_shift - vocab.control))
    shift_block = jnp.broadcast_to(time[:, None], (b, vocab.time_shifts))
    return jnp.concatenate([specials, on, off, vel, ctrl_block, shift_block], axis=1)


@functools.lru_cache(maxsize=8)
def _make_replay(constraints: Constraints, vocab: Vocab):
    @jax.jit
    def replay(track: Track, ids: jax.Array, times: jax.Array, forced: jax.Array) -> jax.Array:
        def body(t, x):
            tok, tval, f = x
            ok = jnp.take_along_axis(allowed_tokens(t, constraints, vocab), tok[:, None], axis=1)[:, 0]
            return advance(t, tok, tval, vocab), ok | f

        return jax.lax.scan(body, track, (ids.T, times.T, forced.T))[1].T

    return replay


def violations(
    ids: np.ndarray,
    times: np.ndarray,
    forced: np.ndarray | None = None,
    track: Track | None = None,
    constraints: Constraints = Constraints(),
    vocab: Vocab = Vocab(),
) -> list[str]:
    """Replays sampled ids [N] with their time values [N] (forced: inserted
    tokens, exempt) from a track (a fresh one by default) and lists every token
    the mask did not allow."""
    ids = np.asarray(ids, np.int32)[None]
    times = np.asarray(times, np.float32)[None]
    forced = np.zeros(ids.shape, bool) if forced is None else np.asarray(forced, bool)[None]
    ok = np.asarray(_make_replay(constraints, vocab)(init_track(1) if track is None else track, ids, times, forced))[0]
    return [f"{i}: {vocab.describe(int(ids[0, i]))} not allowed here" for i in np.flatnonzero(~ok)]
