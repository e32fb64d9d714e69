"""One session of step-by-step play: the instrument's API on top of the KV-cache decoder
(the press itself, its tokens and its row function: play/press.py).

The player owns rhythm and dynamics (Piano Genie's split); the model chooses
the pitches. One press is

    TIME(seconds since the previous event)  CONTROL  [VELOCITY]  NOTE_ON x num_keys
    \\______________ forced, fed in one decode call ______/     \\__ sampled __/

so a press costs 1 + num_keys decode steps, in one jitted call. A release
feeds TIME and the NOTE_OFFs of the notes a press started. When the cache is
full the session keeps going: the most recent half of its tokens is prefilled
into a fresh cache (the Track, which summarises the whole session, is kept).
A session's style (tokens/styles.py) is asked once, at start: it lives in its
DecodeState, so every press, release and refill of the session keeps it.

    player = Player(model, params)
    state = player.start(jax.random.key(0))            # or start(key, style=style_id("fiddle"))
    notes, state = player.press(state, Press(dt_s=0.0, velocity=90, num_keys=1))
    notes, state = player.press(state, Press(dt_s=0.3, velocity=60, num_keys=3, interval=2))
    state = player.release(state, 0.2, notes.pitches)
    # zero-wait keys: the first key sounds at once, each later one joins its press
    notes, state = player.press(state, Press(dt_s=0.5, velocity=80, interval=1, grows=True))
    more, state = player.join(state, Press(dt_s=0.01, velocity=80, interval=1, grows=True))  # more.joined
    ids, times = state.host.tokens()    # every token of the session, to record it

A join is one more NOTE_ON in the open press ([VELOCITY if its bin changes]
NOTE_ON, no TIME, no CONTROL): 1 decode step per key. Where no press is open
(a TIME was fed since: a release, or nothing played yet) or the open press
has no room above its last note, the join plays its Press as a new press.

Every value is checked where it enters (Press, PlaySettings): an error names
the field, the value and the allowed range.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from yoshimidi_jax.model import Transformer
from yoshimidi_jax.play.host import SessionHost
from yoshimidi_jax.play.press import (MAX_NOTES, PlaySettings, Press, PressNotes, check_number, join_tokens,
                                      make_press_row, press_tokens, release_tokens, require_continuous_time)
from yoshimidi_jax.sample.sampler import DecodeState, feed, prefill, window_start
from yoshimidi_jax.sample.tracker import init_track
from yoshimidi_jax.tokens.styles import NO_STYLE, check_style


@dataclasses.dataclass(frozen=True)
class PlayState:
    decode: DecodeState  # device: cache, logits, Track, key, style
    host: SessionHost  # host: recent tokens, VELOCITY bin, sounding pitches, presses, every token

    @property
    def style(self) -> int:
        """The session's style (tokens/styles.py; NO_STYLE: none asked)."""
        return int(self.decode.style[0])


