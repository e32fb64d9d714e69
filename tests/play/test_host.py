"""SessionHost: the host's record of a session, shared by Player and BatchPlayer."""

from __future__ import annotations

import numpy as np

from yoshimidi_jax.play.host import SessionHost, refill_window
from yoshimidi_jax.tokens import BOS, TIME, Vocab

VOCAB = Vocab()


def test_a_press_and_a_release_are_recorded():
    host = SessionHost.start(keep_history=True)
    assert host.ids.tolist() == [BOS] and host.vel_bin == -1 and host.presses == 0
    forced = np.array([TIME, VOCAB.control, VOCAB.velocity + 20], np.int32)
    pressed = host.pressed(forced, np.array([0.5, 0, 0], np.float32), np.array([60, 64], np.int32), 20, VOCAB)
    assert pressed.ids.tolist() == [BOS, *forced.tolist(), VOCAB.note_on + 60, VOCAB.note_on + 64]
    assert pressed.times.tolist() == [0, 0.5, 0, 0, 0, 0] and pressed.times.dtype == np.float32
    assert (pressed.vel_bin, pressed.sounding, pressed.presses) == (20, {60, 64}, 1)
    assert host.presses == 0 and len(host.ids) == 1  # a value: the old record is unchanged
    assert pressed.ending([64, 65, 60]) == [60, 64]
    off = np.array([TIME, VOCAB.note_off + 60], np.int32)
    released = pressed.ended([60]).fed(off, np.array([0.2, 0], np.float32))
    assert released.sounding == {64} and released.presses == 1 and released.vel_bin == 20
    ids, times = released.tokens()
    np.testing.assert_array_equal(ids, released.ids)
    np.testing.assert_array_equal(times, released.times)


def test_a_refill_keeps_the_recent_half_and_the_history():
    host = SessionHost.start(keep_history=True)
    host = host.fed(np.arange(5, 104, dtype=np.int32), np.zeros(99, np.float32))  # 100 tokens
    assert host.refilled(28, 128) is None  # 100 + 28 fits exactly
    kept = host.refilled(29, 128)
    np.testing.assert_array_equal(kept.ids, host.ids[-64:])
    assert len(kept.tokens()[0]) == 100  # every token of the session is still recorded


def test_without_history_tokens_are_not_kept():
    host = SessionHost.start(keep_history=False).fed(np.array([TIME], np.int32), np.ones(1, np.float32))
    assert host.history is None and len(host.ids) == 2


def test_refill_window_keeps_the_recent_half_only_when_full():
    ids, times = np.arange(100, dtype=np.int32), np.linspace(0, 1, 100).astype(np.float32)
    assert refill_window(ids, times, 28, 128) is None  # 100 + 28 fits exactly
    kept_ids, kept_times = refill_window(ids, times, 29, 128)
    np.testing.assert_array_equal(kept_ids, ids[-64:])
    np.testing.assert_array_equal(kept_times, times[-64:])
