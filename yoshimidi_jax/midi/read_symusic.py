"""The fast reader: symusic (C++) parses the file; we keep the reference
reader's semantics (see read_mido.read_midi_mido) and fall back to mido when
symusic refuses a file."""

from __future__ import annotations

import struct

import numpy as np
import symusic

from yoshimidi_jax.midi.errors import MidiRejected
from yoshimidi_jax.midi.events import DRUM_CHANNEL, KeySignature, NoteEvents, ReadResult
from yoshimidi_jax.midi.header import check_header
from yoshimidi_jax.midi.read_mido import _read_bytes, read_midi_mido
from yoshimidi_jax.midi.tempo_map import ticks_to_seconds

_END_OF_TRACK = b"\xff\x2f\x00"


def _closing_note_offs() -> bytes:
    """note_off for every pitch of every non-drum channel, delta 0 between them
    (the first takes the delta of the End of Track it replaces)."""
    out = bytearray()
    for channel in range(16):
        if channel == DRUM_CHANNEL:
            continue
        for pitch in range(128):
            if out:
                out += b"\x00"
            out += bytes((0x80 | channel, pitch, 0))
    return bytes(out + b"\x00" + _END_OF_TRACK)


_CLOSING = _closing_note_offs()


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
            body = body[: -len(_END_OF_TRACK)] + _CLOSING
        out += chunk_id + struct.pack(">I", len(body)) + body
        pos += 8 + length
    out += data[pos:]
    return bytes(out)


def read_midi(source: str | bytes, fallback_to_mido: bool = True) -> ReadResult:
    """Reads a path or MIDI bytes into note events with symusic.

    Rejects what check_header rejects; a file symusic cannot parse goes to the
    mido reader (which may still read it, or rejects it with a reason).
    """
    data = _read_bytes(source)
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
    key_signatures = tuple(
        KeySignature(time_s=float(to_s(np.array([k.time]))[0]), sharps=int(k.key), minor=bool(k.tonality))
        for k in score.key_signatures
    )
    onset_s, end_s = to_s(cat(starts, np.int64)), to_s(cat(ends, np.int64))
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
