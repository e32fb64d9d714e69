"""A prompt for sampling: the beginning of a piece, written in a model's vocabulary."""

from __future__ import annotations

import dataclasses

from yoshimidi_jax.midi import NoteEvents
from yoshimidi_jax.tokens import TokenSequence, Vocab, encode
from yoshimidi_jax.tokens.time_shifts import to_time_shifts


def prompt_from_events(events: NoteEvents, vocab: Vocab, max_tokens: int) -> TokenSequence:
    """The first max_tokens tokens of a piece (BOS first; at most every token
    but the closing EOS) in `vocab`, a model's vocabulary (model.vocab): time
    as TIME positions, or as runs of TIME_SHIFT tokens where the vocabulary
    writes time so."""
    seq = encode(events, dataclasses.replace(vocab, time_shifts=0))
    if vocab.time_shifts:
        seq = TokenSequence(*to_time_shifts(seq.ids, seq.times, vocab))
    n = min(max_tokens, len(seq) - 1)
    return TokenSequence(seq.ids[:n], seq.times[:n])
