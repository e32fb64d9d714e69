"""The fast reader: symusic (C++) parses the file; we keep the reference
reader's semantics (see read_mido.read_midi_mido) and fall back to mido when
symusic refuses a file."""

from __future__ import annotations

import struct

import numpy as np
import symusic

from yoshimidi_jax.midi.errors import MidiRejected
from yoshimidi_jax.midi.events import DRUM_CHANNEL, NoteEvents, ReadResult, unique_key_signatures
from yoshimidi_jax.midi.header import check_header
from yoshimidi_jax.midi.read_mido import read_midi_mido, read_source_bytes
from yoshimidi_jax.midi.tempo_map import ticks_to_seconds

_END_OF_TRACK = b"\xff\x2f\x00"


def _note_offs_of_channel(channel: int) -> bytes:
    """note_off for every pitch of one channel, each preceded by delta 0."""
    return b"".join(b"\x00" + bytes((0x80 | channel, pitch, 0)) for pitch in range(128))


_NOTE_OFFS = tuple(_note_offs_of_channel(c) for c in range(16))
# note_offs close sounding notes first in first out, one each: a pitch left
# sounding k times at the end of a track needs k rounds. Real files (the
# corpus's ties written off-before-on) leave up to 2; 4 leaves a margin.
_CLOSING_ROUNDS = 4


def _closing(track: bytes) -> bytes:
    """What replaces a track's End of Track: note_offs (_CLOSING_ROUNDS times)
    for every pitch of every non-drum channel the track may play on, then End
    of Track, all at delta 0
    (the first note_off takes the End of Track's own delta).

    A channel that has a note_on has at least one literal 0x9n status byte in
    the track (running status starts with one), so the bytes of the form 0x9n
    give a superset of its channels: other bytes may add a channel, which only
    costs a few unused note_offs."""
    raw = np.frombuffer(track, dtype=np.uint8)
    channels = np.unique(raw[(raw & 0xF0) == 0x90] & 0x0F)
    offs = b"".join(_NOTE_OFFS[c] for c in channels if c != DRUM_CHANNEL) * _CLOSING_ROUNDS
    return offs[1:] + b"\x00" + _END_OF_TRACK if offs else _END_OF_TRACK


def close_notes_at_track_end(data: bytes, header_length: int) -> bytes:
    """Rewrites each track so that notes never switched off end at the track's
    End of Track event (symusic would drop them; the reference closes them).

    Only the chunk framing is touched: a track whose chunk does not end with
    End of Track is left as it is. A chunk cut short by the end of the file is
    rejected as truncated (symusic would read what is there without a word).
    """
    out = bytearray(data[: 8 + header_length])
    pos = 8 + header_length
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (length,) = struct.unpack(">I", data[pos + 4 : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if len(body) < length:
            raise MidiRejected(
                "truncated", f"chunk {chunk_id!r} at byte {pos} declares {length} bytes, file has {len(body)} left"
            )
        if chunk_id == b"MTrk" and len(body) == length and body.endswith(_END_OF_TRACK):
            body = body[: -len(_END_OF_TRACK)] + _closing(body)
        out += chunk_id + struct.pack(">I", len(body)) + body
        pos += 8 + length
    out += data[pos:]
    return bytes(out)


def read_midi(source: str | bytes, fallback_to_mido: bool = True) -> ReadResult:
    """Reads a path or MIDI bytes into note events with symusic.

    Rejects what check_header rejects; a file symusic cannot parse goes to the
    mido reader (which may still read it, or rejects it with a reason).
    """
    data = read_source_bytes(source)
    check_header(data)
    (header_length,) = struct.unpack(">I", data[4:8])
    try:
        score = symusic.Score.from_midi(close_notes_at_track_end(data, header_length), ttype="tick")
    except Exception as e:  # symusic raises RuntimeError for any parse failure
        if fallback_to_mido:
            return read_midi_mido(data)
        raise MidiRejected("bad_data", f"symusic: {e}") from e

    # ticks -> seconds here in float64 (symusic's seconds are float32)
    tempos = score.tempos.numpy()
    to_s = lambda ticks: ticks_to_seconds(ticks, tempos["time"], tempos["mspq"], score.ticks_per_quarter)  # noqa: E731
    starts, ends, pitches, velocities, programs = [], [], [], [], []
    drum_notes = 0
    for track in score.tracks:
        if track.is_drum:
            drum_notes += track.note_num()
            continue
        if track.note_num() == 0:
            continue
        notes = track.notes.numpy()
        starts.append(notes["time"].astype(np.int64))
        ends.append(notes["time"].astype(np.int64) + notes["duration"])
        pitches.append(notes["pitch"].astype(np.int16))
        velocities.append(notes["velocity"].astype(np.uint8).astype(np.int16))
        programs.append(np.full(len(notes["pitch"]), track.program, dtype=np.int16))
    cat = lambda parts, dtype: np.concatenate(parts) if parts else np.zeros(0, dtype)  # noqa: E731
    keys = score.key_signatures.numpy()
    start_ticks, end_ticks = cat(starts, np.int64), cat(ends, np.int64)
    # one tempo-map lookup for note starts, note ends and key signatures
    seconds = to_s(np.concatenate([start_ticks, end_ticks, keys["time"].astype(np.int64)]))
    n = start_ticks.shape[0]
    onset_s, end_s, key_s = seconds[:n], seconds[n : 2 * n], seconds[2 * n :]
    key_signatures = unique_key_signatures(key_s, keys["key"], keys["tonality"])
    events = NoteEvents.from_arrays(
        onset_s=onset_s,
        duration_s=end_s - onset_s,
        pitch=cat(pitches, np.int16),
        velocity=cat(velocities, np.int16),
        channel=None,
        program=cat(programs, np.int16),
        key_signatures=key_signatures,
    )
    return ReadResult(events=events, drum_notes=drum_notes, reader="symusic")
