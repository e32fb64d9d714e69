"""Strict mode and the instrument: given attributes always hold; the player's
TIME, CONTROL and VELOCITY appear exactly as forced."""

from __future__ import annotations

import dataclasses
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.model.helpers import model_and_params, small_config
from yoshimidi_jax.sample import Constraints, generate, to_events
from yoshimidi_jax.eval.adherence import score
from yoshimidi_jax.play.player import Player
from yoshimidi_jax.play.press import PlaySettings, Press
from yoshimidi_jax.play.walk import player_walk
from yoshimidi_jax.sample.sampler import prefill, window_start
from yoshimidi_jax.tokens import TIME, Vocab, decode
from yoshimidi_jax.tokens.presses import ANY_INTERVAL, attributes_of_notes, interval_bounds
from yoshimidi_jax.tokens.styles import NO_STYLE, STYLES, StyleError, check_style, style_id

VOCAB = Vocab()


@pytest.fixture(scope="module")
def model_params():
    return model_and_params(small_config(max_len=256), seed=3)


@pytest.fixture(scope="module")
def player(model_params):
    return Player(*model_params, cache_len=256)


def test_strict_generation_never_violates_a_given_attribute(model_params):
    model, params = model_params
    batch = 4
    total = None
    for seed in range(2):
        walks = [player_walk(40, 10 * seed + r) for r in range(batch)]
        controls = np.array([[p.control.id() for p in w] for w in walks], np.int32)
        seqs, out = generate(model, params, jax.random.key(seed), num_events=128, batch=batch, controls=controls,
                             constraints=Constraints(strict=True, allow_eos=False))
        for r, seq in enumerate(seqs):
            used = int(out.forced[r].sum())
            events = to_events(seq)
            wanted = [p.control for p in walks[r]][:used]
            # an interval the keyboard has no room for (a random-init model may walk
            # to the bottom, then be asked to leap down) cannot hold: not scored
            refs = attributes_of_notes(events.onset_s, events.pitch, events.velocity).reference_pitch
            for k in range(1, min(len(refs), len(wanted))):
                lo, hi = interval_bounds(wanted[k].interval) if wanted[k].interval < ANY_INTERVAL else (-127, 127)
                if not (0 <= refs[k - 1] + hi and refs[k - 1] + lo <= 127):
                    wanted[k] = dataclasses.replace(wanted[k], interval=ANY_INTERVAL)
            counts = score(events, wanted, complete=False)
            total = counts if total is None else total + counts
    rates = total.rates()
    assert total.given["all"] > 40, total.given
    for attr in ("interval", "chord", "velocity", "all"):
        assert rates[attr] == 1.0, (attr, rates, total)


def test_strict_press_keeps_the_interval(player):
    settings = PlaySettings(strict=True, temperature=1.0, top_p=1.0)
    state = player.start(jax.random.key(4))
    prev = None
    checked = 0
    for p in player_walk(24, seed=5):
        notes, state = player.press(state, Press(0.2, p.velocity, p.num_keys, p.interval), settings)
        assert len(notes.pitches) == p.num_keys
        low = int(notes.pitches.min())
        if prev is not None:
            lo, hi = interval_bounds(p.interval)
            # the walk's interval is from the model's previous lowest note: check where the
            # class has room on the keyboard for the whole chord (else strict falls back)
            room = max(prev + lo, settings.pitch_lo) <= min(prev + hi, settings.pitch_hi - (p.num_keys - 1))
            if room:
                assert lo <= low - prev <= hi, (p.interval, prev, notes.pitches)
                checked += 1
        prev = low
        state = player.release(state, 0.1, notes.pitches)
    assert checked >= 12


