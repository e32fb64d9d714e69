"""Where MIDI files come from: the embedded music21 corpus, a folder, Lakh MIDI.
Each source returns a SourceFiles: the MIDI paths to read, and what it could not
provide, counted by reason."""

from yoshimidi_jax.data.sources.base import SourceFiles

__all__ = ["SourceFiles"]
