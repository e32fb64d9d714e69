"""What sounds when: the numpy rule (tokens/sounding.py) equals the sampler's
Track on real pieces, and a slid window's start is recovered exactly."""

from __future__ import annotations

import numpy as np
import pytest

from yoshimidi_jax.midi import read_midi
from yoshimidi_jax.sample.tracker import track_tokens
from yoshimidi_jax.tokens import Vocab, encode
from yoshimidi_jax.tokens.sounding import pack, sounding_at_cut, sounding_before, unpack
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


def test_pack_round_trip():
    x = np.random.default_rng(0).random((5, 128)) > 0.5
    assert pack(x).shape == (5, 4) and pack(x).dtype == np.int32
    np.testing.assert_array_equal(unpack(pack(x)), x)


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
