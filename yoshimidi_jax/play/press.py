"""One key press: what a player asks (Press, PlaySettings), what the model
answers (PressNotes), the tokens a press and a release are written as, and the
jitted row function that plays one press on a session's decode state.

A press is

    TIME(seconds since the previous event)  CONTROL  [VELOCITY]  NOTE_ON x num_keys
    \\______________ forced, fed in one decode call ______/     \\__ sampled __/

so it costs 1 + num_keys decode steps, in one jitted call (the server's
BatchPlayer answers before stepping the last NOTE_ON, which goes first into
the session's next call: 1 + num_keys - 1 before the answer). A press may grow
key by key (zero-wait keys): its first key is played at once as a press that
`grows` (its CONTROL asks chord ANY, the value the training's attribute
dropout taught, since how many keys will come is not known yet), and each
later key *joins* it: [VELOCITY if its bin changes] NOTE_ON, one more note of
the same open press with no TIME between, as chords are written in the data
(join_tokens; Player.join, play/batch.py's JoinJob). A release is
TIME NOTE_OFF... of the notes a press started. Every value is checked where
it enters (Press, PlaySettings): an error names the field, the value and the
allowed range.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from yoshimidi_jax.model import Transformer
from yoshimidi_jax.sample.constraints import Constraints, allowed_tokens
from yoshimidi_jax.sample.sampler import DecodeState, feed, sample_token
from yoshimidi_jax.tokens import TIME
from yoshimidi_jax.tokens.controls import Control, ControlError
from yoshimidi_jax.tokens.presses import ANY_CHORD, ANY_INTERVAL, chord_class, velocity_bucket
from yoshimidi_jax.tokens.vocab import NUM_CHORD_SIZES

MAX_NOTES = NUM_CHORD_SIZES  # notes one press can ask for (a chord of 5+ is 5)


def check_number(name: str, value, lo, hi, integer: bool) -> None:
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kinds) or not np.isfinite(value):
        raise ControlError(f"{name}={value!r}: expected {'an integer' if integer else 'a number'} in [{lo}, {hi}]")
    if not lo <= value <= hi:
        raise ControlError(f"{name}={value!r} is out of range [{lo}, {hi}]")


@dataclasses.dataclass(frozen=True)
class Press:
    """One key press as the player made it."""

    dt_s: float  # seconds since the previous press or release (>= 0)
    velocity: int  # MIDI velocity 1..127: the press's dynamics, played as given
    num_keys: int = 1  # keys struck together: the model plays that many notes
    interval: int = ANY_INTERVAL  # class 0..8 from the previous press, or 9 (any)
    # more keys may join this press (Player.join, JoinJob): how many is not known yet, so its CONTROL
    # asks chord ANY (the attribute-dropout value the model was trained with) instead of num_keys
    grows: bool = False

    def __post_init__(self) -> None:
        check_number("dt_s", self.dt_s, 0.0, 3600.0, integer=False)
        check_number("velocity", self.velocity, 1, 127, integer=True)
        check_number("num_keys", self.num_keys, 1, MAX_NOTES, integer=True)
        check_number("interval", self.interval, 0, ANY_INTERVAL, integer=True)
        if not isinstance(self.grows, bool):
            raise ControlError(f"grows={self.grows!r}: expected true or false")

    @property
    def control(self) -> Control:
        return press_control(self.interval, self.num_keys, self.velocity, self.grows)


def press_control(interval: int, num_keys: int, velocity: int, grows: bool = False) -> Control:
    """The CONTROL a press asks for: its interval class, the chord class of its
    number of keys (ANY for a press that grows: its size is not known yet),
    the bucket of its velocity."""
    chord = ANY_CHORD if grows else int(chord_class(num_keys))
    return Control(int(interval), chord, int(velocity_bucket(velocity)))


@dataclasses.dataclass(frozen=True)
class PlaySettings:
    temperature: float = 1.0
    top_p: float = 0.95
    strict: bool = False  # mask pitches so that the interval always holds
    pitch_lo: int = 21  # the piano's range
    pitch_hi: int = 108

    def __post_init__(self) -> None:
        check_number("temperature", self.temperature, 0.0, 10.0, integer=False)
        check_number("top_p", self.top_p, 0.0, 1.0, integer=False)
        check_number("pitch_lo", self.pitch_lo, 0, 127, integer=True)
        check_number("pitch_hi", self.pitch_hi, self.pitch_lo, 127, integer=True)
        if not isinstance(self.strict, bool):
            raise ControlError(f"strict={self.strict!r}: expected true or false")

    @property
    def constraints(self) -> Constraints:
        return Constraints(self.pitch_lo, self.pitch_hi, allow_controls=False, allow_eos=False, strict=self.strict)


@dataclasses.dataclass(frozen=True)
class PressNotes:
    pitches: np.ndarray  # [num_keys] int, low to high
    velocity: int
    control: Control  # the CONTROL of the press the notes belong to
    joined: bool = False  # the notes joined the open press (no TIME, no CONTROL); False: a press of their own


def press_tokens(press: Press, vel_bin_in_force: int, model: Transformer,
                 ending=()) -> tuple[np.ndarray, np.ndarray, int]:
    """The forced tokens of a press, as the data writes them (in the model's
    vocabulary, dt clipped to its time codec's range):
    TIME(dt) CONTROL [NOTE_OFF of `ending`] [VELOCITY if its bin changes]
    -> (ids, times, the VELOCITY bin in force after them)."""
    vocab, codec = model.vocab, model.codec
    vel_bin = int(vocab.velocity_bin(press.velocity))
    ids = [TIME, press.control.id(vocab)] + [vocab.note_off + int(p) for p in sorted(ending)]
    if vel_bin != vel_bin_in_force:
        ids.append(vocab.velocity + vel_bin)
    times = np.zeros(len(ids), np.float32)
    times[0] = float(np.clip(press.dt_s, codec.min_s, codec.max_s))
    return np.array(ids, np.int32), times, vel_bin


def join_tokens(velocity: int, vel_bin_in_force: int, model: Transformer) -> tuple[np.ndarray, np.ndarray, int]:
    """The forced tokens of keys joining the open press: [VELOCITY if its bin
    changes] (nothing else: no TIME, no CONTROL inside a press) -> (ids,
    times, the VELOCITY bin in force after them). Its NOTE_ONs are sampled
    as a press's are (make_press_row), above the press's last note."""
    vel_bin = int(model.vocab.velocity_bin(velocity))
    ids = [model.vocab.velocity + vel_bin] if vel_bin != vel_bin_in_force else []
    return np.array(ids, np.int32), np.zeros(len(ids), np.float32), vel_bin


def release_tokens(dt_s: float, ending, model: Transformer) -> tuple[np.ndarray, np.ndarray]:
    """TIME(dt) NOTE_OFF... for the pitches ending (in the model's vocabulary)."""
    vocab, codec = model.vocab, model.codec
    ids = np.array([TIME] + [vocab.note_off + int(p) for p in sorted(ending)], np.int32)
    times = np.zeros(len(ids), np.float32)
    times[0] = float(np.clip(dt_s, codec.min_s, codec.max_s))
    return ids, times


def make_press_row(model: Transformer, constraints: Constraints, feed_last: bool = True):
    """The press of one session (a DecodeState of batch 1), as a pure function

        row(params, state, ids [1, F], times [1, F], n_forced, num_keys, max_keys, temperature, top_p, strict)
            -> (pitches [MAX_NOTES] (-1 past num_keys), state)

    feeding the first n_forced tokens, then sampling num_keys NOTE_ONs low to
    high. The loop runs max_keys times (a bound shared by a batch: jax.vmap of
    row over sessions with max_keys unbatched); a row past its num_keys feeds a
    throw-away token without moving its index, so its state is unchanged.
    strict (traced) masks pitches so the CONTROL's interval holds.
    feed_last=False: the last NOTE_ON is sampled (its PRNG key spent) but not
    stepped: nothing of the press needs what comes after it, so the caller
    answers first and feeds it as the first forced token of the session's
    next row (play/batch.py: one decode step less before each answer)."""
    vocab = model.vocab
    is_on = vocab.is_note_on(jnp.arange(vocab.size))
    loose = dataclasses.replace(constraints, strict=False)
    tight = dataclasses.replace(constraints, strict=True)
    pitches = jnp.arange(128)

    def choose(temperature, top_p, strict, num_keys, i, state):
        """Note i of the press, sampled under the masks -> (its token [1], the state's next PRNG key)."""
        key, k_tok = jax.random.split(state.key)
        track = state.track
        # leave room above for the keys still to come (a press goes low to high)
        room = pitches <= constraints.pitch_hi - (num_keys - 1 - i)
        on_room = jnp.zeros((vocab.size,), bool).at[vocab.note_on:vocab.note_off].set(room)
        grammar = allowed_tokens(track, loose, vocab) & is_on & on_room
        mask = jnp.where(strict, allowed_tokens(track, tight, vocab) & is_on & on_room, grammar)
        mask = jnp.where(mask.any(-1, keepdims=True), mask, grammar)
        # last resort (the pitches above are sounding): strike one again
        above = (pitches > track.last_on[:, None]) & (pitches >= constraints.pitch_lo) & room
        fallback = jnp.zeros_like(mask).at[:, vocab.note_on:vocab.note_off].set(above)
        mask = jnp.where(mask.any(-1, keepdims=True), mask, fallback)
        return sample_token(k_tok, state.logits, mask, temperature, top_p, jnp.int32(0)), key

    def one_note(params, temperature, top_p, strict, num_keys, i, carry):
        """Note i sampled and stepped (not stepped past num_keys, or as the
        last note with feed_last=False: its index stays, its state is unchanged)."""
        state, out = carry
        tok, key = choose(temperature, top_p, strict, num_keys, i, state)
        fed = feed(model, params, state._replace(key=key), tok[:, None], jnp.zeros((1, 1)), vocab)
        active = i < num_keys
        stepped = active if feed_last else i < num_keys - 1
        keep = functools.partial(jnp.where, stepped)
        state = fed._replace(index=keep(fed.index, state.index), logits=keep(fed.logits, state.logits),
                             time_logits=keep(fed.time_logits, state.time_logits),
                             track=jax.tree.map(keep, fed.track, state.track),
                             key=jax.tree.map(functools.partial(jnp.where, active), fed.key, state.key))
        return state, out.at[i].set(jnp.where(active, tok[0] - vocab.note_on, -1))

    def last_note(temperature, top_p, strict, num_keys, i, carry):
        """Note i (the batch's last) sampled, not stepped: no decode step at all."""
        state, out = carry
        tok, key = choose(temperature, top_p, strict, num_keys, i, state)
        active = i < num_keys
        state = state._replace(key=jax.tree.map(functools.partial(jnp.where, active), key, state.key))
        return state, out.at[i].set(jnp.where(active, tok[0] - vocab.note_on, -1))

    def row(params, state, ids, times, n_forced, num_keys, max_keys, temperature, top_p, strict):
        state = feed(model, params, state, ids, times, vocab, count=n_forced)
        out = jnp.full((MAX_NOTES,), -1, jnp.int32)
        body = functools.partial(one_note, params, temperature, top_p, strict, num_keys)
        if feed_last:
            return jax.lax.fori_loop(0, max_keys, body, (state, out))[::-1]
        # every note but the batch's last is stepped where its row has one after it; the last is only sampled
        carry = jax.lax.fori_loop(0, max_keys - 1, body, (state, out))
        carry = jax.lax.cond(max_keys > 0, functools.partial(last_note, temperature, top_p, strict, num_keys,
                                                             max_keys - 1), lambda c: c, carry)
        return carry[::-1]

    return row


def require_continuous_time(model: Transformer) -> None:
    """The instrument writes the player's time as TIME positions: a model of
    TIME_SHIFT tokens (model.time_shifts > 0, an ablation) cannot be played."""
    if model.time_shifts:
        raise ValueError(f"this model writes time as {model.time_shifts} TIME_SHIFT tokens (model.time_shifts); "
                         "the instrument needs continuous time (model.time_shifts=0)")
