"""Unconditioned samples against the held-out split: does free sampling keep
the data's note density, chords, range, harmony and rhythm?

Both sides are measured on windows of the same length (the model's context):
held-out pieces cut into consecutive windows of that many tokens, and samples
of that many new tokens from BOS with no control given (the model samples its
own CONTROL tokens, so its note starts are its own). Figures, each for samples
and held-out, and their ratio:
  onsets_per_press   notes per press (a chord is one press, tokens/presses.py)
  notes_per_s        notes per second of music
  polyphony          muspy's polyphony (eval/music_metrics.py: the mean
                     number of distinct pitches sounding over the steps where
                     any sounds, on its fixed 120 bpm, 24-steps-a-beat clock),
                     per window, mean over windows with notes
  pitch_range        highest minus lowest pitch of a window, mean over windows
  pitch_class_entropy  muspy's pitch-class entropy (bits, of one window's
                     pitch-class histogram; eval/music_metrics.py), per
                     window, mean over windows with notes
  time_on_grid       share of gaps (the time between two events: one TIME
                     value, or a run of TIME_SHIFTs summed) within 2% of one of
                     the held-out split's 12 most common gaps
Polyphony and pitch-class entropy follow music_metrics (muspy's
definitions, per window, averaged), so they agree with
benchmarks/music_quality.py. They used to be this module's own and disagreed
with the standard ones (samples read 1.99 against 2.46 held out where the
standard polyphony put samples at 2.8 times held-out's): polyphony was the
number of notes sounding integrated over unquantised time, divided by the time
any note sounds, pooled over all windows (long, sparse windows weighed most);
entropy was that of the pitch-class histogram pooled over all windows (windows
in different keys pool into a flatter histogram than any one of them has).
benchmarks/sample_stats.py is the command line (same JSON keys).
"""

from __future__ import annotations

import jax
import numpy as np

from yoshimidi_jax.eval import music_metrics
from yoshimidi_jax.midi import NoteEvents
from yoshimidi_jax.eval.splits import split_records
from yoshimidi_jax.model import Transformer
from yoshimidi_jax.sample.constraints import Constraints
from yoshimidi_jax.sample.sampler import generate
from yoshimidi_jax.tokens import Vocab, decode
from yoshimidi_jax.tokens.presses import attributes_of_notes

FIGURES = ("onsets_per_press", "notes_per_s", "polyphony", "pitch_range", "pitch_class_entropy", "time_on_grid")


def gaps(ids: np.ndarray, times: np.ndarray, vocab: Vocab) -> np.ndarray:
    """The time between events: each run of consecutive TIME / TIME_SHIFT
    positions summed into one value (seconds). vocab: what the ids are
    written in (a model's model.vocab; the records' Vocab())."""
    is_time = vocab.is_time(np.asarray(ids))
    if not is_time.any():
        return np.zeros(0)
    run_start = is_time & ~np.append(False, is_time[:-1])
    run = np.cumsum(run_start)[is_time] - 1
    return np.bincount(run, weights=np.asarray(times, np.float64)[is_time])


def window_stats(windows: list[tuple[np.ndarray, np.ndarray]], vocab: Vocab) -> tuple[dict, np.ndarray]:
    """[(ids, times)] written in vocab -> (figures but time_on_grid, every gap)."""
    notes = presses = 0
    seconds = 0.0
    ranges, polyphonies, entropies, gap_values = [], [], [], []
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
        ranges.append(int(ev.pitch.max() - ev.pitch.min()))
        # muspy's definitions (music_metrics), one value per window
        polyphonies.append(music_metrics.polyphony(music_metrics.quantise(ev)))
        entropies.append(music_metrics.pitch_class_entropy(ev.pitch))
    figures = {
        "onsets_per_press": notes / max(presses, 1),
        "notes_per_s": notes / max(seconds, 1e-9),
        "polyphony": float(np.mean(polyphonies)) if polyphonies else 0.0,
        "pitch_range": float(np.mean(ranges)) if ranges else 0.0,
        "pitch_class_entropy": float(np.mean(entropies)) if entropies else 0.0,
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
    held = []
    for record in split_records(data_dir, "eval"):
        t = record.tokens
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
    held_fig, held_gaps = window_stats(held, Vocab())  # the records' vocabulary
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
