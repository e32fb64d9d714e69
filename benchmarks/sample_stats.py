r"""Unconditioned samples against the held-out split: does free sampling keep
the data's note density, chords, range, harmony and rhythm?

    python -m benchmarks.sample_stats --workdir=runs/tiny [--rows=32 --temperature=1.0 --top_p=0.95]

Both sides are measured on windows of the model's context, with the figures,
their definitions and the comparison of yoshimidi_jax/eval/sample_stats.py
(notes per press, notes per second, polyphony, pitch range, pitch-class
entropy, gaps on the held-out rhythmic grid). Prints one JSON line;
`within_15pct` says which ratios lie in [0.85, 1.15].
"""

from __future__ import annotations

import json

from absl import app, flags

from yoshimidi_jax.restore import restore
from yoshimidi_jax.sample.sampler import TIME_MODES
from yoshimidi_jax.eval.sample_stats import sample_statistics

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "runs/tiny", "a trained run")
flags.DEFINE_string("data", None, "prepared data (default: the run's config.data.path)")
flags.DEFINE_integer("rows", 32, "samples")
flags.DEFINE_float("temperature", 1.0, "sampling temperature")
flags.DEFINE_float("top_p", 0.95, "nucleus mass")
flags.DEFINE_enum("time_mode", "refined", list(TIME_MODES), "TIME decoding")
flags.DEFINE_integer("seed", 0, "PRNG seed")


def main(argv):
    del argv
    restored = restore(FLAGS.workdir)
    if restored.step is None:
        raise SystemExit(f"no checkpoint in {FLAGS.workdir}: train first")
    result = sample_statistics(restored.model, restored.params, FLAGS.data or restored.config.data.path,
                               rows=FLAGS.rows, temperature=FLAGS.temperature, top_p=FLAGS.top_p, seed=FLAGS.seed,
                               time_mode=FLAGS.time_mode)
    print(json.dumps({"step": restored.step, **result}))


if __name__ == "__main__":
    app.run(main)
