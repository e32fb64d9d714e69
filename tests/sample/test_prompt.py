"""A prompt from a MIDI file's notes, in the model's vocabulary."""

from __future__ import annotations

import numpy as np

from yoshimidi_jax.midi import read_midi
from yoshimidi_jax.sample.prompt import prompt_from_events
from yoshimidi_jax.tokens import BOS, EOS, TIME, Vocab, decode, encode
from yoshimidi_jax.tokens.time_shifts import to_time_shifts


def test_a_prompt_is_the_beginning_of_the_piece(few_midi_files):
    events = read_midi(few_midi_files[0]).events
    whole = encode(events)
    prompt = prompt_from_events(events, Vocab(), 40)
    assert len(prompt) == 40 and prompt.ids[0] == BOS
    np.testing.assert_array_equal(prompt.ids, whole.ids[:40])
    np.testing.assert_array_equal(prompt.times, whole.times[:40])
    everything = prompt_from_events(events, Vocab(), 10**9)  # all but the closing EOS
    assert len(everything) == len(whole) - 1 and EOS not in everything.ids


def test_a_time_shift_vocabulary_gets_its_time_as_shifts(few_midi_files):
    events = read_midi(few_midi_files[0]).events
    vocab = Vocab(time_shifts=100, time_shift_s=0.01)
    prompt = prompt_from_events(events, vocab, 60)
    assert len(prompt) == 60 and not (prompt.ids == TIME).any() and vocab.is_time_shift(prompt.ids).any()
    whole = encode(events)
    ids, times = to_time_shifts(whole.ids, whole.times, vocab)
    np.testing.assert_array_equal(prompt.ids, ids[:60])
    np.testing.assert_array_equal(prompt.times, times[:60])
    assert len(decode(prompt.ids, prompt.times, vocab)) > 0  # it reads as notes in its vocabulary