class Player:
    """Holds the model, its params and the jitted press/release functions; the
    session state is a value (PlayState) passed in and returned."""

    def __init__(self, model: Transformer, params: Any, cache_len: int | None = None):
        require_continuous_time(model)
        self.model, self.params = model, params
        self.cache_len = int(cache_len or model.max_len)
        self._prefill = jax.jit(lambda p, ids, times, track, key, style, start: prefill(
            model, p, ids, times, track, key, self.cache_len, style, start))
        self._feed = jax.jit(lambda p, state, ids, times: feed(model, p, state, ids, times), donate_argnums=(1,))
        self._press_fns: dict = {}

    # -- session -------------------------------------------------------------
    def start(self, key: jax.Array, style: int = NO_STYLE) -> PlayState:
        """A fresh session (BOS alone) with its PRNG key and its style
        (tokens/styles.style_id; NO_STYLE: none), which it keeps to its end."""
        style = check_style(style, self.model.num_styles)
        host = SessionHost.start(keep_history=True)
        style_B = jnp.full((1,), style, jnp.int32)
        decode = self._prefill(self.params, host.ids[None], host.times[None], init_track(1), key, style_B, None)
        return PlayState(decode, host)

    def _press_fn(self, num_forced: int, settings: PlaySettings):
        """One jitted press per (forced length, pitch range); the number of keys
        and strictness are traced, so no recompiles per chord size."""
        sig = (num_forced, settings.pitch_lo, settings.pitch_hi)
        if sig not in self._press_fns:
            row = make_press_row(self.model, settings.constraints)

            def run(params, state, ids, times, num_keys, temperature, top_p, strict):
                return row(params, state, ids, times, jnp.int32(ids.shape[1]), num_keys, num_keys,
                           temperature, top_p, strict)

            self._press_fns[sig] = jax.jit(run, donate_argnums=(1,))
        return self._press_fns[sig]

    def _join_fn(self, settings: PlaySettings):
        """One jitted join per pitch range: 0 or 1 forced token (a VELOCITY),
        then the NOTE_ONs; the count, the keys and strictness are traced."""
        sig = ("join", settings.pitch_lo, settings.pitch_hi)
        if sig not in self._press_fns:
            row = make_press_row(self.model, settings.constraints)

            def run(params, state, ids, times, n_forced, num_keys, temperature, top_p, strict):
                return row(params, state, ids, times, n_forced, num_keys, num_keys, temperature, top_p, strict)

            self._press_fns[sig] = jax.jit(run, donate_argnums=(1,))
        return self._press_fns[sig]

    def warmup(self, settings: PlaySettings = PlaySettings()) -> None:
        """Compiles every press variant and the cache refill (a server calls it
        once at start so that no player waits for a compile). Strictness is
        traced, so one pass covers strict and free play."""
        state = self.start(jax.random.key(0))
        for i in range(self.cache_len):  # both forced lengths, releases, until a refill
            before = len(state.host.ids)
            notes, state = self.press(state, Press(0.1, 40 + 80 * (i // 2 % 2), 1 + i % MAX_NOTES), settings)  # same and new VELOCITY
            if i < 2:  # a key joining the press, with the same and a new VELOCITY
                _, state = self.join(state, Press(0.0, 40 + 80 * i, 1, grows=True), settings)
            state = self.release(state, 0.1, state.host.open_press or notes.pitches)
            if len(state.host.ids) < before:
                break

    def _room(self, state: PlayState, needed: int) -> PlayState:
        host = state.host.refilled(needed, self.cache_len)
        if host is None:
            return state
        d = state.decode  # the Track, the PRNG key and the style carry over
        start = window_start(jnp.asarray(host.ids[None]), jnp.asarray(host.times[None]), d.track, self.model.vocab)
        decode = self._prefill(self.params, host.ids[None], host.times[None], d.track, d.key, d.style, start)
        return PlayState(decode, host)

    def press(self, state: PlayState, press: Press, settings: PlaySettings = PlaySettings()) -> tuple[PressNotes, PlayState]:
        f_ids, f_times, vel_bin = press_tokens(press, state.host.vel_bin, self.model)
        state = self._room(state, len(f_ids) + press.num_keys)
        fn = self._press_fn(len(f_ids), settings)
        pitches, decode = fn(self.params, state.decode, f_ids[None], f_times[None], jnp.int32(press.num_keys),
                             jnp.float32(settings.temperature), jnp.float32(settings.top_p), jnp.bool_(settings.strict))
        pitches = np.asarray(pitches)[: press.num_keys]
        notes = PressNotes(pitches, int(press.velocity), press.control)
        return notes, PlayState(decode, state.host.pressed(f_ids, f_times, pitches, vel_bin, self.model.vocab))

    def join(self, state: PlayState, press: Press, settings: PlaySettings = PlaySettings()) -> tuple[PressNotes, PlayState]:
        """press.num_keys more keys join the open press, at press.velocity:
        one more NOTE_ON each, above its notes, with no TIME between
        (notes.joined). Where no press is open (a TIME was fed since: a
        release) or it has no room above, `press` is played as a new press
        (ask it with grows=True so that keys may join it in turn)."""
        host = state.host
        if not host.can_join(press.num_keys, settings.pitch_hi):
            return self.press(state, press, settings)
        j_ids, j_times, vel_bin = join_tokens(press.velocity, host.vel_bin, self.model)
        state = self._room(state, 1 + press.num_keys)
        host = state.host
        ids, times = np.zeros((1, 1), np.int32), np.zeros((1, 1), np.float32)
        ids[0, : len(j_ids)] = j_ids
        pitches, decode = self._join_fn(settings)(
            self.params, state.decode, ids, times, jnp.int32(len(j_ids)), jnp.int32(press.num_keys),
            jnp.float32(settings.temperature), jnp.float32(settings.top_p), jnp.bool_(settings.strict))
        pitches = np.asarray(pitches)[: press.num_keys]
        notes = PressNotes(pitches, int(press.velocity), host.open_control or press.control, joined=True)
        return notes, PlayState(decode, host.joined(j_ids, j_times, pitches, vel_bin, self.model.vocab))

    def release(self, state: PlayState, dt_s: float, pitches) -> PlayState:
        """Ends the given notes (those still sounding; others are ignored)
        dt_s seconds after the previous event."""
        check_number("dt_s", dt_s, 0.0, 3600.0, integer=False)
        ending = state.host.ending(pitches)
        if not ending:
            return state
        ids, times = release_tokens(dt_s, ending, self.model)
        state = self._room(state, len(ids))
        decode = self._feed(self.params, state.decode, ids[None], times[None])
        return PlayState(decode, state.host.ended(ending).fed(ids, times))
