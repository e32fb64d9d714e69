"""YoshiMIDI-JAX: a JAX/Flax language model for MIDI music with control tokens."""

__version__ = "0.1.0"
