"""Unconditioned samples against the held-out split: does free sampling keep
the data's note density, chords, range, harmony and rhythm?

Both sides are measured on windows of the same length (the model's context):
held-out pieces cut into consecutive windows of that many tokens, and samples
of that many new tokens from BOS with no control given (the model samples its
own CONTROL tokens, so its note starts are its own). Figures, each for samples
and held-out, and their ratio:
  onsets_per_press   notes per press (a chord is one press, tokens/presses.py)
  notes_per_s        notes per second of music
  polyphony          mean number of notes sounding, over the time any sounds
  pitch_range        highest minus lowest pitch of a window, mean over windows
  pitch_class_entropy  bits, of the pooled pitch-class histogram
  time_on_grid       share of gaps (the time between two events: one TIME
                     value, or a run of TIME_SHIFTs summed) within 2% of one of
                     the held-out split's 12 most common gaps
benchmarks/sample_stats.py is the command line.
"""

from __future__ import annotations

import jax
import numpy as np
from array_record.python.array_record_data_source import ArrayRecordDataSource

from yoshimidi_jax.data.manifest import shard_paths
from yoshimidi_jax.data.records import deserialize
from yoshimidi_jax.midi import NoteEvents
from yoshimidi_jax.model import Transformer
from yoshimidi_jax.sample.constraints import Constraints
from yoshimidi_jax.sample.sampler import generate
from yoshimidi_jax.tokens import Vocab, decode
from yoshimidi_jax.tokens.presses import attributes_of_notes

FIGURES = ("onsets_per_press", "notes_per_s", "polyphony", "pitch_range", "pitch_class_entropy", "time_on_grid")


def gaps(ids: np.ndarray, times: np.ndarray, vocab: Vocab = Vocab()) -> np.ndarray:
    """The time between events: each run of consecutive TIME / TIME_SHIFT
    positions summed into one value (seconds)."""
    is_time = vocab.is_time(np.asarray(ids))
    if not is_time.any():
        return np.zeros(0)
    run_start = is_time & ~np.append(False, is_time[:-1])
    run = np.cumsum(run_start)[is_time] - 1
    return np.bincount(run, weights=np.asarray(times, np.float64)[is_time])


def window_stats(windows: list[tuple[np.ndarray, np.ndarray]], vocab: Vocab = Vocab()) -> tuple[dict, np.ndarray]:
    """[(ids, times)] -> (figures but time_on_grid, every gap)."""
    notes = presses = 0
    seconds = sounding_time = voice_time = 0.0
    ranges, pcs, gap_values = [], np.zeros(12), []
    for ids, times in windows:
        ev: NoteEvents = decode(ids, times, vocab)
        gap_values.append(gaps(ids, times, vocab))
        if len(ev) == 0:
            continue
        attrs = attributes_of_notes(ev.onset_s, ev.pitch, ev.velocity)
        notes += len(ev)
        presses += len(attrs.onset_s)
        span = float(ev.end_s.max() - ev.onset_s.min())
        seconds += max(span, 1e-3)
        # polyphony: integral of the sounding count over the time any note sounds
        edges = np.concatenate([ev.onset_s, ev.end_s])
        delta = np.concatenate([np.ones(len(ev)), -np.ones(len(ev))])
        order = np.lexsort((delta, edges))
        count = np.cumsum(delta[order])[:-1]
        dt = np.diff(edges[order])
        voice_time += float((count * dt).sum())
        sounding_time += float(dt[count > 0].sum())
        ranges.append(int(ev.pitch.max() - ev.pitch.min()))
        pcs += np.bincount(ev.pitch % 12, minlength=12)
    p = pcs / max(pcs.sum(), 1)
    entropy = float(-(p[p > 0] * np.log2(p[p > 0])).sum())
    figures = {
        "onsets_per_press": notes / max(presses, 1),
        "notes_per_s": notes / max(seconds, 1e-9),
        "polyphony": voice_time / max(sounding_time, 1e-9),
        "pitch_range": float(np.mean(ranges)) if ranges else 0.0,
        "pitch_class_entropy": entropy,
    }
    return figures, np.concatenate(gap_values) if gap_values else np.zeros(0)


def on_grid(values: np.ndarray, grid: np.ndarray) -> float:
    """Share of values within 2% of one of the grid's values."""
    if values.size == 0:
        return 0.0
    rel = np.abs(values[:, None] - grid[None]) / grid[None]
    return float((rel.min(axis=1) <= 0.02).mean())


def heldout_windows(data_dir: str, length: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The eval split's pieces cut into consecutive windows of `length` tokens."""
    src = ArrayRecordDataSource(shard_paths(data_dir, "eval"))
    held = []
    for i in range(len(src)):
        t = deserialize(src[i]).tokens
        for s in range(0, len(t) - length + 1, length):
            held.append((t.ids[s:s + length], t.times[s:s + length]))
    return held


def sample_statistics(model: Transformer, params, data_dir: str, *, rows: int = 32, temperature: float = 1.0,
                      top_p: float = 0.95, seed: int = 0, time_mode: str = "refined") -> dict:
    """Unconditioned samples' figures beside the held-out split's, and their ratios."""
    length = model.max_len - 1
    held = heldout_windows(data_dir, length)
    if not held:
        raise ValueError(f"the eval split of {data_dir} has no piece of {length} tokens")
    held_fig, held_gaps = window_stats(held)
    values, counts = np.unique(np.round(held_gaps, 4), return_counts=True)
    grid = values[np.argsort(-counts)[:12]]
    held_fig["time_on_grid"] = on_grid(held_gaps, grid)
    seqs, _ = generate(model, params, jax.random.key(seed), num_events=length, batch=rows, temperature=temperature,
                       top_p=top_p, constraints=Constraints(allow_eos=False), time_mode=time_mode)
    sample_fig, sample_gaps = window_stats([(s.ids, s.times) for s in seqs], model.vocab)
    sample_fig["time_on_grid"] = on_grid(sample_gaps, grid)
    ratio = {k: round(sample_fig[k] / held_fig[k], 4) if held_fig[k] else None for k in held_fig}
    return {
        "time_mode": time_mode, "temperature": temperature, "top_p": top_p,
        "windows": {"samples": len(seqs), "heldout": len(held)}, "tokens_per_window": length,
        "samples": {k: round(v, 4) for k, v in sample_fig.items()},
        "heldout": {k: round(v, 4) for k, v in held_fig.items()},
        "ratio": ratio,
        "within_15pct": {k: r is not None and 0.85 <= r <= 1.15 for k, r in ratio.items()},
        "time_grid_s": [float(g) for g in grid],
    }
