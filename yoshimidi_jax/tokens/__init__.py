"""Vocabulary, encode/decode, categorical time and control annotation."""

from yoshimidi_jax.tokens.encode import TokenSequence, decode, encode, normalize_events
from yoshimidi_jax.tokens.time_codec import TimeCodec
from yoshimidi_jax.tokens.vocab import BOS, EOS, PAD, SEP, TIME, Family, Vocab

__all__ = [
    "BOS", "EOS", "PAD", "SEP", "TIME", "Family", "TimeCodec", "TokenSequence", "Vocab",
    "decode", "encode", "normalize_events",
]
