"""BatchPlayer: many sessions decoded as one batch give each session what the
single-session Player gives it; releases wait for the next press and change
nothing the model sees; a full cache refills; slots never leak into each other."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from tests.model.helpers import model_and_params, small_config
from yoshimidi_jax.play.batch import MAX_PENDING, BatchPlayer, FlushJob, PressJob
from yoshimidi_jax.play.player import Player
from yoshimidi_jax.play.press import PlaySettings, Press
from yoshimidi_jax.play.walk import player_walk
from yoshimidi_jax.tokens import TIME, Vocab
from yoshimidi_jax.tokens.presses import interval_bounds
from yoshimidi_jax.tokens.styles import NO_STYLE, StyleError, style_id

VOCAB = Vocab()
CACHE = 96  # small: the walks below refill it


@pytest.fixture(scope="module")
def model_params():
    return model_and_params(small_config(max_len=CACHE), seed=5)


@pytest.fixture(scope="module")
def batch_player(model_params):
    return BatchPlayer(*model_params, num_slots=4, cache_len=CACHE)


def _walk_presses(n, seed):
    return [Press(0.2 if i else 0.0, p.velocity, p.num_keys, p.interval) for i, p in enumerate(player_walk(n, seed))]


def _side_by_side(model_params, bp, settings, walks, first_key, styles=None):
    """Session i in slot i of the batch player and in a Player, from the same
    key (and style styles[i]), pressing walks[i] with settings[i] (each press
    released 0.1 s later) -> (the batch's notes per step, presses where the two
    agree, presses)."""
    model, params = model_params
    player = Player(model, params, cache_len=CACHE)
    styles = [NO_STYLE] * len(walks) if styles is None else styles
    states = []
    for slot in range(len(walks)):
        bp.open(slot, jax.random.key(first_key + slot), styles[slot])
        states.append(player.start(jax.random.key(first_key + slot), styles[slot]))
    steps, agree = [], 0
    for step in range(len(walks[0])):
        got = bp.run([PressJob(slot, walks[slot][step], settings[slot]) for slot in range(len(walks))])
        for slot, notes in enumerate(got):
            want, states[slot] = player.press(states[slot], walks[slot][step], settings[slot])
            agree += int(np.array_equal(want.pitches, notes.pitches))
            states[slot] = player.release(states[slot], 0.1, want.pitches)
            bp.release(slot, 0.1, notes.pitches)
        steps.append(got)
    return steps, agree, len(walks) * len(walks[0])


def test_a_batch_plays_each_session_as_the_single_player_does(model_params, batch_player):
    """Same key, same presses: the batch of 3 sessions and 3 Players agree note
    for note until the first cache refill (float sums in a batch may differ in
    the last bit, so only the tokens before any divergence are compared)."""
    settings = [PlaySettings(temperature=1.0, top_p=0.95), PlaySettings(strict=True), PlaySettings(temperature=0.0)]
    walks = [_walk_presses(8, seed) for seed in range(3)]
    steps, agree, total = _side_by_side(model_params, batch_player, settings, walks, first_key=10)
    for step, got in enumerate(steps):
        assert [len(n.pitches) for n in got] == [w[step].num_keys for w in walks]
    assert agree >= total - 2, (agree, total)
    for slot in range(3):
        batch_player.close(slot)


def test_each_press_plays_in_the_pitch_range_of_its_settings(model_params, batch_player):
    """Two sessions of one batch in two pitch ranges (their settings'): each
    keeps to its own, and plays what Player plays with the same settings; a
    flush rides along with a press of either range."""
    bp = batch_player
    settings = [PlaySettings(pitch_lo=60, pitch_hi=72), PlaySettings(pitch_lo=30, pitch_hi=50, strict=True)]
    walks = [_walk_presses(6, seed) for seed in (4, 5)]
    steps, agree, total = _side_by_side(model_params, bp, settings, walks, first_key=20)
    for got in steps:
        for s, notes in zip(settings, got):
            assert s.pitch_lo <= notes.pitches.min() and notes.pitches.max() <= s.pitch_hi, (s, notes.pitches)
    assert agree >= total - 1, (agree, total)
    fed = len(bp.host[1].ids) + len(bp.pending[1][0])
    notes, flushed = bp.run([PressJob(0, Press(0.1, 80, 2), settings[0]), FlushJob(1)])
    assert 60 <= notes.pitches.min() and notes.pitches.max() <= 72 and flushed is None
    assert len(bp.host[1].ids) == fed and len(bp.pending[1][0]) == 0
    for slot in range(2):
        bp.close(slot)


def _index(bp, slot) -> int:
    """Tokens in the slot's cache."""
    return int(np.asarray(bp.pool.index)[slot].reshape(-1)[0])


def test_releases_wait_for_the_next_press_and_then_come_first(model_params, batch_player):
    bp = batch_player
    bp.open(0, jax.random.key(0))
    (n1,) = bp.run([PressJob(0, Press(0.0, 90, 2))])
    before = len(bp.host[0].ids)
    assert bp.release(0, 0.3, n1.pitches) is False  # few tokens: nothing to feed now
    assert len(bp.host[0].ids) == before and len(bp.pending[0][0]) == 1 + 2
    assert bp.host[0].sounding == frozenset()
    # the press's last note is answered before it is stepped: the cache holds every token but it
    assert bp.unfed[0] == n1.pitches[-1] + VOCAB.note_on
    assert _index(bp, 0) == before - 1 and bp.host[0].ids[-1] == bp.unfed[0]
    (n2,) = bp.run([PressJob(0, Press(0.1, 90, 1, interval=1))])
    assert _index(bp, 0) == len(bp.host[0].ids) - 1  # it went first into this press; this one waits
    new = bp.host[0].ids[before:]
    times = bp.host[0].times[before:]
    # TIME(0.3) OFF OFF, then the press: TIME(0.1) CONTROL NOTE_ON
    assert new[0] == TIME and times[0] == pytest.approx(0.3)
    assert sorted(new[1:3] - VOCAB.note_off) == sorted(n1.pitches.tolist())
    assert new[3] == TIME and times[3] == pytest.approx(0.1)
    assert new[4] == Press(0.1, 90, 1, interval=1).control.id()
    assert new[-1] - VOCAB.note_on == n2.pitches[0]
    assert len(bp.pending[0][0]) == 0
    # a release of notes not sounding is ignored
    assert bp.release(0, 0.1, [n2.pitches[0] + 1]) is False and len(bp.pending[0][0]) == 0
    bp.close(0)


def test_many_pending_releases_are_flushed(model_params, batch_player):
    """Ten notes sounding, released one by one (TIME OFF each): past
    MAX_PENDING tokens the player asks for a flush, which feeds them all."""
    bp = batch_player
    bp.open(1, jax.random.key(1))
    (a,) = bp.run([PressJob(1, Press(0.0, 80, 5))])
    (b,) = bp.run([PressJob(1, Press(0.1, 80, 5, interval=1))])
    sounding = sorted(bp.host[1].sounding)
    assert len(sounding) == 10
    flushes = [bp.release(1, 0.05, [p]) for p in sounding]
    first = flushes.index(True)
    assert 2 * (first + 1) > MAX_PENDING >= 2 * first  # asked as soon as the pending tokens pass the limit
    fed, pending = len(bp.host[1].ids), len(bp.pending[1][0])
    assert pending == 2 * len(sounding)
    assert bp.run([FlushJob(1)]) == [None]
    assert len(bp.host[1].ids) == fed + pending and len(bp.pending[1][0]) == 0
    assert bp.unfed[1] is None and _index(bp, 1) == len(bp.host[1].ids)  # a flush steps the unfed note too
    assert bp.host[1].sounding == frozenset()
    bp.close(1)


def test_strict_batch_keeps_every_interval_and_survives_refills(model_params, batch_player):
    """Two sessions for 40 presses each (several refills of a 96-token cache):
    every strict press keeps its interval where the keyboard has room."""
    bp = batch_player
    settings = PlaySettings(strict=True, temperature=1.0, top_p=1.0)
    walks = [_walk_presses(40, seed) for seed in (7, 8)]
    for slot in (2, 3):
        bp.open(slot, jax.random.key(slot))
    prev = {2: None, 3: None}
    checked = refills = 0
    for step in range(40):
        lens = {s: len(bp.host[s].ids) for s in (2, 3)}
        got = bp.run([PressJob(2, walks[0][step], settings), PressJob(3, walks[1][step], settings)])
        for slot, notes, press in zip((2, 3), got, (walks[0][step], walks[1][step])):
            refills += int(len(bp.host[slot].ids) < lens[slot])
            assert len(notes.pitches) == press.num_keys and (np.diff(notes.pitches) > 0).all()
            low = int(notes.pitches.min())
            if prev[slot] is not None:
                lo, hi = interval_bounds(press.interval)
                if max(prev[slot] + lo, 21) <= min(prev[slot] + hi, 108 - (press.num_keys - 1)):
                    assert lo <= low - prev[slot] <= hi, (press, prev[slot], notes.pitches)
                    checked += 1
            prev[slot] = low
            bp.release(slot, 0.1, notes.pitches)
            assert len(bp.host[slot].ids) <= CACHE
    assert checked >= 40 and refills >= 2, (checked, refills)
    for slot in (2, 3):
        bp.close(slot)


def test_each_slot_keeps_its_style_through_batches_and_refills(model_params, batch_player):
    """Three sessions from the same key, in three styles (OpenJob's), pressed
    the same in one batch: each plays as a Player of its style does; each
    slot's style stays its own through every gather, scatter and refill of the
    pool (40 presses refill a 96-token cache); their logits differ; a slot
    opened again takes its new style."""
    bp = batch_player
    styles = [style_id("chorale"), style_id("fiddle"), NO_STYLE]
    settings = [PlaySettings(temperature=0.0)] * 3
    walk = _walk_presses(40, seed=9)
    steps, agree, total = _side_by_side(model_params, bp, settings, [walk[:6]] * 3, first_key=30, styles=styles)
    assert agree >= total - 1, (agree, total)
    refills = 0
    for press in walk[6:]:
        before = len(bp.host[0].ids)
        got = bp.run([PressJob(slot, press, settings[slot]) for slot in range(3)])
        refills += int(len(bp.host[0].ids) < before)
        for slot, notes in enumerate(got):
            bp.release(slot, 0.1, notes.pitches)
        assert [bp.style(slot) for slot in range(3)] == styles
        refills += len(bp.refill_ahead(range(3)))
    assert refills >= 2, refills
    logits = np.asarray(bp.pool.logits[:3, 0])
    assert not np.allclose(logits[0], logits[1], atol=1e-3) and not np.allclose(logits[0], logits[2], atol=1e-3)
    bp.open(1, jax.random.key(1), style_id("renaissance"))
    assert [bp.style(slot) for slot in range(3)] == [styles[0], style_id("renaissance"), styles[2]]
    with pytest.raises(StyleError):
        bp.open(2, jax.random.key(1), 99)
    for slot in range(3):
        bp.close(slot)


def test_one_job_per_slot_and_open_slots_only(batch_player):
    bp = batch_player
    bp.open(0, jax.random.key(0))
    with pytest.raises(ValueError, match="one job per slot"):
        bp.run([PressJob(0, Press(0.0, 90, 1)), PressJob(0, Press(0.1, 90, 1))])
    with pytest.raises(ValueError, match="not open"):
        bp.run([PressJob(3, Press(0.0, 90, 1))])
    with pytest.raises(ValueError, match="not in"):
        bp.open(4, jax.random.key(0))
    bp.close(0)


def test_refill_ahead_leaves_room_for_any_next_press(batch_player):
    """Refilled between presses, a nearly full cache never makes the next
    press refill (the press's time then holds no prefill)."""
    from yoshimidi_jax.play.batch import FORCED_BUCKETS, MAX_NOTES

    bp = batch_player
    bp.open(0, jax.random.key(0))
    refilled = 0
    for press in _walk_presses(40, seed=3):
        before = len(bp.host[0].ids)
        (notes,) = bp.run([PressJob(0, press)])
        assert len(bp.host[0].ids) > before  # no refill inside the press
        bp.release(0, 0.1, notes.pitches)
        done = bp.refill_ahead([0])
        refilled += len(done)
        assert len(bp.host[0].ids) + FORCED_BUCKETS[-1] + MAX_NOTES + 1 <= bp.cache_len
        # refilled: the recent half of the tokens stepped, the press's last note still unfed behind them
        assert bp.unfed[0] == notes.pitches[-1] + VOCAB.note_on
        assert (len(bp.host[0].ids) - 1 == bp.cache_len // 2) == bool(done)
    assert refilled >= 2
    bp.close(0)
