"""What sounds when: the numpy rule (tokens/sounding.py) equals the sampler's
Track on real pieces, and a slid window's start is recovered exactly."""

from __future__ import annotations

import numpy as np
import pytest

from yoshimidi_jax.midi import read_midi
from yoshimidi_jax.sample.tracker import track_tokens
from yoshimidi_jax.tokens import BOS, Vocab, encode
from yoshimidi_jax.tokens.sounding import (ages_at_cut, ages_before, ages_from_slots, pack, sounding_ages,
                                          sounding_at_cut, sounding_before, unpack)
from yoshimidi_jax.tokens.styles import NO_STYLE, STYLES, StyleError, style_id, style_of_path

VOCAB = Vocab()


@pytest.fixture(scope="module")
def piece(few_midi_files):
    seq = encode(read_midi(few_midi_files[3]).events)  # a quartet movement: several voices
    return seq.ids[:400], seq.times[:400]


def test_sounding_before_each_token_is_the_trackers(piece):
    ids, times = piece
    before = sounding_before(ids)
    for k in (0, 1, 37, 120, 255, 399):
        want = np.asarray(track_tokens(ids[None, :k], times[None, :k]).sounding)[0] if k else np.zeros(128, bool)
        np.testing.assert_array_equal(before[k], want, err_msg=f"before token {k}")
    assert before.sum(-1).max() >= 3


def test_a_slid_windows_start_is_recovered(piece):
    ids, times = piece
    after = np.asarray(track_tokens(ids[None], times[None]).sounding)[0]
    before = sounding_before(ids)
    for cut in (1, 50, 200, 333):
        np.testing.assert_array_equal(sounding_at_cut(ids[cut:], after), before[cut], err_msg=f"cut {cut}")
    assert sum(before[c].any() for c in (50, 200, 333)) >= 2


def test_note_ages_before_each_token_are_the_trackers(piece):
    """Seconds since each sounding pitch's NOTE_ON: the numpy rule (the data
    path's) equals the Track's, and is what the clock says on a hand-made line."""
    ids, times = piece
    ages = ages_before(ids, times)
    for k in (0, 1, 37, 120, 255, 399):
        want = np.asarray(track_tokens(ids[None, :k], times[None, :k]).position_start.age)[0] if k else 0.0
        np.testing.assert_allclose(ages[k], want, atol=1e-4, err_msg=f"before token {k}")
    assert ages.max() > 1.0 and (ages[sounding_before(ids)] > 0).mean() > 0.5
    v, T = VOCAB, 4  # TIME
    line = np.array([1, v.note_on + 60, T, v.note_on + 64, T, v.note_off + 60, T, v.note_off + 64])
    secs = np.array([0, 0, 0.5, 0, 0.25, 0, 1.0, 0], np.float32)
    np.testing.assert_allclose(ages_before(line, secs)[:, [60, 64]],
                               [[0, 0], [0, 0], [0, 0], [0.5, 0], [0.5, 0], [0.75, 0.25], [0, 0.25], [0, 1.25]])


def test_the_data_paths_compact_ages_are_the_dense_ones(few_midi_files):
    """sounding_ages (a few slots a token, what the pipeline carries) gives back
    ages_before's [n, 128] exactly, on real pieces of several voices; past its
    slots a note counts as just struck."""
    widest = 0
    for path in few_midi_files:
        seq = encode(read_midi(path).events)
        ids, times = seq.ids[:3000], seq.times[:3000]
        sounding = sounding_before(ids)
        np.testing.assert_array_equal(ages_from_slots(sounding, sounding_ages(ids, times)), ages_before(ids, times))
        widest = max(widest, int(sounding.sum(-1).max()))
        two = ages_from_slots(sounding, sounding_ages(ids, times, slots=2))  # only the two lowest kept
        keep = sounding & (np.cumsum(sounding, -1) <= 2)
        np.testing.assert_array_equal(two, np.where(keep, ages_before(ids, times), 0.0))
    assert widest >= 3


