"""Zero-wait keys: a press grows key by key. Each key that joins the open
press is one more NOTE_ON of it (no TIME, no CONTROL between), in Player and
in BatchPlayer alike (the same tokens from the same key); a join after a
release is a new press of its own."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from tests.model.helpers import model_and_params, small_config
from yoshimidi_jax.play.batch import BatchPlayer, JoinJob, PressJob
from yoshimidi_jax.play.player import Player
from yoshimidi_jax.play.press import PlaySettings, Press
from yoshimidi_jax.sample.constraints import Constraints, violations
from yoshimidi_jax.tokens import TIME, Vocab, decode
from yoshimidi_jax.tokens.controls import Control
from yoshimidi_jax.tokens.presses import ANY_CHORD, attributes_of_notes

VOCAB = Vocab()
CACHE = 96  # small: the sessions below refill it


@pytest.fixture(scope="module")
def model_params():
    return model_and_params(small_config(max_len=CACHE), seed=7)


def first(velocity, interval=9, dt=0.3):
    return Press(dt, velocity, 1, interval, grows=True)


def presses_of(ids, times):
    """The presses of a token stream as the data defines them (tokens/presses.py)."""
    ev = decode(ids, times)
    return attributes_of_notes(ev.onset_s, ev.pitch, ev.velocity)


def press_tokens_between(ids, start):
    """ids[start:]: the tokens of one press, up to the next TIME."""
    out = []
    for tok in ids[start:]:
        if tok == TIME:
            break
        out.append(int(tok))
    return out


def test_a_chord_added_key_by_key_is_one_press(model_params):
    model, params = model_params
    player = Player(model, params, cache_len=CACHE)
    state = player.start(jax.random.key(0))
    notes, state = player.press(state, first(90, dt=0.0))
    assert not notes.joined and notes.control.chord == ANY_CHORD and len(notes.pitches) == 1
    start = len(state.host.tokens()[0]) - 1  # the press's first NOTE_ON
    played = [int(notes.pitches[0])]
    for velocity in (90, 40, 40):  # same VELOCITY bin, a new one, the same again
        more, state = player.join(state, first(velocity, interval=2, dt=0.01))
        assert more.joined and len(more.pitches) == 1
        assert more.control == notes.control  # the press's control: chord ANY
        played.append(int(more.pitches[0]))
    ids, times = state.host.tokens()
    body = press_tokens_between(ids, start)
    on = [t - VOCAB.note_on for t in body if VOCAB.is_note_on(t)]
    assert on == played and on == sorted(on) and len(set(on)) == 4, (on, played)
    assert not any(VOCAB.is_control(t) or VOCAB.is_note_off(t) for t in body), [VOCAB.describe(t) for t in body]
    assert sum(1 for t in body if VOCAB.is_velocity(t)) == 1  # the bin changed once (90 -> 40)
    attrs = presses_of(ids, times)
    assert attrs.num_notes.tolist() == [4]
    assert violations(ids[1:], times[1:], constraints=Constraints(allow_eos=False)) == []  # after BOS


def test_join_after_a_release_is_a_new_press(model_params):
    model, params = model_params
    player = Player(model, params, cache_len=CACHE)
    state = player.start(jax.random.key(1))
    notes, state = player.press(state, first(80, dt=0.0))
    more, state = player.join(state, first(80, interval=1, dt=0.01))
    assert more.joined
    state = player.release(state, 0.02, notes.pitches)
    late, state = player.join(state, first(80, interval=1, dt=0.2))
    assert not late.joined and late.control == Control(1, ANY_CHORD, 1)
    ids, times = state.host.tokens()
    assert presses_of(ids, times).num_notes.tolist() == [2, 1]
    assert int(ids[-1]) - VOCAB.note_on == int(late.pitches[0]) and VOCAB.is_control(int(ids[-2])) and ids[-3] == TIME
    # nothing played yet: a join is the session's first press
    fresh = player.start(jax.random.key(2))
    alone, fresh = player.join(fresh, first(80, dt=0.0))
    assert not alone.joined and fresh.host.presses == 1


def token_presses(ids) -> list[int]:
    """The NOTE_ONs of each press of a token stream: runs with no TIME between."""
    out, n = [], 0
    for tok in ids:
        if tok == TIME and n:
            out.append(n)
            n = 0
        n += bool(VOCAB.is_note_on(int(tok)))
    return out + ([n] if n else [])


def test_batch_player_joins_as_the_player_does(model_params):
    """Two sessions side by side in a BatchPlayer and in Players from the same
    keys: presses, joins (some with a new VELOCITY), releases (pending in the
    batch player) and a join after a release give the same notes (float sums
    in a batch may differ in the last bit: a near-uniform random-init model
    may then sample another pitch, so a few steps may differ), through cache
    refills; each chord is one press of as many notes as keys, except where
    the press's top note left no room above (then the join is a new press)."""
    model, params = model_params
    bp = BatchPlayer(model, params, num_slots=2, cache_len=CACHE)
    player = Player(model, params, cache_len=CACHE)
    states = []
    for slot in range(2):
        bp.open(slot, jax.random.key(10 + slot))
        states.append(player.start(jax.random.key(10 + slot)))
    settings = PlaySettings(strict=True)
    keys_per_press = [1, 3, 2, 1, 4, 2, 3] * 3
    agree = total = joins = 0
    expected = [[[], []], [[], []]]  # per slot: token presses expected from the (player, batch) answers
    top = [[0, 0], [0, 0]]  # per slot: the open press's top note (player, batch)

    def check(slot, want, got, is_join):
        nonlocal agree, total, joins
        agree += want.joined == got.joined and want.pitches.tolist() == got.pitches.tolist()
        total += 1
        for who, notes in enumerate((want, got)):
            if notes.joined:
                assert is_join and int(notes.pitches[0]) > top[slot][who]  # above the press's notes
                expected[slot][who][-1] += 1
                joins += 1
            else:  # a new press; a join only where no press is open or its top note is the piano's top
                assert not is_join or top[slot][who] is None or top[slot][who] >= settings.pitch_hi
                expected[slot][who].append(1)
            top[slot][who] = int(notes.pitches[-1])

    for n, num_keys in enumerate(keys_per_press):
        vel = 40 + 30 * (n % 3)
        jobs = [PressJob(slot, first(vel, interval=n % 9, dt=0.25 if n else 0.0), settings) for slot in range(2)]
        got = bp.run(jobs)
        for slot in range(2):
            notes, states[slot] = player.press(states[slot], jobs[slot].press, settings)
            check(slot, notes, got[slot], False)
        for k in range(1, num_keys):
            jobs = [JoinJob(slot, first(vel - 30 * (k == 2), interval=n % 9, dt=0.01), settings) for slot in range(2)]
            got = bp.run(jobs)
            for slot in range(2):
                notes, states[slot] = player.join(states[slot], jobs[slot].press, settings)
                check(slot, notes, got[slot], True)
        for slot in range(2):
            bp.release(slot, 0.1, bp.host[slot].open_press)
            states[slot] = player.release(states[slot], 0.1, states[slot].host.open_press)
            top[slot] = [None, None]
        if n == 3:  # after the release: the join is a new press, in both
            jobs = [JoinJob(slot, first(70, interval=0, dt=0.05), settings) for slot in range(2)]
            got = bp.run(jobs)
            for slot in range(2):
                notes, states[slot] = player.join(states[slot], jobs[slot].press, settings)
                assert not got[slot].joined and not notes.joined
                check(slot, notes, got[slot], True)
                bp.release(slot, 0.1, got[slot].pitches)
                states[slot] = player.release(states[slot], 0.1, notes.pitches)
                top[slot] = [None, None]
    print("agree", agree, "of", total, "joins", joins)
    assert agree >= total - 4, (agree, total)
    assert joins >= 2 * 2 * (sum(keys_per_press) - len(keys_per_press)) - 8, joins
    assert bp.refills_in_batch > 0  # the sessions outgrew the cache
    for slot in range(2):
        ids, _ = states[slot].host.tokens()
        assert token_presses(ids) == expected[slot][0]
        # the batch player's cache window (its release pending): its presses end as the answers say
        window = token_presses(np.concatenate([bp.host[slot].ids, [TIME]]))
        assert window[1:] == expected[slot][1][-len(window) + 1:], (window, expected[slot][1])
