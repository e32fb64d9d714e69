"""MIDI reading: both readers, on files the tests write and on real corpus files."""

from __future__ import annotations

import mido
import numpy as np
import pytest

from yoshimidi_jax.midi import MidiRejected, read_midi, read_midi_mido
from yoshimidi_jax.midi.read_symusic import close_notes_at_track_end

M = mido.Message


def _save(tmp_path, tracks, ticks_per_beat=480, file_type=1, name="t.mid") -> str:
    midi = mido.MidiFile(type=file_type, ticks_per_beat=ticks_per_beat)
    for messages in tracks:
        midi.tracks.append(mido.MidiTrack(messages))
    path = str(tmp_path / name)
    midi.save(path)
    return path


def _both(path):
    """Reads with both readers, asserts they agree, returns the events."""
    fast, ref = read_midi(path), read_midi_mido(path)
    assert fast.reader == "symusic"
    _assert_same_notes(fast.events, ref.events)
    assert fast.drum_notes == ref.drum_notes
    assert [(k.sharps, k.minor) for k in fast.events.key_signatures] == [
        (k.sharps, k.minor) for k in ref.events.key_signatures
    ]
    return ref


def _assert_same_notes(a, b, atol=1e-5):
    assert len(a) == len(b)
    np.testing.assert_array_equal(a.pitch, b.pitch)
    np.testing.assert_array_equal(a.velocity, b.velocity)
    np.testing.assert_allclose(a.onset_s, b.onset_s, atol=atol)
    np.testing.assert_allclose(a.duration_s, b.duration_s, atol=atol)


@pytest.mark.parametrize("ticks_per_beat", [96, 480, 960, 1024])
@pytest.mark.parametrize("file_type", [0, 1])
def test_types_and_resolutions_give_seconds(tmp_path, ticks_per_beat, file_type):
    tpb = ticks_per_beat
    msgs = [
        M("note_on", note=60, velocity=100, time=0),
        M("note_off", note=60, time=tpb),  # 1 beat at 120 bpm = 0.5 s
        M("note_on", note=64, velocity=50, time=tpb),  # rest of 0.5 s
        M("note_on", note=64, velocity=0, time=2 * tpb),  # velocity 0 = note off
    ]
    r = _both(_save(tmp_path, [msgs], tpb, file_type))
    np.testing.assert_allclose(r.events.onset_s, [0.0, 1.0])
    np.testing.assert_allclose(r.events.duration_s, [0.5, 1.0])
    np.testing.assert_array_equal(r.events.velocity, [100, 50])


def test_tempo_change_in_conductor_track(tmp_path):
    conductor = [mido.MetaMessage("set_tempo", tempo=500_000, time=0),
                 mido.MetaMessage("set_tempo", tempo=1_000_000, time=960)]  # 60 bpm after 2 beats
    notes = [M("note_on", note=60, velocity=80, time=0), M("note_off", note=60, time=1920),
             M("note_on", note=62, velocity=80, time=0), M("note_off", note=62, time=480)]
    r = _both(_save(tmp_path, [conductor, notes]))
    # 2 beats at 0.5 s + 2 beats at 1 s = 3 s; then one beat at 1 s
    np.testing.assert_allclose(r.events.onset_s, [0.0, 3.0])
    np.testing.assert_allclose(r.events.duration_s, [3.0, 1.0])


def test_time_before_control_program_and_pitchwheel_counts(tmp_path):
    # the original project lost these deltas: a 1.0 s note came out as 0.5 s
    msgs = [
        M("note_on", note=60, velocity=80, time=0),
        M("control_change", control=64, value=127, time=480),
        M("program_change", program=5, time=240),
        M("pitchwheel", pitch=100, time=240),
        M("note_off", note=60, time=0),
    ]
    r = _both(_save(tmp_path, [msgs]))
    np.testing.assert_allclose(r.events.duration_s, [1.0])


def test_key_signature_at_time_zero_is_kept(tmp_path):
    msgs = [mido.MetaMessage("key_signature", key="F#m", time=0),
            M("note_on", note=66, velocity=80, time=0), M("note_off", note=66, time=480),
            mido.MetaMessage("key_signature", key="Eb", time=0)]
    r = _both(_save(tmp_path, [msgs]))
    assert [(k.time_s, k.sharps, k.minor) for k in r.events.key_signatures] == [(0.0, 3, True), (0.5, -3, False)]


def test_repeated_note_on_and_unclosed_notes(tmp_path):
    msgs = [
        M("note_on", note=60, velocity=80, time=0),
        M("note_on", note=60, velocity=70, time=480),  # re-struck while sounding
        M("note_off", note=60, time=480),  # closes the first (first in, first out)
        M("note_off", note=60, time=480),  # closes the second
        M("note_on", note=67, velocity=90, time=0),  # never switched off
        M("control_change", control=7, value=100, time=960),  # track goes on for 1 s
    ]
    r = _both(_save(tmp_path, [msgs]))
    np.testing.assert_allclose(r.events.onset_s, [0.0, 0.5, 1.5])
    np.testing.assert_allclose(r.events.duration_s, [1.0, 1.0, 1.0])  # 67 closed at the track's end
    np.testing.assert_array_equal(r.events.pitch, [60, 60, 67])


