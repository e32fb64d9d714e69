"""Note events -> a MIDI file, with mido (type 1, one track per program)."""

from __future__ import annotations

import mido
import numpy as np

from yoshimidi_jax.midi.events import DRUM_CHANNEL, NoteEvents
from yoshimidi_jax.midi.tempo_map import DEFAULT_TEMPO_US

DEFAULT_TICKS_PER_BEAT = 960


def _major_key_name(sharps: int, minor: bool) -> str:
    majors = ["Cb", "Gb", "Db", "Ab", "Eb", "Bb", "F", "C", "G", "D", "A", "E", "B", "F#", "C#"]
    minors = ["Ab", "Eb", "Bb", "F", "C", "G", "D", "A", "E", "B", "F#", "C#", "G#", "D#", "A#"]
    return minors[sharps + 7] + "m" if minor else majors[sharps + 7]


def events_to_midifile(
    events: NoteEvents, ticks_per_beat: int = DEFAULT_TICKS_PER_BEAT
) -> mido.MidiFile:
    """Builds a type 1 file at 120 bpm: a conductor track (tempo, key
    signatures) and one track per program. Channels come from the events where
    known; else one per program (skipping the drum channel), and a note that
    overlaps a sounding note of its pitch goes to the next channel, so that
    every note_off ends the note it belongs to."""
    ticks_per_s = ticks_per_beat * 1e6 / DEFAULT_TEMPO_US
    midi = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    conductor = mido.MidiTrack()
    conductor.append(mido.MetaMessage("set_tempo", tempo=DEFAULT_TEMPO_US, time=0))
    last = 0
    for key in sorted(events.key_signatures, key=lambda k: k.time_s):
        tick = int(round(key.time_s * ticks_per_s))
        conductor.append(
            mido.MetaMessage("key_signature", key=_major_key_name(key.sharps, key.minor), time=tick - last)
        )
        last = tick
    midi.tracks.append(conductor)

    on_tick = np.round(events.onset_s * ticks_per_s).astype(np.int64)
    off_tick = np.maximum(np.round(events.end_s * ticks_per_s).astype(np.int64), on_tick)
    programs = np.unique(events.program)
    free_channels = [c for c in range(16) if c != DRUM_CHANNEL]
    for i, program in enumerate(programs):
        sel = np.flatnonzero(events.program == program)
        known = events.channel[sel]
        layer = _same_pitch_layers(events.onset_s[sel], events.end_s[sel], events.pitch[sel])
        default_channel = np.array(free_channels)[(i + layer) % len(free_channels)]
        channel = np.where(known >= 0, known, default_channel)
        # (tick, off-before-on, pitch) order: a re-struck pitch ends before it starts again
        rows = [(int(t), 0, int(p), 0, int(c)) for t, p, c in zip(off_tick[sel], events.pitch[sel], channel)]
        rows += [
            (int(t), 1, int(p), int(v), int(c))
            for t, p, v, c in zip(on_tick[sel], events.pitch[sel], events.velocity[sel], channel)
        ]
        rows.sort()
        track = mido.MidiTrack()
        for c in sorted(set(int(c) for c in channel)):
            track.append(mido.Message("program_change", channel=c, program=int(program), time=0))
        last = 0
        for tick, is_on, pitch, velocity, c in rows:
            kind = "note_on" if is_on else "note_off"
            track.append(mido.Message(kind, channel=c, note=pitch, velocity=velocity, time=tick - last))
            last = tick
        midi.tracks.append(track)
    return midi


def _same_pitch_layers(onset: np.ndarray, end: np.ndarray, pitch: np.ndarray) -> np.ndarray:
    """For each note, the lowest layer in which no earlier note of its pitch is
    still sounding (0 for almost every note)."""
    layer = np.zeros(onset.shape[0], np.int64)
    busy_until: dict[tuple[int, int], float] = {}
    for i in np.lexsort((pitch, onset)):
        k = 0
        while busy_until.get((int(pitch[i]), k), -1.0) > onset[i]:
            k += 1
        busy_until[(int(pitch[i]), k)] = end[i]
        layer[i] = k
    return layer


def write_midi(events: NoteEvents, path: str, ticks_per_beat: int = DEFAULT_TICKS_PER_BEAT) -> None:
    events_to_midifile(events, ticks_per_beat).save(path)
