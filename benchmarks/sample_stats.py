r"""Unconditioned samples against the held-out split: does free sampling keep
the data's note density, chords, range, harmony and rhythm?

    python -m benchmarks.sample_stats --workdir=runs/tiny [--rows=32 --temperature=1.0 --top_p=0.95]

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
  time_on_grid       share of TIME values within 2% of one of the held-out
                     split's 12 most common TIME values
Prints one JSON line; `within_15pct` says which ratios lie in [0.85, 1.15].
"""

from __future__ import annotations

import json

import jax
import numpy as np
from absl import app, flags
from array_record.python.array_record_data_source import ArrayRecordDataSource

from yoshimidi_jax.data.manifest import shard_paths
from yoshimidi_jax.data.records import deserialize
from yoshimidi_jax.midi import NoteEvents
from yoshimidi_jax.sample import Constraints, generate
from yoshimidi_jax.sample.restore import restore
from yoshimidi_jax.sample.sampler import TIME_MODES
from yoshimidi_jax.tokens import TIME, decode
from yoshimidi_jax.tokens.presses import attributes_of_notes

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "runs/tiny", "a trained run")
flags.DEFINE_string("data", None, "prepared data (default: the run's config.data.path)")
flags.DEFINE_integer("rows", 32, "samples")
flags.DEFINE_float("temperature", 1.0, "sampling temperature")
flags.DEFINE_float("top_p", 0.95, "nucleus mass")
flags.DEFINE_enum("time_mode", "refined", list(TIME_MODES), "TIME decoding")
flags.DEFINE_integer("seed", 0, "PRNG seed")


def window_stats(windows: list[tuple[np.ndarray, np.ndarray]]) -> tuple[dict, np.ndarray]:
    """[(ids, times)] -> (figures, every TIME value)."""
    notes = presses = 0
    seconds = sounding_time = voice_time = 0.0
    ranges, pcs, time_values = [], np.zeros(12), []
    for ids, times in windows:
        ev: NoteEvents = decode(ids, times)
        time_values.append(times[ids == TIME])
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
    return figures, np.concatenate(time_values) if time_values else np.zeros(0)


def on_grid(values: np.ndarray, grid: np.ndarray) -> float:
    if values.size == 0:
        return 0.0
    rel = np.abs(values[:, None] - grid[None]) / grid[None]
    return float((rel.min(axis=1) <= 0.02).mean())


def main(argv):
    del argv
    restored = restore(FLAGS.workdir)
    if restored.step is None:
        raise SystemExit(f"no checkpoint in {FLAGS.workdir}: train first")
    length = restored.config.model.max_len - 1
    src = ArrayRecordDataSource(shard_paths(FLAGS.data or restored.config.data.path, "eval"))
    held = []
    for i in range(len(src)):
        t = deserialize(src[i]).tokens
        for s in range(0, len(t) - length + 1, length):
            held.append((t.ids[s:s + length], t.times[s:s + length]))
    held_fig, held_times = window_stats(held)
    values, counts = np.unique(np.round(held_times, 4), return_counts=True)
    grid = values[np.argsort(-counts)[:12]]
    held_fig["time_on_grid"] = on_grid(held_times, grid)

    seqs, _ = generate(restored.model, restored.params, jax.random.key(FLAGS.seed), num_events=length,
                       batch=FLAGS.rows, temperature=FLAGS.temperature, top_p=FLAGS.top_p,
                       constraints=Constraints(allow_eos=False), time_mode=FLAGS.time_mode)
    sample_fig, sample_times = window_stats([(s.ids, s.times) for s in seqs])
    sample_fig["time_on_grid"] = on_grid(sample_times, grid)
    ratio = {k: round(sample_fig[k] / held_fig[k], 4) if held_fig[k] else None for k in held_fig}
    print(json.dumps({
        "step": restored.step, "time_mode": FLAGS.time_mode, "temperature": FLAGS.temperature,
        "top_p": FLAGS.top_p, "windows": {"samples": len(seqs), "heldout": len(held)}, "tokens_per_window": length,
        "samples": {k: round(v, 4) for k, v in sample_fig.items()},
        "heldout": {k: round(v, 4) for k, v in held_fig.items()},
        "ratio": ratio,
        "within_15pct": {k: r is not None and 0.85 <= r <= 1.15 for k, r in ratio.items()},
        "time_grid_s": [float(g) for g in grid],
    }))


if __name__ == "__main__":
    app.run(main)
