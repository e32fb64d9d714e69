"""MIDI files <-> note events. `read_midi` is the fast bulk reader (symusic);
`read_midi_mido` is the reference reader; `write_midi` writes with mido."""

from yoshimidi_jax.midi.errors import MidiRejected
from yoshimidi_jax.midi.events import KeySignature, NoteEvents, ReadResult
from yoshimidi_jax.midi.read_mido import read_midi_mido
from yoshimidi_jax.midi.read_symusic import read_midi
from yoshimidi_jax.midi.write import events_to_midifile, write_midi

__all__ = [
    "KeySignature",
    "MidiRejected",
    "NoteEvents",
    "ReadResult",
    "events_to_midifile",
    "read_midi",
    "read_midi_mido",
    "write_midi",
]