def test_a_slid_windows_note_ages_are_recovered(piece):
    """From the Track after the kept tokens: the ages where they begin, except
    a pitch struck again inside them (it counts as new there)."""
    ids, times = piece
    ages, checked = ages_before(ids, times), 0
    for cut, end in ((1, 9), (50, 80), (120, 130), (200, 240), (333, 350), (333, 400)):
        track = track_tokens(ids[None, :end], times[None, :end])
        at_cut = sounding_at_cut(ids[cut:end], np.asarray(track.sounding)[0])
        got = ages_at_cut(ids[cut:end], times[cut:end], at_cut, np.asarray(track.age)[0])
        restruck = (ids[cut:end, None] == VOCAB.note_on + np.arange(128)).any(0)
        np.testing.assert_allclose(got[~restruck], ages[cut][~restruck], atol=1e-3, err_msg=f"cut {cut}")
        assert (got[restruck] == 0).all()
        checked += (ages[cut][~restruck] > 0).sum()
    assert checked >= 2  # carried notes with an age were recovered


def test_pack_round_trip():
    x = np.random.default_rng(0).random((5, 128)) > 0.5
    assert pack(x).shape == (5, 4) and pack(x).dtype == np.int32
    np.testing.assert_array_equal(unpack(pack(x)), x)
    # bit i of word w is pitch 32 w + i (what the model's features read)
    for pitch in (0, 31, 32, 60, 127):
        one = np.zeros(128, bool)
        one[pitch] = True
        want = np.zeros(4, np.uint32)
        want[pitch // 32] = 1 << (pitch % 32)
        np.testing.assert_array_equal(pack(one), want.view(np.int32))


def _sounding_by_hand(ids: np.ndarray) -> np.ndarray:
    """The rule token by token: a NOTE_ON starts its pitch, a NOTE_OFF stops it."""
    out, now = np.zeros((len(ids), 128), bool), np.zeros(128, bool)
    for k, t in enumerate(ids):
        out[k] = now
        if VOCAB.is_note_on(t):
            now[t - VOCAB.note_on] = True
        elif VOCAB.is_note_off(t):
            now[t - VOCAB.note_off] = False
    return out


def test_sounding_before_is_the_rule_token_by_token(few_midi_files):
    """On whole real pieces, and on random streams of a few pitches (struck
    again while sounding, released twice or never struck, notes left on at
    the end, a NOTE_ON as the last token)."""
    for path in few_midi_files:
        ids = encode(read_midi(path).events).ids
        np.testing.assert_array_equal(sounding_before(ids), _sounding_by_hand(ids), err_msg=path)
    rng = np.random.default_rng(0)
    pool = np.concatenate([VOCAB.note_on + np.arange(60, 64), VOCAB.note_off + np.arange(60, 64), [BOS, 4]])
    for n in rng.integers(1, 200, 200):
        ids = rng.choice(pool, n)
        np.testing.assert_array_equal(sounding_before(ids), _sounding_by_hand(ids), err_msg=str(ids))
    assert sounding_before(np.array([VOCAB.note_on + 60])).shape == (1, 128)


def test_styles_by_name_and_folder():
    assert style_id("fiddle") == STYLES.index("fiddle") and style_id("any") == NO_STYLE and style_id(None) == NO_STYLE
    with pytest.raises(StyleError, match="jazz"):
        style_id("jazz")
    assert style_of_path("/c/music21/bach/bwv66.6.mid", "/c/music21") == STYLES.index("chorale")
    assert style_of_path("/c/music21/ryansMammoth/x.mid", "/c/music21") == STYLES.index("fiddle")
    assert style_of_path("/c/music21/x.mid", "/c/music21") == NO_STYLE  # no folder: unknown
    assert style_of_path("/c/elsewhere/x.mid", "") == NO_STYLE


def test_records_written_before_styles_still_read(few_midi_files):
    import struct

    from yoshimidi_jax.data.records import PieceRecord, deserialize, serialize

    tokens = encode(read_midi(few_midi_files[0]).events)
    new = serialize(PieceRecord(7, tokens, style=STYLES.index("chorale")))
    assert deserialize(new).style == STYLES.index("chorale")
    old = b"YMJ1" + new[4:16] + new[17:]  # the v1 layout: no style byte
    back = deserialize(old)
    assert back.style == NO_STYLE and back.piece_hash == 7
    np.testing.assert_array_equal(back.tokens.ids, tokens.ids)
    np.testing.assert_array_equal(back.tokens.times, tokens.times)
    with pytest.raises(ValueError, match="not a YoshiMIDI record"):
        deserialize(b"XXXX" + new[4:])
    assert struct.calcsize("<4sQI") == 16
