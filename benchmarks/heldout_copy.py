r"""Held-out nats per note of the model alone and mixed with a copy of what
followed the same last tokens before (sample/copying.py), on a grid of
contexts and weights.

    python -m benchmarks.heldout_copy --workdir=runs/tiny [--contexts=2,4,6,8 --weights=0.1,0.3,0.5,0.7]

The eval split's pieces laid end to end in windows of the model's context,
no controls and no style (the unconditioned mode: eval/heldout.py
eval_spec('none')), the window's own earlier tokens the only ones copied.
The baseline in the same run is the model alone (`nats_per_note`); each
grid point gives its nats per note and its ratio to the baseline; `best`
is the lowest. Prints one JSON line.
"""

from __future__ import annotations

import json

from absl import app, flags, logging

from yoshimidi_jax import compile_cache
from yoshimidi_jax.eval.heldout import eval_spec, score_heldout
from yoshimidi_jax.restore import restore

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "runs/tiny", "a trained run")
flags.DEFINE_string("data", None, "prepared data (default: the run's config.data.path)")
flags.DEFINE_list("contexts", ["2", "4", "6", "8"], "tokens of context a copy must match")
flags.DEFINE_list("weights", ["0.1", "0.3", "0.5", "0.7"], "the copy's share where the context occurred before")
flags.DEFINE_integer("batch_size", 8, "windows per batch")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # orbax logs every file it restores
    compile_cache.enable()
    restored = restore(FLAGS.workdir)
    if restored.step is None:
        raise SystemExit(f"no checkpoint in {FLAGS.workdir}: train first")
    model, data = restored.model, FLAGS.data or restored.config.data.path
    spec = eval_spec(model.max_len, FLAGS.batch_size, "none", model.time_shifts, model.time_shift_s)
    alone = score_heldout(model, restored.params, data, spec)
    grid = []
    for context in (int(c) for c in FLAGS.contexts):
        for weight in (float(w) for w in FLAGS.weights):
            score = score_heldout(model, restored.params, data, spec, copy_context=context, copy_weight=weight)
            grid.append({"context": context, "weight": weight, "nats_per_note": round(score.nats_per_note, 4),
                         "ratio": round(score.nats_per_note / alone.nats_per_note, 4)})
    best = min(grid, key=lambda g: g["nats_per_note"])
    print(json.dumps({"benchmark": "heldout_copy", "workdir": FLAGS.workdir, "step": restored.step,
                      "notes": alone.notes, "nats_per_note": round(alone.nats_per_note, 4), "best": best,
                      "grid": grid}))


if __name__ == "__main__":
    app.run(main)
