"""The reference reader: mido, one message at a time. Slow (it is the floor
the fast reader is measured against) but plain enough to trust."""

from __future__ import annotations

import collections
import io

import mido
import numpy as np

from yoshimidi_jax.midi.errors import MidiRejected
from yoshimidi_jax.midi.events import DRUM_CHANNEL, NoteEvents, ReadResult, unique_key_signatures
from yoshimidi_jax.midi.header import check_header
from yoshimidi_jax.midi.tempo_map import ticks_to_seconds

_FLAT_KEYS = {"F": 1, "Bb": 2, "Eb": 3, "Ab": 4, "Db": 5, "Gb": 6, "Cb": 7}
_SHARP_KEYS = {"C": 0, "G": 1, "D": 2, "A": 3, "E": 4, "B": 5, "F#": 6, "C#": 7}
_MINOR_RELATIVE = {  # minor key -> its relative major
    "A": "C", "E": "G", "B": "D", "F#": "A", "C#": "E", "G#": "B", "D#": "F#", "A#": "C#",
    "D": "F", "G": "Bb", "C": "Eb", "F": "Ab", "Bb": "Db", "Eb": "Gb", "Ab": "Cb",
}


def key_name_to_sharps(key: str) -> tuple[int, bool]:
    """mido's key names ('C', 'F#m', 'Bb') -> (sharps, minor)."""
    minor = key.endswith("m")
    tonic = key[:-1] if minor else key
    major = _MINOR_RELATIVE[tonic] if minor else tonic
    if major in _SHARP_KEYS:
        return _SHARP_KEYS[major], minor
    return -_FLAT_KEYS[major], minor


def read_midi_mido(source: str | bytes) -> ReadResult:
    """Reads a path or the bytes of a MIDI file into note events.

    Semantics (the fast reader matches them; tests compare both):
    - time of every message counts (control, program, pitch-wheel included);
    - note_on with velocity 0 is a note_off;
    - a note_on of a pitch already sounding on the channel opens a second note;
      note_offs close sounding notes first-in first-out;
    - a note never switched off is closed at the last event of its track;
    - notes on the drum channel (10) are left out and counted;
    - tempo changes in any track form one tempo map.
    """
    data = read_source_bytes(source)
    header = check_header(data)
    try:
        midi = mido.MidiFile(file=io.BytesIO(data), clip=False)
    except EOFError as e:
        raise MidiRejected("truncated", f"mido: unexpected end of file ({e})") from e
    except (ValueError, KeyError, IndexError, OSError) as e:
        raise MidiRejected("bad_data", f"mido: {e}") from e

    tempo_ticks: list[int] = []
    tempo_us: list[int] = []
    keys: list[tuple[int, int, bool]] = []
    cols: dict[str, list[int]] = collections.defaultdict(list)
    drum_notes = 0
    for track in midi.tracks:
        tick = 0
        program = [0] * 16
        sounding: dict[tuple[int, int], collections.deque] = collections.defaultdict(collections.deque)
        for msg in track:
            tick += msg.time
            kind = msg.type
            if kind == "note_on" and msg.velocity > 0:
                sounding[(msg.channel, msg.note)].append((tick, msg.velocity, program[msg.channel]))
            elif kind == "note_off" or kind == "note_on":
                queue = sounding.get((msg.channel, msg.note))
                if queue:
                    start, velocity, prog = queue.popleft()
                    drum_notes += _add_note(cols, start, tick, msg.note, velocity, msg.channel, prog)
            elif kind == "program_change":
                program[msg.channel] = msg.program
            elif kind == "set_tempo":
                tempo_ticks.append(tick)
                tempo_us.append(msg.tempo)
            elif kind == "key_signature":
                sharps, minor = key_name_to_sharps(msg.key)
                keys.append((tick, sharps, minor))
        for (channel, note), queue in sounding.items():
            for start, velocity, prog in queue:
                drum_notes += _add_note(cols, start, tick, note, velocity, channel, prog)

    tpb = header.ticks_per_beat
    ticks = np.concatenate([cols["start"], cols["end"], [k[0] for k in keys]]).astype(np.int64)
    seconds = ticks_to_seconds(ticks, tempo_ticks, tempo_us, tpb)
    n = len(cols["start"])
    onset, end, key_times = seconds[:n], seconds[n : 2 * n], seconds[2 * n :]
    key_signatures = unique_key_signatures(key_times, [k[1] for k in keys], [k[2] for k in keys])
    events = NoteEvents.from_arrays(
        onset_s=onset,
        duration_s=end - onset,
        pitch=cols["pitch"],
        velocity=cols["velocity"],
        channel=cols["channel"],
        program=cols["program"],
        key_signatures=key_signatures,
    )
    return ReadResult(events=events, drum_notes=drum_notes, reader="mido")


def _add_note(cols, start, end, pitch, velocity, channel, program) -> int:
    """Appends a note; returns 1 if it was a drum note (and left out)."""
    if channel == DRUM_CHANNEL:
        return 1
    cols["start"].append(start)
    cols["end"].append(end)
    cols["pitch"].append(pitch)
    cols["velocity"].append(velocity)
    cols["channel"].append(channel)
    cols["program"].append(program)
    return 0


def read_source_bytes(source: str | bytes) -> bytes:
    """The bytes of a MIDI source (a path, or the bytes themselves); an
    unreadable path is MidiRejected("unreadable")."""
    if isinstance(source, (bytes, bytearray)):
        return bytes(source)
    try:
        with open(source, "rb") as f:
            return f.read()
    except OSError as e:
        raise MidiRejected("unreadable", f"{source}: {e.strerror or e}") from e
