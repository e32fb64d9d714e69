"""Time on a fixed grid of TIME_SHIFT tokens (Performance RNN style), the
alternative to continuous TIME positions (vocab.py). Pure, vectorised numpy.

A TIME position of t seconds becomes n = max(1, round(t / step)) steps of
`vocab.time_shift_s`, written as the fewest shift ids: as many of the
longest (vocab.time_shifts steps) as needed, the remainder last. Each shift
id carries its own seconds in the time values, as TIME does, so clocks,
decoding and control annotation read the result unchanged. Quantisation:
every gap moves to the step grid (within step / 2), and a gap shorter than
half a step keeps one step, so no two presses merge.
"""

from __future__ import annotations

import numpy as np

from yoshimidi_jax.tokens.vocab import TIME, Vocab


def shift_steps(seconds: np.ndarray, vocab: Vocab) -> np.ndarray:
    """Gaps in seconds -> steps of vocab.time_shift_s (at least one each)."""
    return np.maximum(np.rint(np.asarray(seconds, np.float64) / vocab.time_shift_s), 1).astype(np.int64)


def to_time_shifts(ids: np.ndarray, times: np.ndarray, vocab: Vocab) -> tuple[np.ndarray, np.ndarray]:
    """(ids, times) with TIME positions -> the same with TIME_SHIFT runs
    instead (ids int32, times float32: each shift's seconds)."""
    if not vocab.time_shifts:
        raise ValueError("this vocabulary has no TIME_SHIFT ids (Vocab(time_shifts=0))")
    ids = np.asarray(ids, np.int32)
    times = np.asarray(times, np.float32)
    is_time = ids == TIME
    steps = np.where(is_time, shift_steps(np.where(is_time, times, 0.0), vocab), 0)
    longest = vocab.time_shifts
    count = np.where(is_time, -(-steps // longest), 1)  # positions each input position becomes
    out_pos = np.cumsum(count) - count
    total = int(count.sum())
    out_ids = np.empty(total, np.int32)
    out_times = np.zeros(total, np.float32)
    keep = ~is_time
    out_ids[out_pos[keep]] = ids[keep]
    out_times[out_pos[keep]] = times[keep]
    # the shifts of each TIME position: count - 1 of the longest, then the rest
    time_pos = np.flatnonzero(is_time)
    runs = count[time_pos]
    src = np.repeat(time_pos, runs)
    k = np.arange(src.shape[0]) - np.repeat(np.cumsum(runs) - runs, runs)  # place within its run
    last = k == count[src] - 1
    n = np.where(last, steps[src] - (count[src] - 1) * longest, longest)
    out_ids[out_pos[src] + k] = vocab.time_shift + n - 1
    out_times[out_pos[src] + k] = n * vocab.time_shift_s
    return out_ids, out_times
