"""Checks the MIDI header chunk before any parser sees the file, so that every
reader rejects the same files for the same, named reasons."""

from __future__ import annotations

import dataclasses
import struct

from yoshimidi_jax.midi.errors import MidiRejected


@dataclasses.dataclass(frozen=True)
class MidiHeader:
    file_type: int  # 0 or 1
    num_tracks: int
    ticks_per_beat: int


def check_header(data: bytes) -> MidiHeader:
    """Returns the header of a standard MIDI file, or raises MidiRejected.

    Type 2 (independent sequences) and SMPTE time division are rejected: neither
    has one tempo map that turns ticks into seconds for the whole file.
    """
    if len(data) == 0:
        raise MidiRejected("empty", "file has 0 bytes")
    if data[:4] != b"MThd":
        if data[:4] == b"RIFF":
            raise MidiRejected("not_midi", "RIFF-wrapped MIDI (RMID) is not supported")
        raise MidiRejected("not_midi", f"starts with {data[:4]!r}, not b'MThd'")
    if len(data) < 14:
        raise MidiRejected("truncated", f"header needs 14 bytes, file has {len(data)}")
    (length,) = struct.unpack(">I", data[4:8])
    if length < 6:
        raise MidiRejected("bad_header", f"header chunk length {length} < 6")
    file_type, num_tracks, division = struct.unpack(">HHH", data[8:14])
    if division & 0x8000:
        raise MidiRejected("smpte_division", "SMPTE time division is not supported")
    if division == 0:
        raise MidiRejected("bad_header", "ticks per beat is 0")
    if file_type == 2:
        raise MidiRejected("type2", "type 2 (independent sequences) is not supported")
    if file_type not in (0, 1):
        raise MidiRejected("bad_header", f"unknown MIDI file type {file_type}")
    if num_tracks == 0:
        raise MidiRejected("no_tracks", "header declares 0 tracks")
    return MidiHeader(file_type=file_type, num_tracks=num_tracks, ticks_per_beat=division)