@pytest.mark.parametrize("channel", [0, 5, 15])
def test_unclosed_note_closed_at_end_of_track_delta(tmp_path, channel):
    midi = mido.MidiFile(type=1, ticks_per_beat=480)
    track = mido.MidiTrack([M("note_on", channel=channel, note=60, velocity=80, time=0)])
    track.append(mido.MetaMessage("end_of_track", time=960))
    midi.tracks.append(track)
    path = str(tmp_path / "eot.mid")
    midi.save(path)
    r = _both(path)
    np.testing.assert_allclose(r.events.duration_s, [1.0])


def test_drum_channel_excluded_and_counted(tmp_path):
    msgs = [M("note_on", channel=9, note=36, velocity=100, time=0), M("note_off", channel=9, note=36, time=240),
            M("note_on", channel=0, note=60, velocity=100, time=0), M("note_off", channel=0, note=60, time=240)]
    r = _both(_save(tmp_path, [msgs]))
    assert r.drum_notes == 1
    np.testing.assert_array_equal(r.events.pitch, [60])


def test_close_notes_rewrite_keeps_a_file_without_open_notes_the_same(few_midi_files):
    data = open(few_midi_files[0], "rb").read()
    rewritten = close_notes_at_track_end(data, 6)
    assert len(rewritten) > len(data)
    a = read_midi_mido(data).events
    b = read_midi_mido(rewritten).events
    _assert_same_notes(a, b)


def _header(file_type=1, tracks=1, division=480) -> bytes:
    return b"MThd" + (6).to_bytes(4, "big") + file_type.to_bytes(2, "big") + tracks.to_bytes(2, "big") + division.to_bytes(2, "big")


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty"),
        (b"not a midi file at all", "not_midi"),
        (b"MThd\x00\x00", "truncated"),
        (_header(file_type=2, tracks=2), "type2"),
        (_header(division=0xE728), "smpte_division"),  # -25 fps, 40 ticks per frame
        (_header(tracks=0), "no_tracks"),
    ],
)
def test_bad_headers_rejected_with_reason(tmp_path, data, reason):
    path = tmp_path / "bad.mid"
    path.write_bytes(data)
    for reader in (read_midi, read_midi_mido):
        with pytest.raises(MidiRejected) as e:
            reader(str(path))
        assert e.value.reason == reason


def test_truncated_and_bad_data_byte_rejected(tmp_path, few_midi_files):
    data = open(few_midi_files[0], "rb").read()
    (tmp_path / "cut.mid").write_bytes(data[: len(data) // 2])
    with pytest.raises(MidiRejected) as e:
        read_midi(str(tmp_path / "cut.mid"))
    assert e.value.reason in ("truncated", "bad_data")
    # a data byte above 127 inside a note_on
    track = b"\x00\x90\x3c\xc8\x83\x60\x80\x3c\x00\x00\xff\x2f\x00"
    bad = _header() + b"MTrk" + len(track).to_bytes(4, "big") + track
    (tmp_path / "byte.mid").write_bytes(bad)
    with pytest.raises(MidiRejected) as e:
        read_midi_mido(str(tmp_path / "byte.mid"))
    assert e.value.reason == "bad_data"
    with pytest.raises(MidiRejected):
        read_midi(str(tmp_path / "byte.mid"))


def test_missing_file_is_unreadable(tmp_path):
    with pytest.raises(MidiRejected) as e:
        read_midi(str(tmp_path / "nope.mid"))
    assert e.value.reason == "unreadable"


def test_readers_agree_on_real_pieces(few_midi_files):
    for path in few_midi_files:
        r = _both(path)
        assert len(r.events) > 30


def test_readers_agree_on_a_sample_of_the_default_corpus(corpus_sample):
    """Every collection of the default corpus (a seeded sample, tests/conftest.py;
    YOSHIMIDI_TEST_CORPUS=all: every file)."""
    assert len(corpus_sample.paths) >= 50
    for path in corpus_sample.paths:
        _both(path)


def test_pitch_left_sounding_twice_is_closed_twice(tmp_path):
    # as music21 writes some ties: note_off before note_on at one tick, so the
    # off finds nothing sounding and both note_ons stay open to the end
    msgs = [
        M("note_on", note=50, velocity=80, time=0),
        M("note_off", note=50, time=480),
        M("note_on", note=50, velocity=80, time=0),
        M("note_off", note=57, time=480),
        M("note_on", note=50, velocity=80, time=0),
        M("note_on", note=57, velocity=80, time=0),
        M("note_off", note=62, time=960),
    ]
    r = _both(_save(tmp_path, [msgs]))
    np.testing.assert_allclose(r.events.onset_s, [0.0, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(r.events.end_s, [0.5, 2.0, 2.0, 2.0])