def test_forced_time_control_and_velocity_appear_exactly(player):
    codec = player.model.codec
    state = player.start(jax.random.key(1))
    presses = [Press(0.0, 100, 3), Press(0.5, 110, 2, interval=1), Press(20.0, 30, 1), Press(0.25, 31, 4),
               Press(1.0, 70, 5, interval=8)]
    clock = 0.0
    for press in presses:
        before = len(state.host.ids)
        old_bin = state.host.vel_bin
        notes, state = player.press(state, press)
        new_ids, new_times = state.host.ids[before:], state.host.times[before:]
        dt = float(np.clip(press.dt_s, codec.min_s, codec.max_s))
        clock += dt
        assert new_ids[0] == TIME and new_times[0] == pytest.approx(dt, abs=1e-6)
        assert new_ids[1] == press.control.id()
        vel_bin = int(VOCAB.velocity_bin(press.velocity))
        k = 2
        if vel_bin != old_bin:  # a VELOCITY only when the bin changes
            assert new_ids[2] == VOCAB.velocity + vel_bin
            k = 3
        else:
            assert not VOCAB.is_velocity(new_ids).any()
        assert state.host.vel_bin == vel_bin
        # exactly num_keys NOTE_ONs, low to high, and nothing else
        assert len(new_ids) == k + press.num_keys
        np.testing.assert_array_equal(new_ids[k:] - VOCAB.note_on, notes.pitches)
        assert len(notes.pitches) == press.num_keys and (np.diff(notes.pitches) > 0).all()
        assert (new_times[1:] == 0).all()
        # decoded: at the press's onset, with its velocity (within its bin)
        ev = decode(state.host.ids, state.host.times)
        mine = ev.take(np.flatnonzero(np.isclose(ev.onset_s, clock, atol=1e-5)))
        assert sorted(mine.pitch.tolist()) == notes.pitches.tolist()
        assert (VOCAB.velocity_bin(mine.velocity) == vel_bin).all()
        assert (np.abs(mine.velocity.astype(int) - press.velocity) <= 128 // VOCAB.num_velocity_bins).all()
        state = player.release(state, 0.1, notes.pitches)
        clock += 0.1
    assert presses[2].dt_s > codec.max_s  # the clipped case was exercised


def test_a_session_keeps_its_style_across_refills(model_params):
    """A session's style (Player.start) is in its DecodeState through every
    press, release and cache refill; sessions from the same key, pressed the
    same, differ only by their style: their logits differ (the model reads it);
    a refill prefills the recent tokens in the session's style."""
    model, params = model_params
    assert model.num_styles > 0
    cache_len = 48  # small: the presses below refill it
    player = Player(model, params, cache_len=cache_len)
    chorale, fiddle = style_id("chorale"), style_id("fiddle")
    states = {s: player.start(jax.random.key(6), style=s) for s in (chorale, fiddle, NO_STYLE)}
    refills = 0
    for p in player_walk(24, seed=2):
        press = Press(0.2, p.velocity, p.num_keys, p.interval)
        for s, state in states.items():
            before = len(state.host.ids)
            notes, state = player.press(state, press, PlaySettings(temperature=0.0))
            state = player.release(state, 0.1, notes.pitches)
            refills += int(len(state.host.ids) < before) if s == chorale else 0
            assert state.style == s and np.asarray(state.decode.style).tolist() == [s]
            states[s] = state
    assert refills >= 2, refills
    logits = {s: np.asarray(state.decode.logits) for s, state in states.items()}
    assert not np.allclose(logits[chorale], logits[fiddle], atol=1e-3)
    assert not np.allclose(logits[chorale], logits[NO_STYLE], atol=1e-3)
    # a refill now: its logits are those of the recent tokens prefilled in the session's style
    state = states[fiddle]
    refilled = player._room(state, cache_len)
    assert len(refilled.host.ids) == cache_len // 2 and refilled.style == fiddle

    # where the kept tokens start: the notes sounding there and their ages
    start = window_start(jnp.asarray(refilled.host.ids[None]), jnp.asarray(refilled.host.times[None]),
                         state.decode.track, model.vocab)

    def prefilled(style):
        return np.asarray(prefill(model, params, refilled.host.ids[None], refilled.host.times[None],
                                  state.decode.track, state.decode.key, cache_len,
                                  jnp.array([style], jnp.int32), start).logits)

    np.testing.assert_allclose(np.asarray(refilled.decode.logits), prefilled(fiddle), atol=1e-4)
    assert not np.allclose(prefilled(fiddle), prefilled(NO_STYLE), atol=1e-3)


def test_a_style_the_model_does_not_take_is_refused(model_params):
    model, params = model_params
    player = Player(model, params, cache_len=48)
    with pytest.raises(StyleError, match="fiddle|takes"):
        player.start(jax.random.key(0), style=len(STYLES))
    with pytest.raises(StyleError, match="style index"):
        player.start(jax.random.key(0), style="fiddle")
    bare = dataclasses.replace(model, num_styles=0)
    with pytest.raises(StyleError, match="trained without styles"):
        check_style(style_id("fiddle"), bare.num_styles)
    assert check_style(NO_STYLE, 0) == NO_STYLE
