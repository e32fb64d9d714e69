r"""Music quality: do the samples read as music, by the field's measures?

    python -m benchmarks.music_quality --workdir=runs/tiny [--samples=60 --events=400 --temperature=0.8 \
        --top_p=0.9 --copy_context=7 --copy_weight=0.7 [--style_guidance=W] --seed=0 --styles=all|none \
        --player --window=N]

Unconditioned samples (and, under `player`, the notes the model chooses in a
player-like walk: what a player hears) against excerpts of held-out pieces of
matched length, with excerpts of training pieces scored the same way as the
ceiling (yoshimidi_jax/eval/music_quality.py): per figure (muspy's
pitch-class entropy, scale consistency, groove consistency, polyphony,
polyphony rate, pitch range, pitches used, empty-beat rate; longest note,
motif recurrence, beat-grid consistency) the means {samples, heldout, train}
and the overlapping areas `oa` (samples vs held-out) and `oa_train` (train
vs held-out); `mean_oa`, `mean_oa_train`; the melody's `melody_oa`,
`melody_oa_train`; `stuck_share` (longest note beyond the held-out 95th
percentile: held-out about 5% by construction); `per_style` (each style
given, guided by --style_guidance: monophonic share, polyphony, mean OA
beside the style's held-out values, with n). Defaults are the issue's
evaluation: 60 samples of 400 events at experiments.sample's defaults
(temperature 0.8, top-p 0.9 per family, the copy of context 7 at weight 0.7:
sample/copying.py, the player's walks do not copy; a style asked at its own
guidance weight, sample/guidance.py WEIGHTS, unless --style_guidance gives one), 60 held-out and 40 training excerpts. Prints one JSON line.
"""

from __future__ import annotations

import json
import time

from absl import app, flags, logging

from yoshimidi_jax import compile_cache
from yoshimidi_jax.eval import music_quality as mq
from yoshimidi_jax.restore import restore

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "runs/tiny", "a trained run")
flags.DEFINE_string("data", None, "prepared data (default: the run's config.data.path)")
flags.DEFINE_integer("samples", mq.SAMPLES, "unconditioned samples (and samples per style)")
flags.DEFINE_integer("events", mq.EVENTS, "new tokens per sample (and music tokens per player walk)")
flags.DEFINE_integer("heldout", mq.HELDOUT_EXCERPTS, "held-out excerpts per comparison")
flags.DEFINE_integer("train", mq.TRAIN_EXCERPTS, "training-piece excerpts per comparison (the ceiling)")
flags.DEFINE_float("temperature", mq.TEMPERATURE, "sampling temperature")
flags.DEFINE_float("top_p", mq.TOP_P, "nucleus mass (1: off)")
flags.DEFINE_integer("copy_context", mq.COPY_CONTEXT, "the samples mix in what followed the last N tokens before "
                     "(sample/copying.py; 0: the model alone)")
flags.DEFINE_float("copy_weight", mq.COPY_WEIGHT, "the copy's share where the context occurred before")
flags.DEFINE_float("style_guidance", mq.STYLE_GUIDANCE, "the samples asked for a style lean into it by this "
                   "weight (classifier-free guidance, sample/guidance.py; 1: the style as the model takes it; "
                   "default: each style's own weight, guidance.WEIGHTS)")
flags.DEFINE_integer("seed", 0, "PRNG seed (samples, walks and excerpts)")
flags.DEFINE_enum("styles", "all", ["all", "none"], "all: also sample each style and compare per style")
flags.DEFINE_bool("player", True, "also measure player-like walks through the play API")
flags.DEFINE_integer("walks", 0, "player walks (0: as many as --samples)")
flags.DEFINE_integer("window", None, "positions the sampler attends over (default: the model's context; "
                     "0: never slide)")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # orbax logs every file it restores
    compile_cache.enable()
    t0 = time.perf_counter()
    restored = restore(FLAGS.workdir)
    if restored.step is None:
        raise SystemExit(f"no checkpoint in {FLAGS.workdir}: train first")
    result = mq.measure_music_quality(
        restored.model, restored.params, FLAGS.data or restored.config.data.path, samples=FLAGS.samples,
        events=FLAGS.events, heldout_excerpts=FLAGS.heldout, train_excerpts=FLAGS.train,
        temperature=FLAGS.temperature, top_p=FLAGS.top_p, seed=FLAGS.seed, styles=FLAGS.styles,
        player=FLAGS.player, walks=FLAGS.walks, window=FLAGS.window, copy_context=FLAGS.copy_context,
        copy_weight=FLAGS.copy_weight, style_guidance=FLAGS.style_guidance)
    print(json.dumps({"step": restored.step, **result, "seconds": round(time.perf_counter() - t0, 1)}))


if __name__ == "__main__":
    app.run(main)
