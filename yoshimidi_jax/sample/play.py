"""Step-by-step play: the instrument's API on top of the KV-cache decoder.

The player owns rhythm and dynamics (Piano Genie's split); the model chooses
the pitches. One press is

    TIME(seconds since the previous event)  CONTROL  [VELOCITY]  NOTE_ON x num_keys
    \\______________ forced, fed in one decode call ______/     \\__ sampled __/

so a press costs 1 + num_keys decode steps, in one jitted call. A release
feeds TIME and the NOTE_OFFs of the notes a press started. When the cache is
full the session keeps going: the most recent half of its tokens is prefilled
into a fresh cache (the Track, which summarises the whole session, is kept).

    player = Player(model, params)
    state = player.start(jax.random.key(0))
    notes, state = player.press(state, Press(dt_s=0.0, velocity=90, num_keys=1))
    notes, state = player.press(state, Press(dt_s=0.3, velocity=60, num_keys=3, interval=2))
    state = player.release(state, 0.2, notes.pitches)

Every value is checked where it enters (Press, PlaySettings): an error names
the field, the value and the allowed range.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from yoshimidi_jax.model import Transformer
from yoshimidi_jax.sample.constraints import Constraints, allowed_tokens
from yoshimidi_jax.sample.sampler import DecodeState, feed, prefill, sample_token
from yoshimidi_jax.sample.tracker import advance, init_track
from yoshimidi_jax.tokens import BOS, TIME, Vocab
from yoshimidi_jax.tokens.controls import Control, ControlError
from yoshimidi_jax.tokens.presses import ANY_INTERVAL, chord_class, velocity_bucket
from yoshimidi_jax.tokens.vocab import NUM_CHORD_SIZES

MAX_KEYS = NUM_CHORD_SIZES  # notes one press can ask for


def _check_number(name: str, value, lo, hi, integer: bool) -> None:
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

    def __post_init__(self) -> None:
        _check_number("dt_s", self.dt_s, 0.0, 3600.0, integer=False)
        _check_number("velocity", self.velocity, 1, 127, integer=True)
        _check_number("num_keys", self.num_keys, 1, MAX_KEYS, integer=True)
        _check_number("interval", self.interval, 0, ANY_INTERVAL, integer=True)

    @property
    def control(self) -> Control:
        return Control(int(self.interval), int(chord_class(self.num_keys)), int(velocity_bucket(self.velocity)))


@dataclasses.dataclass(frozen=True)
class PlaySettings:
    temperature: float = 1.0
    top_p: float = 0.95
    strict: bool = False  # mask pitches so that the interval always holds
    pitch_lo: int = 21  # the piano's range
    pitch_hi: int = 108

    def __post_init__(self) -> None:
        _check_number("temperature", self.temperature, 0.0, 10.0, integer=False)
        _check_number("top_p", self.top_p, 0.0, 1.0, integer=False)
        _check_number("pitch_lo", self.pitch_lo, 0, 127, integer=True)
        _check_number("pitch_hi", self.pitch_hi, self.pitch_lo, 127, integer=True)
        if not isinstance(self.strict, bool):
            raise ControlError(f"strict={self.strict!r}: expected true or false")

    @property
    def constraints(self) -> Constraints:
        return Constraints(self.pitch_lo, self.pitch_hi, allow_controls=False, allow_eos=False, strict=self.strict)


@dataclasses.dataclass(frozen=True)
class PressNotes:
    pitches: np.ndarray  # [num_keys] int, low to high
    velocity: int
    control: Control


@dataclasses.dataclass(frozen=True)
class PlayState:
    decode: DecodeState  # device: cache, logits, Track, key
    ids: np.ndarray  # host: the session's recent tokens (for refilling a full cache)
    times: np.ndarray
    vel_bin: int  # host copy: the VELOCITY bin in force (-1: none yet)
    sounding: frozenset  # host copy: pitches the model's presses left sounding
    presses: int
    history: tuple = ()  # host: ((ids, times), ...) every token of the session, for recording


def press_tokens(press: Press, vel_bin_in_force: int, codec, vocab: Vocab = Vocab(),
                 ending=()) -> tuple[np.ndarray, np.ndarray, int]:
    """The forced tokens of a press, as the data writes them:
    TIME(dt) CONTROL [NOTE_OFF of `ending`] [VELOCITY if its bin changes]
    -> (ids, times, the VELOCITY bin in force after them)."""
    vel_bin = int(vocab.velocity_bin(press.velocity))
    ids = [TIME, press.control.id(vocab)] + [vocab.note_off + int(p) for p in sorted(ending)]
    if vel_bin != vel_bin_in_force:
        ids.append(vocab.velocity + vel_bin)
    times = np.zeros(len(ids), np.float32)
    times[0] = float(np.clip(press.dt_s, codec.min_s, codec.max_s))
    return np.array(ids, np.int32), times, vel_bin


def release_tokens(dt_s: float, ending, codec, vocab: Vocab = Vocab()) -> tuple[np.ndarray, np.ndarray]:
    """TIME(dt) NOTE_OFF... for the pitches ending."""
    ids = np.array([TIME] + [vocab.note_off + int(p) for p in sorted(ending)], np.int32)
    times = np.zeros(len(ids), np.float32)
    times[0] = float(np.clip(dt_s, codec.min_s, codec.max_s))
    return ids, times


def refill_window(ids: np.ndarray, times: np.ndarray, needed: int,
                  cache_len: int) -> tuple[np.ndarray, np.ndarray] | None:
    """When `needed` more tokens would not fit a cache of cache_len after a
    session's tokens in it: the recent half of them, to prefill a fresh cache
    with (the Track and the PRNG key carry over); None while they fit."""
    if len(ids) + needed <= cache_len:
        return None
    keep = cache_len // 2
    return ids[-keep:], times[-keep:]


def feed_first(model: Transformer, params: Any, state: DecodeState, ids: jax.Array, times: jax.Array,
               n: jax.Array, vocab: Vocab = Vocab()) -> DecodeState:
    """feed() of the first n of the tokens [1, F] (F static, n traced): the
    tokens after n are written to the cache beyond the new index, where
    attention never looks and the next tokens overwrite them."""
    logits, time_logits, cache = model.apply(
        {"params": params}, ids, times.astype(jnp.float32), state.cache, state.index,
        (state.track.control, state.track.press_len, state.track.ref, state.track.vel_bin), method=model.decode,
    )
    track = state.track
    for i in range(ids.shape[1]):
        track = jax.tree.map(functools.partial(jnp.where, i < n), advance(track, ids[:, i], times[:, i], vocab), track)
    last = jnp.maximum(n - 1, 0)
    fed = n > 0  # nothing fed: the state is unchanged
    return state._replace(
        cache=cache, index=state.index + n,
        logits=jnp.where(fed, jax.lax.dynamic_index_in_dim(logits, last, axis=1, keepdims=False), state.logits),
        time_logits=jnp.where(fed, jax.lax.dynamic_index_in_dim(time_logits, last, axis=1, keepdims=False),
                              state.time_logits),
        track=track)


def make_press_row(model: Transformer, constraints: Constraints, vocab: Vocab = Vocab()):
    """The press of one session (a DecodeState of batch 1), as a pure function

        row(params, state, ids [1, F], times [1, F], n_forced, num_keys, max_keys, temperature, top_p, strict)
            -> (pitches [MAX_KEYS] (-1 past num_keys), state)

    feeding the first n_forced tokens, then sampling num_keys NOTE_ONs low to
    high. The loop runs max_keys times (a bound shared by a batch: jax.vmap of
    row over sessions with max_keys unbatched); a row past its num_keys feeds a
    throw-away token without moving its index, so its state is unchanged.
    strict (traced) masks pitches so the CONTROL's interval holds."""
    is_on = vocab.is_note_on(jnp.arange(vocab.size))
    loose = dataclasses.replace(constraints, strict=False)
    tight = dataclasses.replace(constraints, strict=True)
    pitches = jnp.arange(128)

    def one_note(params, temperature, top_p, strict, num_keys, i, carry):
        state, out = carry
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
        tok = sample_token(k_tok, state.logits, mask, temperature, top_p, jnp.int32(0))
        fed = feed(model, params, state._replace(key=key), tok[:, None], jnp.zeros((1, 1)), vocab)
        active = i < num_keys
        keep = functools.partial(jnp.where, active)
        state = fed._replace(index=keep(fed.index, state.index), logits=keep(fed.logits, state.logits),
                             time_logits=keep(fed.time_logits, state.time_logits),
                             track=jax.tree.map(keep, fed.track, state.track),
                             key=jax.tree.map(keep, fed.key, state.key))
        return state, out.at[i].set(jnp.where(active, tok[0] - vocab.note_on, -1))

    def row(params, state, ids, times, n_forced, num_keys, max_keys, temperature, top_p, strict):
        state = feed_first(model, params, state, ids, times, n_forced, vocab)
        out = jnp.full((MAX_KEYS,), -1, jnp.int32)
        body = functools.partial(one_note, params, temperature, top_p, strict, num_keys)
        return jax.lax.fori_loop(0, max_keys, body, (state, out))[::-1]

    return row


