"""Keeping warm (app/batcher.py KeepWarm, BatchPlayer.keep_warm): while
someone plays, an idle decode thread calls the model every interval, and stops
once nobody has pressed for `while_s`; the calls change no session's music."""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from tests.app.conftest import REPO
from tests.model.helpers import model_and_params, small_config
from yoshimidi_jax.app.batcher import Batcher, KeepWarm
from yoshimidi_jax.play.batch import BatchPlayer, OpenJob, PressJob
from yoshimidi_jax.play.press import PlaySettings, Press

CACHE = 96


@pytest.fixture(scope="module")
def model_params():
    return model_and_params(small_config(max_len=CACHE), seed=5)


def test_a_call_is_due_only_while_a_few_play():
    warm = KeepWarm(interval_s=0.005, while_s=10.0, max_presses_per_s=20)
    assert warm.wait_s(100.0) is None  # nobody has pressed
    warm.pressed(100.0)
    assert warm.wait_s(100.001) == pytest.approx(0.004)
    assert warm.wait_s(100.02) == 0.0  # overdue: at once
    assert warm.wait_s(110.5) is None  # the last press 10.5 s ago: nobody plays
    for i in range(20):  # 20 presses within a second: busy enough to stay warm by itself
        warm.pressed(111.0 + i * 0.04)
    assert warm.wait_s(111.8) is None
    assert warm.wait_s(112.05) == 0.0  # the oldest of the 20 over a second ago: 19 a second
    warm.pressed(112.1, jobs=20)  # one batch of 20 presses: as busy
    assert warm.wait_s(112.2) is None
    off = KeepWarm(interval_s=0.0)
    off.pressed(100.0)
    assert off.wait_s(100.1) is None
    with pytest.raises(ValueError, match="interval_s=-1"):
        KeepWarm(interval_s=-1)


def test_keep_warm_calls_change_no_session(model_params):
    """Two players from the same keys, one called to keep warm between every
    two presses: the same notes, the same decode state, bit for bit."""
    plain, warmed = (BatchPlayer(*model_params, num_slots=2, cache_len=CACHE) for _ in range(2))
    assert not warmed.keep_warm()  # nothing decoded yet: nothing to warm
    for bp in (plain, warmed):
        bp.open(0, jax.random.key(3))
        bp.open(1, jax.random.key(4))
    for i in range(12):  # enough to refill the small cache
        press = Press(0.25 if i else 0.0, 40 + 7 * i, 1 + i % 3)
        got = [bp.run([PressJob(0, press), PressJob(1, press)]) for bp in (plain, warmed)]
        for a, b in zip(*got):
            np.testing.assert_array_equal(a.pitches, b.pitches)
        for bp, notes in zip((plain, warmed), got):
            for slot in (0, 1):
                bp.release(slot, 0.1, notes[slot].pitches)
        assert warmed.keep_warm() and warmed.keep_warm()
    for slot in (0, 1):
        rows = [jax.tree.map(lambda x: np.asarray(jax.random.key_data(x[slot]) if jax.dtypes.issubdtype(
            x.dtype, jax.dtypes.prng_key) else x[slot]), bp.pool) for bp in (plain, warmed)]
        jax.tree.map(np.testing.assert_array_equal, *rows)
        assert plain.host[slot].ids.tolist() == warmed.host[slot].ids.tolist()


def test_an_idle_decode_thread_keeps_warm_while_someone_plays(model_params):
    bp = BatchPlayer(*model_params, num_slots=2, cache_len=CACHE)
    warm = KeepWarm(interval_s=0.005, while_s=0.5)
    batcher = Batcher(bp, warm)

    async def play_once():
        await batcher.submit(OpenJob(0, jax.random.key(0)))
        assert warm.calls == 0  # opening a session is no press
        return await batcher.submit(PressJob(0, Press(0.0, 80, 1)))

    try:
        assert asyncio.run(play_once()).pitches.shape == (1,)
        time.sleep(0.3)
        playing = warm.calls
        # every ~5 ms (at most 60 in 0.3 s; a slow machine makes fewer)
        assert 5 <= playing <= 60, playing
        time.sleep(0.6)  # the press is now over 0.5 s old: no more calls
        stopped = warm.calls
        time.sleep(0.2)
        assert warm.calls == stopped, (stopped, warm.calls)
        assert warm.busy_s > 0 and math.isfinite(warm.busy_s)
    finally:
        batcher.close()


def test_no_calls_when_off(model_params):
    bp = BatchPlayer(*model_params, num_slots=2, cache_len=CACHE)
    warm = KeepWarm(interval_s=0.0)
    batcher = Batcher(bp, warm)

    async def play_once():
        await batcher.submit(OpenJob(0, jax.random.key(0)))
        await batcher.submit(PressJob(0, Press(0.0, 80, 1)))

    try:
        asyncio.run(play_once())
        time.sleep(0.2)
        assert warm.calls == 0
    finally:
        batcher.close()


def test_the_server_keeps_warm_while_someone_plays(server, client_factory):
    """The real server (default --keep_warm_ms=5): after a press, calls come
    every few ms and /api/stats counts them."""
    before = server.stats()
    assert before["keep_warm_ms"] == 5.0
    c = client_factory(server)
    assert c.press([60])["type"] == "notes"
    stats = server.wait_stats(lambda s: s["keep_warm_calls"] >= before["keep_warm_calls"] + 20, timeout_s=10.0)
    assert stats["keep_warm_calls"] >= before["keep_warm_calls"] + 20, stats
    assert stats["keep_warm_s"] > before["keep_warm_s"]


def test_a_keep_warm_interval_out_of_range_is_a_usage_error():
    proc = subprocess.run([sys.executable, "-m", "experiments.serve", "--config=configs/tiny.py", "--port=0",
                           "--keep_warm_ms=-1"], cwd=REPO, env={**os.environ, "PYTHONPATH": REPO},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr[-2000:])
    assert "keep_warm_ms=-1.0 must be a time between 0 (never) and 1000 ms" in proc.stderr, proc.stderr[-2000:]
    assert "serving" not in proc.stdout and "restored" not in proc.stdout, proc.stdout


def test_keep_warm_compiles_nothing(model_params):
    """The call runs the smallest shape the player has run: here 2 rows (two
    sessions pressed at once) in a pitch range of their own, never 1 row."""
    bp = BatchPlayer(*model_params, num_slots=2, cache_len=CACHE)
    settings = PlaySettings(pitch_lo=30, pitch_hi=90)  # a batch program no other test compiled
    for slot in (0, 1):
        bp.open(slot, jax.random.key(slot))
    bp.run([PressJob(0, Press(0.0, 80, 1), settings), PressJob(1, Press(0.0, 80, 1), settings)])
    program = bp.programs.batch_fn((30, 90))
    assert program._cache_size() == 1
    assert bp.keep_warm()
    assert program._cache_size() == 1  # (2 rows, 8 forced): no new shape
