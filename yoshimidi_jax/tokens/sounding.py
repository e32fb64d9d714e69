"""Which pitches sound at each point of a token stream: the same rule the
sampler's Track keeps step by step (sample/tracker.py) and the model computes
for a window (model/position_context.py), here for whole sequences in numpy.

A pitch sounds from its NOTE_ON until its NOTE_OFF (or the sequence's end);
the data path uses these to tell the model what sounds when a training window
starts in the middle of a piece, and the sampler when it slides its window.
"""

from __future__ import annotations

import numpy as np

from yoshimidi_jax.tokens.vocab import NUM_PITCHES, Vocab

WORDS = NUM_PITCHES // 32  # a set of 128 pitches packed into 4 int32 words


def sounding_before(ids: np.ndarray, vocab: Vocab = Vocab()) -> np.ndarray:
    """ids [n] -> bool [n, 128]: the pitches sounding just before each token.
    Built from each note's span (a NOTE_ON at j sounds before tokens j+1 ..
    its pitch's next event, or the end), marked at its ends and summed down
    the tokens: a data-path cost per piece (the sweep of two [n, 128] int64
    running maxima it replaced took ~45% of making a training piece)."""
    ids = np.asarray(ids)
    n = ids.shape[0]
    starts, ends, pitches = _note_spans(ids, vocab)
    edges = np.zeros((n + 1, NUM_PITCHES), np.int8)
    edges[starts + 1, pitches] += 1  # (each cell once a call: a token starts one note, a pitch's spans
    edges[ends + 1, pitches] -= 1    # are disjoint)
    return np.cumsum(edges[:n], axis=0, dtype=np.int8) > 0