def require_continuous_time(model: Transformer) -> None:
    """The instrument writes the player's time as TIME positions: a model of
    TIME_SHIFT tokens (model.time_shifts > 0, an ablation) cannot be played."""
    if model.time_shifts:
        raise ValueError(f"this model writes time as {model.time_shifts} TIME_SHIFT tokens (model.time_shifts); "
                         "the instrument needs continuous time (model.time_shifts=0)")


class Player:
    """Holds the model, its params and the jitted press/release functions; the
    session state is a value (PlayState) passed in and returned."""

    def __init__(self, model: Transformer, params: Any, cache_len: int | None = None, vocab: Vocab = Vocab()):
        require_continuous_time(model)
        self.model, self.params, self.vocab = model, params, vocab
        self.cache_len = int(cache_len or model.max_len)
        self._prefill = jax.jit(lambda p, ids, times, track, key: prefill(model, p, ids, times, track, key,
                                                                          self.cache_len))
        self._feed = jax.jit(lambda p, state, ids, times: feed(model, p, state, ids, times), donate_argnums=(1,))
        self._press_fns: dict = {}

    # -- session -------------------------------------------------------------
    def start(self, key: jax.Array) -> PlayState:
        ids = np.array([BOS], np.int32)
        times = np.zeros(1, np.float32)
        state = self._prefill(self.params, ids[None], times[None], init_track(1), key)
        return PlayState(state, ids, times, -1, frozenset(), 0, ((ids, times),))

    def _press_fn(self, num_forced: int, constraints: Constraints):
        """One jitted press per (forced length, pitch range); the number of keys
        and strictness are traced, so no recompiles per chord size."""
        sig = (num_forced, constraints.pitch_lo, constraints.pitch_hi)
        if sig not in self._press_fns:
            row = make_press_row(self.model, constraints, self.vocab)

            def run(params, state, ids, times, num_keys, temperature, top_p, strict):
                return row(params, state, ids, times, jnp.int32(ids.shape[1]), num_keys, num_keys,
                           temperature, top_p, strict)

            self._press_fns[sig] = jax.jit(run, donate_argnums=(1,))
        return self._press_fns[sig]

    def warmup(self, settings: PlaySettings = PlaySettings()) -> None:
        """Compiles every press variant and the cache refill (a server calls it
        once at start so that no player waits for a compile). Strictness is
        traced, so one pass covers strict and free play."""
        state = self.start(jax.random.key(0))
        for i in range(self.cache_len):  # both forced lengths, releases, until a refill
            before = len(state.ids)
            notes, state = self.press(state, Press(0.1, 40 + 80 * (i // 2 % 2), 1 + i % MAX_KEYS), settings)  # same and new VELOCITY
            state = self.release(state, 0.1, notes.pitches)
            if len(state.ids) < before:
                break

    def _room(self, state: PlayState, needed: int) -> PlayState:
        window = refill_window(state.ids, state.times, needed, self.cache_len)
        if window is None:
            return state
        ids, times = window
        decode = self._prefill(self.params, ids[None], times[None], state.decode.track, state.decode.key)
        return dataclasses.replace(state, decode=decode, ids=ids, times=times)

    def press(self, state: PlayState, press: Press, settings: PlaySettings = PlaySettings()) -> tuple[PressNotes, PlayState]:
        vocab = self.vocab
        control = press.control
        f_ids, f_times, vel_bin = press_tokens(press, state.vel_bin, self.model.codec, vocab)
        state = self._room(state, len(f_ids) + press.num_keys)
        fn = self._press_fn(len(f_ids), settings.constraints)
        pitches, decode = fn(self.params, state.decode, f_ids[None], f_times[None], jnp.int32(press.num_keys),
                             jnp.float32(settings.temperature), jnp.float32(settings.top_p), jnp.bool_(settings.strict))
        pitches = np.asarray(pitches)[: press.num_keys]
        chunk = (np.concatenate([f_ids, (pitches + vocab.note_on).astype(np.int32)]),
                 np.concatenate([f_times, np.zeros(len(pitches), np.float32)]))
        notes = PressNotes(pitches, int(press.velocity), control)
        return notes, PlayState(decode, np.concatenate([state.ids, chunk[0]]), np.concatenate([state.times, chunk[1]]),
                                vel_bin, state.sounding | set(pitches.tolist()), state.presses + 1,
                                state.history + (chunk,))

    def release(self, state: PlayState, dt_s: float, pitches) -> PlayState:
        """Ends the given notes (those still sounding; others are ignored)
        dt_s seconds after the previous event."""
        _check_number("dt_s", dt_s, 0.0, 3600.0, integer=False)
        ending = sorted({int(p) for p in pitches} & state.sounding)
        if not ending:
            return state
        ids, times = release_tokens(dt_s, ending, self.model.codec, self.vocab)
        state = self._room(state, len(ids))
        decode = self._feed(self.params, state.decode, ids[None], times[None])
        return PlayState(decode, np.concatenate([state.ids, ids]), np.concatenate([state.times, times]),
                         state.vel_bin, state.sounding - set(ending), state.presses, state.history + ((ids, times),))

    @staticmethod
    def session_tokens(state: PlayState) -> tuple[np.ndarray, np.ndarray]:
        """Every token of the session so far (ids, times): decode it to record it."""
        return (np.concatenate([c[0] for c in state.history]).astype(np.int32),
                np.concatenate([c[1] for c in state.history]).astype(np.float32))