def _note_spans(ids: np.ndarray, vocab: Vocab) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each NOTE_ON's index j, the index k of its pitch's next NOTE_ON or
    NOTE_OFF (the last token where there is none), and its pitch: the pitch
    sounds before tokens j+1 .. k (none where j is the last token)."""
    n = ids.shape[0]
    on, off = vocab.is_note_on(ids), vocab.is_note_off(ids)
    idx = np.flatnonzero(on | off)
    pitch = np.where(on, ids - vocab.note_on, ids - vocab.note_off)[idx]
    order = np.lexsort((idx, pitch))  # each pitch's events in order
    idx, pitch, is_on = idx[order], pitch[order], on[idx[order]]
    same_next = np.concatenate([pitch[1:] == pitch[:-1], [False]])
    end = np.where(same_next, np.concatenate([idx[1:], [n - 1]]), n - 1)
    starts, ends = idx[is_on], end[is_on]
    return starts, np.maximum(ends, starts), pitch[is_on]


def sounding_at_cut(kept_ids, sounding_after, vocab: Vocab = Vocab(), xp=np):
    """The pitches sounding before `kept_ids` [..., n], given those sounding
    after them [..., 128] (a Track's): a pitch whose first event there is a
    NOTE_OFF sounded before; one whose first event is a NOTE_ON did not; one
    with no event sounds before as after. For a sliding window: where its
    kept tokens start. xp: numpy, or jax.numpy under jit."""
    ids = xp.asarray(kept_ids)
    n = ids.shape[-1]
    pitches = xp.arange(NUM_PITCHES)
    idx = xp.arange(n)[:, None]
    on = ids[..., None] == vocab.note_on + pitches  # [..., n, 128]
    off = ids[..., None] == vocab.note_off + pitches
    first_on = xp.min(xp.where(on, idx, n), axis=-2)
    first_off = xp.min(xp.where(off, idx, n), axis=-2)
    return xp.where(xp.minimum(first_on, first_off) < n, first_off < first_on, xp.asarray(sounding_after, bool))


def pack(sounding: np.ndarray) -> np.ndarray:
    """bool [..., 128] -> int32 [..., 4] (bit i of word w: pitch 32 w + i)."""
    bits = np.asarray(sounding, bool)
    octets = np.packbits(bits, axis=-1, bitorder="little")  # [..., 16]: bit i of byte b is pitch 8 b + i
    return np.ascontiguousarray(octets).view("<u4").astype(np.uint32).view(np.int32)


def unpack(words: np.ndarray) -> np.ndarray:
    """int32 [..., 4] -> bool [..., 128] (pack's inverse)."""
    w = np.asarray(words).astype(np.int32).view(np.uint32).astype(np.uint64)
    bits = (w[..., None] >> np.arange(32, dtype=np.uint64)) & 1
    return bits.reshape(*w.shape[:-1], NUM_PITCHES).astype(bool)


def step_seconds(ids, times, vocab: Vocab = Vocab(), xp=np):
    """Seconds each token moves the clock: a TIME's (or TIME_SHIFT's) time
    value, 0 for every other token (whatever `times` holds there)."""
    return xp.where(vocab.is_time(xp.asarray(ids)), xp.asarray(times, xp.float32), 0.0).astype(xp.float32)


def ages_before(ids: np.ndarray, times: np.ndarray, vocab: Vocab = Vocab()) -> np.ndarray:
    """ids, times [n] -> float32 [n, 128]: seconds since each sounding pitch's
    latest NOTE_ON, just before each token (0 where a pitch does not sound).
    The model's note-age input (model/position_context.py computes it for a
    window, sample/tracker.py step by step)."""
    ids = np.asarray(ids)
    n = ids.shape[0]
    # the clock just before each token, and at the latest NOTE_ON of each pitch before it
    clock = np.concatenate([[0.0], np.cumsum(step_seconds(ids, times, vocab).astype(np.float64))])[:n]
    on = vocab.is_note_on(ids)
    last_on = np.full((n, NUM_PITCHES), -1, np.int64)
    rows = np.arange(n)
    last_on[rows[on], ids[on] - vocab.note_on] = rows[on]
    last_on = np.concatenate([np.full((1, NUM_PITCHES), -1), np.maximum.accumulate(last_on, axis=0)[:-1]])[:n]
    age = clock[:, None] - clock[np.maximum(last_on, 0)]
    return np.where(sounding_before(ids, vocab), age, 0.0).astype(np.float32)


def ages_at_cut(kept_ids, kept_times, sounding_at_cut_, age_after, vocab: Vocab = Vocab(), xp=np):
    """The ages of the pitches sounding before `kept_ids` [..., n] (those of
    sounding_at_cut), given the seconds since each pitch's latest NOTE_ON after
    them [..., 128] (a Track's age): that age less the kept tokens' seconds.
    A pitch struck again inside the kept tokens lost its earlier onset: it
    counts as struck at the cut (age 0)."""
    ids = xp.asarray(kept_ids)
    kept_s = step_seconds(ids, kept_times, vocab, xp).sum(-1)
    struck = (ids[..., None] == vocab.note_on + xp.arange(NUM_PITCHES)).any(-2)
    age = xp.maximum(xp.asarray(age_after, xp.float32) - kept_s[..., None], 0.0)
    return xp.where(xp.asarray(sounding_at_cut_, bool) & ~struck, age, 0.0).astype(xp.float32)


AGE_SLOTS = 16  # the data path keeps the ages of at most this many sounding notes per token


def sounding_ages(ids: np.ndarray, times: np.ndarray, vocab: Vocab = Vocab(), slots: int = AGE_SLOTS) -> np.ndarray:
    """ids, times [n] -> float32 [n, slots]: ages_before's values of the
    pitches sounding before each token, lowest pitch first, 0 past the last
    (a note beyond `slots` sounding at once counts as just struck). The data
    path's compact form (a token holds a few notes, not 128 pitches): built
    from each note's span of tokens, not a dense [n, 128] sweep."""
    ids = np.asarray(ids)
    n = ids.shape[0]
    clock = np.concatenate([[0.0], np.cumsum(step_seconds(ids, times, vocab).astype(np.float64))])[:n]
    starts, ends, pitches = _note_spans(ids, vocab)
    lengths = ends - starts
    out = np.zeros((n, slots), np.float32)
    if lengths.sum() == 0:
        return out
    note = np.repeat(np.arange(starts.size), lengths)
    tok = starts[note] + 1 + (np.arange(note.size) - np.repeat(np.cumsum(lengths) - lengths, lengths))
    by_token = np.lexsort((pitches[note], tok))  # within a token, lowest pitch first
    tok, note = tok[by_token], note[by_token]
    first = np.searchsorted(tok, tok, side="left")
    rank = np.arange(tok.size) - first
    keep = rank < slots
    out[tok[keep], rank[keep]] = (clock[tok[keep]] - clock[starts[note[keep]]]).astype(np.float32)
    return out


def ages_from_slots(sounding: np.ndarray, slot_ages: np.ndarray) -> np.ndarray:
    """bool [..., 128] sounding pitches, float32 [..., slots] their ages (lowest
    pitch first: sounding_ages) -> float32 [..., 128] (0 where not sounding)."""
    sounding = np.asarray(sounding, bool)
    slot_ages = np.asarray(slot_ages, np.float32)
    rank = np.cumsum(sounding, axis=-1) - 1  # each sounding pitch's place among them
    slots = slot_ages.shape[-1]
    got = np.take_along_axis(slot_ages, np.clip(rank, 0, slots - 1), axis=-1)
    return np.where(sounding & (rank < slots), got, 0.0).astype(np.float32)
